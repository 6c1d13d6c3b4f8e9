"""Names in topics: what MQTT and its brokers accept, refused at registration with the offender."""

from __future__ import annotations

import pytest

from triolette import App, RegistrationError
from triolette.core.topics import (
    MAX_NAME_BYTES,
    MAX_TOPIC_BYTES,
    Topics,
    check_level,
    check_name,
)


@pytest.mark.parametrize(
    "name",
    ["meter", "gas-meter_2", "Küche", "温度", "a b", "a\u2028b", "😀", "x" * MAX_NAME_BYTES],
)
def test_names_a_broker_takes_pass(name):
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "device name '' is empty or has surrounding spaces"),
        (" meter", "device name ' meter' is empty or has surrounding spaces"),
        ("a/b", "device name 'a/b' contains '/', which would add a topic level"),
        ("a+", "device name 'a+' contains '+', an MQTT wildcard"),
        ("a#", "device name 'a#' contains '#', an MQTT wildcard"),
        ("a\0b", r"device name 'a\x00b' contains '\x00', a NUL character"),
        ("a\nb", r"device name 'a\nb' contains '\n', a control character"),
        ("a\tb", r"device name 'a\tb' contains '\t', a control character"),
        ("a\x1bb", r"device name 'a\x1bb' contains '\x1b', a control character"),
        ("\x7f", r"device name '\x7f' contains '\x7f', a control character"),
        ("a\x85", r"device name 'a\x85' contains '\x85', a control character"),
        ("a\x9fb", r"device name 'a\x9fb' contains '\x9f', a control character"),
        ("\ud800", r"device name '\ud800' contains '\ud800', a lone surrogate"),
        ("a\udfffb", r"device name 'a\udfffb' contains '\udfff', a lone surrogate"),
        ("a\ufffe", r"device name 'a\ufffe' contains '\ufffe', a Unicode non-character"),
        ("a\ufdd0", r"device name 'a\ufdd0' contains '\ufdd0', a Unicode non-character"),
        ("a\U0010ffff", r"contains '\U0010ffff', a Unicode non-character"),
        ("$SYS", "device name '$SYS' starts with '$', which MQTT keeps for the broker's topics"),
    ],
)
def test_a_name_a_broker_would_refuse_is_refused_naming_it(name, message):
    with pytest.raises(RegistrationError) as caught:
        check_name(name)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_the_error_names_what_was_checked():
    with pytest.raises(RegistrationError, match=r"^topic prefix 'a\\nb' contains"):
        check_name("a\nb", "topic prefix")


def test_a_name_that_is_not_text_is_a_type_error():
    with pytest.raises(TypeError, match="device name must be a str, got 7"):
        check_name(7)


def test_a_name_too_long_for_a_topic_is_refused_with_its_size_and_a_short_repr():
    name = "x" * 70_000
    with pytest.raises(RegistrationError) as caught:
        check_name(name)
    message = str(caught.value)
    assert "is 70000 bytes of UTF-8; at most 32760 fit" in message
    assert "(70000 characters)" in message
    assert len(message) < 300


def test_the_limit_counts_bytes_of_utf8_not_characters():
    fits = "é" * (MAX_NAME_BYTES // 2)  # two bytes each
    assert check_name(fits) == fits
    with pytest.raises(RegistrationError, match=f"is {MAX_NAME_BYTES + 1} bytes"):
        check_name(fits + "x")


def test_an_invisible_character_far_into_a_long_name_is_still_shown():
    with pytest.raises(RegistrationError, match=r"\(101 characters\) contains '\\r'"):
        check_name("x" * 100 + "\r")


def test_the_longest_names_still_make_topics_mqtt_allows():
    longest = "é" * (MAX_NAME_BYTES // 2)
    topics = Topics(check_name(longest, "topic prefix"))
    device = check_name(longest)
    built = [
        topics.state(device),
        topics.availability(device),
        topics.error(device),
        topics.command(device),
        topics.status,
        topics.app_error,
    ]
    assert max(len(topic.encode()) for topic in built) <= MAX_TOPIC_BYTES


def test_a_level_after_the_device_may_start_with_a_dollar_but_is_otherwise_checked():
    assert check_level("$state") == "$state"
    with pytest.raises(RegistrationError, match=r"topic level 'a\\x7f' contains '\\x7f'"):
        check_level("a\x7f")


@pytest.mark.parametrize("prefix", ["$SYS", "$share", "$"])
def test_a_topic_prefix_in_the_brokers_dollar_space_is_refused(prefix):
    with pytest.raises(RegistrationError, match=rf"topic prefix '\{prefix}.*' starts with '\$'"):
        App("bridge", topic_prefix=prefix)


def test_an_app_name_that_would_be_a_dollar_prefix_is_refused():
    with pytest.raises(RegistrationError, match=r"app name '\$SYS' starts with '\$'"):
        App("$SYS")


@pytest.mark.parametrize("name", ["a\nb", "\x7f", "\ud800", "x" * 70_000])
def test_registering_a_device_with_a_name_a_broker_refuses_raises(name):
    app = App("bridge")
    with pytest.raises(RegistrationError, match="device name"):

        @app.telemetry(name, interval=1)
        async def meter() -> dict[str, int]:
            return {}

    assert app.device_names == []


def test_the_cli_refuses_a_dollar_topic_prefix_naming_the_flag(capsys):
    from triolette.runtime.cli import main

    assert main(["run", "tests.runtime.cli_app:app", "--topic-prefix", "$SYS"]) == 3
    error = capsys.readouterr().err
    assert error.startswith("error: --topic-prefix: "), error
    assert "'$SYS' starts with '$'" in error
