"""RunSettings: precedence of flags, variables, the app's code and defaults; each error's source."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from triolette import App, JsonFileStore, MemoryStore, SettingsError, SqliteStore
from triolette.actors.paho import PahoTransport
from triolette.actors.transport import LogTransport
from triolette.core.topics import Topics
from triolette.runtime import launch
from triolette.runtime.launch import read_env_file, resolve_settings
from triolette.runtime.settings import OPTIONS, RunSettings
from triolette.runtime.wiring import (
    apply_settings,
    describe_settings,
    store_for_path,
    transport_for,
)

SECRET = "s3cret-Pa55word"
BY_NAME = {option.name: option for option in OPTIONS}


def flag(name: str) -> str:
    return BY_NAME[name].flag


def env(name: str) -> str:
    return BY_NAME[name].env


# -- defaults and precedence -------------------------------------------------------------------


def test_the_defaults_need_no_broker_and_no_store():
    settings = RunSettings.from_sources({}, {})
    assert settings.mqtt_host is None
    assert settings.port == 1883
    assert settings.keepalive == 60.0
    assert (settings.log_level, settings.log_format) == ("INFO", "plain")
    assert settings.dry_run is False
    assert settings.ssl_context is None
    assert isinstance(transport_for(settings, "app"), LogTransport)
    assert settings.store_path is None


# (setting, flag value, variable value, app code value, what each resolves to)
LAYERS = [
    ("mqtt_host", "flag.example", "env.example", "code.example", None),
    ("mqtt_port", "1001", "1002", 1003, None),
    ("client_id", "flag-id", "env-id", "code-id", None),
    ("username", "flag-user", "env-user", "code-user", None),
    ("keepalive", "11", "12", 13.0, 60.0),
    ("topic_prefix", "flagp", "envp", "codep", None),
    ("store_path", "flag.json", "env.db", "code.sqlite", None),
    ("log_level", "error", "warning", "DEBUG", "INFO"),
    ("log_format", "json", "plain", "json", "plain"),
]


def _expected(name: str, raw: Any) -> object:
    if name == "mqtt_port":
        return int(raw)
    if name == "keepalive":
        return float(raw)
    if name == "store_path":
        return Path(raw)
    if name == "log_level":
        return str(raw).upper()
    return raw


@pytest.mark.parametrize(("name", "by_flag", "by_env", "by_code", "default"), LAYERS)
def test_a_flag_beats_a_variable_beats_the_app_code_beats_the_default(
    name, by_flag, by_env, by_code, default
):
    flags = {name: by_flag}
    environ = {env(name): by_env}
    code = {name: by_code}

    everything = RunSettings.from_sources(flags, environ, code)
    assert getattr(everything, name) == _expected(name, by_flag)
    assert everything.sources[name] == flag(name)

    no_flag = RunSettings.from_sources({}, environ, code)
    assert getattr(no_flag, name) == _expected(name, by_env)
    assert no_flag.sources[name] == env(name)

    code_only = RunSettings.from_sources({}, {}, code)
    assert getattr(code_only, name) == _expected(name, by_code)
    assert code_only.sources[name] == f"app setting {name}"

    assert getattr(RunSettings.from_sources({}, {}), name) == default


@pytest.mark.parametrize("name", ["dry_run", "tls_insecure", "tls"])
def test_a_false_flag_beats_a_true_variable(name):
    settings = RunSettings.from_sources({name: False}, {env(name): "yes"})
    assert getattr(settings, name) is False
    assert getattr(RunSettings.from_sources({}, {env(name): "yes"}), name) is True


@pytest.mark.parametrize(
    ("word", "value"),
    [
        *[("1", True), ("true", True), ("Yes", True), ("ON", True), (" on ", True)],
        *[("0", False), ("false", False), ("no", False), ("Off", False)],
    ],
)
def test_boolean_variables_take_the_usual_words(word, value):
    assert RunSettings.from_sources({}, {"TRIOLETTE_DRY_RUN": word}).dry_run is value


def test_an_empty_variable_counts_as_unset():
    settings = RunSettings.from_sources({}, {"TRIOLETTE_MQTT_PORT": "", "TRIOLETTE_MQTT_HOST": ""})
    assert settings.mqtt_host is None
    assert settings.mqtt_port is None


def test_an_argparse_namespace_works_and_its_other_attributes_are_ignored():
    import argparse

    namespace = argparse.Namespace(mqtt_host="h", mqtt_port="1884", command="run", app="m:app")
    settings = RunSettings.from_sources(namespace, {})
    assert (settings.mqtt_host, settings.port) == ("h", 1884)


def test_an_unknown_app_setting_is_an_error():
    with pytest.raises(SettingsError, match="app setting mqtt_hots: no such setting"):
        RunSettings.from_sources({}, {}, {"mqtt_hots": "x"})


def test_unknown_triolette_variables_are_collected_for_a_warning():
    environ = {"TRIOLETTE_MQTT_PASWORD": "x", "TRIOLETTE_MQTT_HOST": "h", "HOME": "/"}
    assert RunSettings.from_sources({}, environ).unknown_variables == ("TRIOLETTE_MQTT_PASWORD",)


def test_log_level_and_format_ignore_case():
    settings = RunSettings.from_sources({"log_level": "debug"}, {"TRIOLETTE_LOG_FORMAT": "JSON"})
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")


def test_tls_moves_the_default_port_to_8883_unless_a_port_is_given():
    assert RunSettings.from_sources({"tls": True}, {}).port == 8883
    assert RunSettings.from_sources({"tls": True, "mqtt_port": "1883"}, {}).port == 1883


# -- validation errors name their source ---------------------------------------------------------

INVALID = [
    ("mqtt_port", "70000", "must be between 1 and 65535, got 70000"),
    ("mqtt_port", "0", "must be between 1 and 65535, got 0"),
    ("mqtt_port", "http", "must be a whole number, got 'http'"),
    ("keepalive", "0", "must be a positive number of seconds, got 0.0"),
    ("keepalive", "-5", "must be a positive number of seconds"),
    ("keepalive", "nan", "must be a positive number of seconds"),
    ("keepalive", "inf", "must be a positive number of seconds"),
    ("keepalive", "soon", "must be a number of seconds, got 'soon'"),
    ("mqtt_host", "mqtt://broker", "give a host name, not a URL"),
    ("mqtt_host", "broker:1883", "give the port separately"),
    ("mqtt_host", "two words", "must be a host name or address"),
    ("topic_prefix", "a/b", "'a/b' contains '/'"),
    ("topic_prefix", "home+", "'home+' contains '+', an MQTT wildcard"),
    ("store_path", "state.txt", "state.txt must end in .json (a JSON file) or .db"),
    ("store_path", "state", "state must end in .json"),
    ("log_level", "verbose", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("log_format", "xml", "must be plain or json, got 'xml'"),
    ("client_id", "bad\x01id", "must not hold control characters"),
]


@pytest.mark.parametrize(("name", "value", "problem"), INVALID)
def test_an_invalid_flag_is_named_in_the_error(name, value, problem):
    with pytest.raises(SettingsError) as caught:
        RunSettings.from_sources({name: value}, {env(name): "ignored"})
    assert caught.value.setting == flag(name)
    assert str(caught.value).startswith(f"{flag(name)}: ")
    assert problem in str(caught.value)


@pytest.mark.parametrize(("name", "value", "problem"), INVALID)
def test_an_invalid_variable_is_named_in_the_error(name, value, problem):
    with pytest.raises(SettingsError) as caught:
        RunSettings.from_sources({}, {env(name): value})
    assert caught.value.setting == env(name)
    assert str(caught.value).startswith(f"{env(name)}: ")
    assert problem in str(caught.value)


def test_the_port_message_reads_as_documented():
    with pytest.raises(SettingsError) as caught:
        RunSettings.from_sources({"mqtt_port": "70000"}, {})
    assert str(caught.value) == "--port: must be between 1 and 65535, got 70000"


@pytest.mark.parametrize("name", ["dry_run", "tls", "tls_insecure"])
def test_a_boolean_variable_with_another_word_is_named(name):
    with pytest.raises(SettingsError, match=rf"^{env(name)}: must be one of 1/true/yes/on"):
        RunSettings.from_sources({}, {env(name): "maybe"})


def test_an_empty_flag_value_is_an_error():
    with pytest.raises(SettingsError, match=r"^--host: must not be empty"):
        RunSettings.from_sources({"mqtt_host": ""}, {})


def test_settings_built_in_code_are_validated_too():
    with pytest.raises(SettingsError, match=r"^mqtt_port: must be between 1 and 65535"):
        RunSettings(mqtt_port=0)
    with pytest.raises(SettingsError, match=r"^keepalive: "):
        RunSettings(keepalive=True)


# -- secrets --------------------------------------------------------------------------------------


def _with_password(**more: object) -> RunSettings:
    return RunSettings.from_sources(
        {"mqtt_host": "broker.example", **more}, {"TRIOLETTE_MQTT_PASSWORD": SECRET}
    )


def test_the_password_never_shows_in_repr_str_or_describe():
    settings = _with_password(username="bob")
    assert settings.password == SECRET
    for text in (
        repr(settings),
        str(settings),
        describe_settings(settings),
        repr(transport_for(settings, "a")),
    ):
        assert SECRET not in text
    assert "password='***'" in repr(settings)
    assert "password=***" in describe_settings(settings)
    assert "password=None" in repr(RunSettings())


def test_the_password_never_reaches_the_log(caplog):
    caplog.set_level(logging.DEBUG)
    app = App("secretive")
    settings = _with_password()
    apply_settings(settings, app)
    logging.getLogger("test").info(
        "%s %r %r", describe_settings(settings, app), settings, app.transport
    )
    stray = RunSettings.from_sources({}, {"TRIOLETTE_MQTT_PASSWORD": SECRET})  # no host: ignored
    apply_settings(stray, App("other"))
    assert "TRIOLETTE_MQTT_PASSWORD ignored" in caplog.text
    assert SECRET not in caplog.text


def test_errors_never_quote_the_password():
    with pytest.raises(SettingsError) as caught:
        RunSettings.from_sources({"mqtt_port": "x"}, {"TRIOLETTE_MQTT_PASSWORD": SECRET})
    assert SECRET not in str(caught.value)


def test_the_password_can_come_from_a_file(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text(f"{SECRET}\n")
    settings = RunSettings.from_sources({"password_file": str(secret_file)}, {})
    assert settings.password == SECRET
    assert settings.sources["password"] == "--password-file"


def test_a_password_file_flag_beats_a_password_variable_and_loses_to_a_flag(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text("from-file")
    by_file = RunSettings.from_sources(
        {"password_file": str(secret_file)}, {"TRIOLETTE_MQTT_PASSWORD": "from-env"}
    )
    assert by_file.password == "from-file"
    by_flag = RunSettings.from_sources(
        {"password": "from-flag"}, {"TRIOLETTE_MQTT_PASSWORD_FILE": str(secret_file)}
    )
    assert by_flag.password == "from-flag"


def test_a_password_and_a_password_file_from_one_source_conflict(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text("x")
    environ = {"TRIOLETTE_MQTT_PASSWORD": "y", "TRIOLETTE_MQTT_PASSWORD_FILE": str(secret_file)}
    with pytest.raises(SettingsError, match=r"^TRIOLETTE_MQTT_PASSWORD_FILE: give "):
        RunSettings.from_sources({}, environ)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "names no file"),
        (b"\n", "the file it names is empty"),
        (b"\xff\xfepass\n", "the file it names is not UTF-8 text"),
    ],
)
def test_a_bad_password_file_is_one_settings_error_that_never_shows_the_path(
    tmp_path, content, problem
):
    secret_file = tmp_path / SECRET
    if content is not None:
        secret_file.write_bytes(content)
    with pytest.raises(SettingsError, match=rf"^--password-file: {problem}$") as caught:
        RunSettings.from_sources({"password_file": str(secret_file)}, {})
    assert SECRET not in str(caught.value)  # the path may be a password put in by mistake


@pytest.mark.parametrize(
    "value", [SECRET, f"{SECRET}\x00", "x" * 5000, "/"], ids=["missing", "nul", "long", "dir"]
)
def test_a_password_in_the_password_file_variable_is_never_echoed(value):
    with pytest.raises(SettingsError, match=r"^TRIOLETTE_MQTT_PASSWORD_FILE: ") as caught:
        RunSettings.from_sources({}, {"TRIOLETTE_MQTT_PASSWORD_FILE": value})
    assert value.rstrip("\x00") not in str(caught.value)


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A self-signed certificate and its key, another key, and an encrypted key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make certificates")
    folder = tmp_path_factory.mktemp("pki")
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    for command in (
        [
            *["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
            *["-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=triolette"],
        ],
        ["genpkey", *ec, "-out", "other.pem"],
        ["genpkey", *ec, "-aes256", "-pass", "pass:hunter2", "-out", "encrypted.pem"],
    ):
        subprocess.run(["openssl", *command], cwd=folder, check=True, capture_output=True)
    (folder / "both.pem").write_bytes(
        (folder / "cert.pem").read_bytes() + (folder / "key.pem").read_bytes()
    )
    return folder


def test_tls_with_a_ca_a_certificate_and_its_key_builds_the_context_at_settings_time(pki):
    settings = RunSettings.from_sources(
        {"mqtt_host": "broker.example"},
        {
            "TRIOLETTE_TLS_CA_FILE": str(pki / "cert.pem"),
            "TRIOLETTE_TLS_CERT_FILE": str(pki / "cert.pem"),
            "TRIOLETTE_TLS_KEY_FILE": str(pki / "key.pem"),
        },
    )
    context = settings.ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert settings.port == 8883
    transport = transport_for(settings, "app")
    assert isinstance(transport, PahoTransport)
    assert transport.tls is context
    assert transport.port == 8883


def test_a_key_in_the_certificate_file_needs_no_key_file(pki):
    settings = RunSettings.from_sources({"tls_cert_file": str(pki / "both.pem")}, {})
    assert settings.ssl_context is not None


def test_tls_insecure_alone_turns_tls_on_without_verification():
    settings = RunSettings.from_sources({}, {"TRIOLETTE_TLS_INSECURE": "true"})
    assert settings.ssl_context is not None
    assert settings.ssl_context.verify_mode == ssl.CERT_NONE
    assert settings.ssl_context.check_hostname is False


def test_tls_alone_verifies_with_the_system_certificates():
    settings = RunSettings.from_sources({"tls": True}, {})
    assert settings.ssl_context is not None
    assert settings.ssl_context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("name", ["tls_ca_file", "tls_cert_file", "tls_key_file"])
def test_a_missing_tls_file_is_named(tmp_path, pki, name):
    given = {"tls_cert_file": str(pki / "cert.pem"), "tls_key_file": str(pki / "key.pem")}
    given[name] = str(tmp_path / "absent.pem")
    with pytest.raises(SettingsError) as caught:
        RunSettings.from_sources(given, {})
    assert str(caught.value) == f"{flag(name)}: no such file: {tmp_path / 'absent.pem'}"


def test_a_missing_ca_file_from_a_variable_names_the_variable(tmp_path):
    with pytest.raises(SettingsError, match=r"^TRIOLETTE_TLS_CA_FILE: no such file"):
        RunSettings.from_sources({}, {"TRIOLETTE_TLS_CA_FILE": str(tmp_path / "absent.pem")})


def test_a_tls_file_that_is_a_folder_is_not_readable(tmp_path):
    with pytest.raises(SettingsError, match=r"^--tls-ca-file: .* is a directory, not a file"):
        RunSettings.from_sources({"tls_ca_file": str(tmp_path)}, {})


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_an_unreadable_tls_file_is_named(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("whatever")
    ca.chmod(0)
    with pytest.raises(SettingsError, match=r"^--tls-ca-file: cannot read .*permission denied"):
        RunSettings.from_sources({"tls_ca_file": str(ca)}, {})


@pytest.mark.parametrize("content", [b"", b"not a certificate\n", b"\x00\xff" * 64])
def test_a_garbage_ca_file_is_named(tmp_path, content):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(content)
    with pytest.raises(
        SettingsError, match=r"^--tls-ca-file: .*holds no usable PEM CA certificate"
    ):
        RunSettings.from_sources({"tls_ca_file": str(ca)}, {})


def test_a_garbage_certificate_is_named(tmp_path, pki):
    cert = tmp_path / "cert.pem"
    cert.write_text("garbage")
    with pytest.raises(
        SettingsError, match=r"^TRIOLETTE_TLS_CERT_FILE: .*holds no PEM certificate"
    ):
        RunSettings.from_sources(
            {},
            {"TRIOLETTE_TLS_CERT_FILE": str(cert), "TRIOLETTE_TLS_KEY_FILE": str(pki / "key.pem")},
        )


def test_a_certificate_without_any_key_is_named(pki):
    with pytest.raises(SettingsError, match=r"^--tls-cert-file: .*holds no PEM private key"):
        RunSettings.from_sources({"tls_cert_file": str(pki / "cert.pem")}, {})


def test_a_key_that_is_not_a_key_is_named(pki):
    with pytest.raises(SettingsError, match=r"^--tls-key-file: .*holds no PEM private key"):
        RunSettings.from_sources(
            {"tls_cert_file": str(pki / "cert.pem"), "tls_key_file": str(pki / "cert.pem")}, {}
        )


def test_a_key_that_does_not_match_the_certificate_is_named(pki):
    with pytest.raises(SettingsError, match=r"^--tls-key-file: cannot use the certificate"):
        RunSettings.from_sources(
            {"tls_cert_file": str(pki / "cert.pem"), "tls_key_file": str(pki / "other.pem")}, {}
        )


def test_an_encrypted_key_is_refused_without_prompting(pki):
    with pytest.raises(SettingsError, match=r"^--tls-key-file: .*is encrypted"):
        RunSettings.from_sources(
            {"tls_cert_file": str(pki / "cert.pem"), "tls_key_file": str(pki / "encrypted.pem")},
            {},
        )


def test_a_key_without_a_certificate_is_named(pki):
    with pytest.raises(
        SettingsError, match=r"^TRIOLETTE_TLS_KEY_FILE: a key needs its certificate"
    ):
        RunSettings.from_sources({}, {"TRIOLETTE_TLS_KEY_FILE": str(pki / "key.pem")})


# -- the store ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        *[("s.json", JsonFileStore), ("s.JSON", JsonFileStore), ("s.db", SqliteStore)],
        *[("s.sqlite", SqliteStore), ("s.sqlite3", SqliteStore)],
    ],
)
def test_the_store_suffix_chooses_the_backend(tmp_path, name, kind):
    settings = RunSettings.from_sources({"store_path": str(tmp_path / name)}, {})
    assert settings.store_path is not None
    store = store_for_path(settings.store_path)
    assert isinstance(store, JsonFileStore | SqliteStore)
    assert type(store) is kind
    assert store.path == tmp_path / name
    assert not store.path.exists()  # nothing is opened at settings time


# -- the transport and apply ----------------------------------------------------------------------


def test_the_transport_carries_every_connection_setting():
    settings = RunSettings.from_sources(
        {"mqtt_host": "broker.example", "username": "bob", "keepalive": "15"},
        {"TRIOLETTE_MQTT_PORT": "1884", "TRIOLETTE_MQTT_CLIENT_ID": "meter-1"},
    )
    transport = transport_for(settings, "app")
    assert isinstance(transport, PahoTransport)
    assert (transport.host, transport.port, transport.client_id) == (
        "broker.example",
        1884,
        "meter-1",
    )
    assert (transport.username, transport.keepalive, transport.tls) == ("bob", 15.0, None)


def test_a_dry_run_logs_unless_a_host_is_asked_for():
    settings = RunSettings.from_sources({"dry_run": True}, {}, {"mqtt_host": "from.code"})
    assert isinstance(transport_for(settings, "app"), LogTransport)
    app_default = {"mqtt_host": ("localhost", "settings default mqtt.host")}
    settings = RunSettings.from_sources({"dry_run": True}, {}, app_settings=app_default)
    assert isinstance(transport_for(settings, "app"), LogTransport)
    for flags, environ, layer in (
        ({"mqtt_host": "broker.example"}, {}, {}),
        ({}, {"TRIOLETTE_MQTT_HOST": "broker.example"}, {}),
        ({}, {}, {"mqtt_host": ("broker.example", "MYAPP_MQTT__HOST")}),
    ):
        settings = RunSettings.from_sources({**flags, "dry_run": True}, environ, None, layer)
        transport = transport_for(settings, "app")
        assert isinstance(transport, PahoTransport)
        assert transport.host == "broker.example"


def test_the_default_client_id_is_the_app_and_host_name_made_safe(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "my box+1/#ä")
    settings = RunSettings.from_sources({"mqtt_host": "h"}, {})
    assert settings.effective_client_id("gas2mqtt") == "gas2mqtt-my-box-1---"
    transport = transport_for(settings, "gas2mqtt")
    assert isinstance(transport, PahoTransport)
    assert transport.client_id == "gas2mqtt-my-box-1---"
    monkeypatch.setattr("socket.gethostname", lambda: "h" * 200)
    assert len(settings.effective_client_id("gas2mqtt")) == 64


def test_apply_leaves_alone_what_was_not_given():
    store = MemoryStore()
    app = App("bridge", store=store, topic_prefix="house")
    code_transport = LogTransport()
    app.transport = code_transport
    apply_settings(RunSettings.from_sources({}, {"TRIOLETTE_LOG_LEVEL": "debug"}), app)
    assert app.store is store
    assert app.transport is code_transport
    assert app.topics == Topics("house")


def test_apply_sets_what_was_given(tmp_path):
    app = App("bridge", store=MemoryStore())
    settings = RunSettings.from_sources(
        {"mqtt_host": "broker.example", "topic_prefix": "garden"},
        {"TRIOLETTE_STORE": str(tmp_path / "state.db")},
    )
    apply_settings(settings, app)
    assert isinstance(app.transport, PahoTransport)
    assert app.transport.host == "broker.example"
    assert app.transport.client_id is not None
    assert app.transport.client_id.startswith("bridge-")
    assert isinstance(app.store, SqliteStore)
    assert app.topics == Topics("garden")


def test_a_dry_run_replaces_a_transport_the_app_code_set():
    app = App("bridge", transport=PahoTransport("code.example"))
    apply_settings(RunSettings.from_sources({"dry_run": True}, {}), app)
    assert isinstance(app.transport, LogTransport)


def test_describe_shows_what_is_in_effect(tmp_path):
    app = App("bridge", store=MemoryStore())
    settings = RunSettings.from_sources(
        {"mqtt_host": "broker.example", "username": "bob", "tls": True}, {}
    )
    apply_settings(settings, app)
    line = describe_settings(settings, app)
    assert "broker=broker.example:8883" in line
    assert "tls=on(ca=system)" in line
    assert "username=bob password=-" in line
    assert "topic_prefix=bridge" in line
    assert "store=memory" in line
    assert "\n" not in line
    assert "broker=none (publishes only logged)" in describe_settings(RunSettings())


def test_describe_shows_an_embedded_broker_by_its_port_not_its_state():
    app = App("demo")
    settings = RunSettings.from_sources({"mqtt_port": "18999"}, {})
    apply_settings(settings, app)
    assert "broker=embedded (port 18999) " in describe_settings(settings, app)


def test_describe_shows_a_store_in_one_format_wherever_it_was_set(tmp_path):
    path = tmp_path / "state.json"
    by_setting = App("bridge")
    settings = RunSettings.from_sources({"store_path": str(path)}, {})
    apply_settings(settings, by_setting)
    by_code = App("bridge", store=JsonFileStore(path))
    apply_settings(RunSettings(), by_code)
    line = f"store=json:{path} "
    assert line in describe_settings(settings, by_setting)
    assert line in describe_settings(RunSettings(), by_code)
    assert line in describe_settings(settings)
    sqlite = App("bridge", store=SqliteStore(tmp_path / "state.db"))
    assert f"store=sqlite:{tmp_path / 'state.db'} " in describe_settings(RunSettings(), sqlite)
    assert "store=none " in describe_settings(RunSettings(), App("bare"))


def test_without_a_host_the_app_embeds_a_broker_when_the_extra_is_installed(monkeypatch, caplog):
    from triolette import App
    from triolette.runtime import wiring
    from triolette.runtime.embedded import EmbeddedBroker

    app = App("demo")
    apply_settings(RunSettings.from_sources({"mqtt_port": "18999"}, {}), app)
    assert isinstance(app.embedded_broker, EmbeddedBroker)
    assert app.embedded_broker.port == 18999  # --port without --host: the embedded one's
    assert app.transport is None

    monkeypatch.setattr(wiring, "broker_installed", lambda: False)
    bare = App("bare")
    apply_settings(RunSettings.from_sources({}, {}), bare)
    assert bare.embedded_broker is None  # a dry run instead, with a warning
    assert "pip install 'triolette[broker]'" in caplog.text
    assert "in a clone of triolette: pip install -e '.[broker]'" in caplog.text  # works there


def test_a_host_or_a_dry_run_never_embeds_a_broker():
    from triolette import App

    for flags in ({"mqtt_host": "broker.lan"}, {"dry_run": True}):
        app = App("demo")
        apply_settings(RunSettings.from_sources(flags, {}), app)
        assert app.embedded_broker is None
        assert app.transport is not None


# -- env files ------------------------------------------------------------------------------------


def test_an_env_file_reads_comments_quotes_and_export(tmp_path):
    path = tmp_path / "bridge.env"
    path.write_text(
        "# a comment\n\n"
        "export TRIOLETTE_MQTT_HOST=broker.lan\n"
        "TRIOLETTE_MQTT_USERNAME = 'bob # not a comment'\n"
        'TRIOLETTE_MQTT_PASSWORD="a \\"quoted\\" \\\\ word" # a comment\n'
        "TRIOLETTE_TOPIC_PREFIX=house # a comment\n"
        "EMPTY=\n"
    )
    assert read_env_file(path) == {
        "TRIOLETTE_MQTT_HOST": "broker.lan",
        "TRIOLETTE_MQTT_USERNAME": "bob # not a comment",
        "TRIOLETTE_MQTT_PASSWORD": 'a "quoted" \\ word',
        "TRIOLETTE_TOPIC_PREFIX": "house",
        "EMPTY": "",
    }


@pytest.mark.parametrize(
    "line",
    [f"TRIOLETTE_MQTT_PASSWORD='{SECRET}", f"{SECRET}", f"BAD KEY={SECRET}", f'X="{SECRET}" y'],
)
def test_a_bad_env_file_line_is_named_by_number_never_shown(tmp_path, line):
    path = tmp_path / "bridge.env"
    path.write_text(f"# first\n{line}\n")
    with pytest.raises(SettingsError, match=rf"^--env-file {path} line 2: expected KEY=VALUE$"):
        read_env_file(path)


def test_a_real_variable_beats_the_env_file_unless_it_is_empty(tmp_path, monkeypatch):
    path = tmp_path / "bridge.env"
    path.write_text("TRIOLETTE_TOPIC_PREFIX=file\nTRIOLETTE_MQTT_KEEPALIVE=5\n")
    args = argparse.Namespace(env_file=str(path))
    environ = {"TRIOLETTE_TOPIC_PREFIX": "env", "TRIOLETTE_MQTT_KEEPALIVE": ""}
    monkeypatch.setattr(launch, "configure_logging", lambda *args: None)
    settings = resolve_settings(args, environ)
    assert (settings.topic_prefix, settings.keepalive) == ("env", 5.0)
    assert settings.sources["topic_prefix"] == "TRIOLETTE_TOPIC_PREFIX"


def test_an_env_file_that_is_not_utf8_is_one_settings_error(tmp_path):
    path = tmp_path / "bridge.env"
    path.write_bytes(b"TRIOLETTE_MQTT_PASSWORD=\xff\n")
    with pytest.raises(SettingsError, match=r"is not UTF-8 text$"):
        read_env_file(path)
