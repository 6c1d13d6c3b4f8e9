"""The migration guide's table of every cosalette name cannot drift.

Every public name of cosalette 0.12.1 has a row in the last section of docs/migrating.md, and
every triolette import a row names resolves. (cosalette is not installed here: its names are
listed below, as its 0.12.1 package exports them.)
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).parents[1] / "docs" / "migrating.md"
SECTION = "## Every cosalette name"
ROW = re.compile(r"^\| `(cosalette[\w.]*)` \| (.+) \|$")
IMPORT = re.compile(r"^`(triolette(?:\.\w+)+)`")

COSALETTE_0_12_1: dict[str, tuple[str, ...]] = {
    "cosalette": (
        "AdapterHealthStatus",
        "AllSavePolicy",
        "AllStrategy",
        "AnySavePolicy",
        "AnyStrategy",
        "App",
        "AppContext",
        "BackoffStrategy",
        "BackpressurePolicy",
        "CircuitBreaker",
        "ClockPort",
        "Command",
        "CommandRegistration",
        "CronSchedule",
        "CronSpec",
        "Depends",
        "DeviceContext",
        "DeviceRegistration",
        "DeviceStatus",
        "DeviceStore",
        "DeviceTrigger",
        "EnabledSpec",
        "EntityNotifier",
        "EntityNotifierError",
        "ErrorPayload",
        "ErrorPublisher",
        "Every",
        "ExponentialBackoff",
        "FRAMEWORK_DISCLOSED_ERRORS",
        "Filter",
        "FixedBackoff",
        "HealthCheckable",
        "HealthReporter",
        "HeartbeatPayload",
        "IntervalSpec",
        "JsonFileStore",
        "JsonFormatter",
        "LifespanFunc",
        "LinearBackoff",
        "LoggingSettings",
        "MedianFilter",
        "MemoryStore",
        "Message",
        "MessageCallback",
        "MockMqttClient",
        "MqttClient",
        "MqttLifecycle",
        "MqttMessageHandler",
        "MqttNotConnectedError",
        "MqttPort",
        "MqttSettings",
        "NameSpec",
        "NotifierNotReadyError",
        "NullMqttClient",
        "NullStore",
        "OnChange",
        "OneEuroFilter",
        "Optional",
        "Payload",
        "PayloadValidationError",
        "PeriodicRegistration",
        "PersistPolicy",
        "Pt1Filter",
        "PublishStrategy",
        "ReturnValidationError",
        "Router",
        "SaveOnChange",
        "SaveOnPublish",
        "SaveOnShutdown",
        "SettingRef",
        "Settings",
        "SettingsLoadError",
        "SqliteStore",
        "StaleTelemetryError",
        "StateRegistration",
        "Store",
        "Stream",
        "StreamRegistration",
        "StreamablePort",
        "SubEntityContext",
        "SystemClock",
        "TaskSupervisionError",
        "TelemetryRegistration",
        "TimeoutSpec",
        "Topic",
        "TriggerPayload",
        "TriggerRunSource",
        "TriggerSource",
        "TriggerableSpec",
        "UnknownEntityError",
        "WillConfig",
        "build_error_payload",
        "build_registry_snapshot",
        "build_will_config",
        "configure_logging",
        "format_registry_json",
        "format_registry_table",
        "set_default_store_backend",
        "setting_ref",
    ),
    "cosalette.persist": (
        "AllSavePolicy",
        "AnySavePolicy",
        "PersistPolicy",
        "SaveOnChange",
        "SaveOnPublish",
        "SaveOnShutdown",
    ),
    "cosalette.schema": (
        "ChannelSchema",
        "ConsumerMeta",
        "HaDiscoveryMeta",
        "HaEnrichHook",
        "HaEntityMeta",
        "OpenHabMeta",
        "PropertySchema",
        "SchemaBuildError",
        "X_COSALETTE_CONSUMER",
        "X_COSALETTE_HA_DISCOVERY",
        "X_COSALETTE_OPENHAB",
        "consumer",
        "ha_discovery",
        "ha_entities",
        "ha_entity",
        "merge",
        "openhab",
        "percent",
        "resolved_asyncapi",
        "resolved_asyncapi_sync",
        "temperature",
    ),
    "cosalette.stores": (
        "DeviceStore",
        "JsonFileStore",
        "MemoryStore",
        "NullStore",
        "SqliteStore",
        "Store",
    ),
    "cosalette.strategies": (
        "AllStrategy",
        "AnyStrategy",
        "Every",
        "OnChange",
        "PublishStrategy",
    ),
    "cosalette.testing": (
        "AppHarness",
        "FakeClock",
        "ManualClock",
        "MockMqttClient",
        "NullMqttClient",
        "StreamHandlerProxy",
        "assert_discovery_topics_published",
        "make_settings",
    ),
    "cosalette.mcp": ("create_server",),
    "cosalette.filters": (
        "Filter",
        "MedianFilter",
        "OneEuroFilter",
        "Pt1Filter",
    ),
}


def table() -> dict[str, str]:
    """The section's rows: the cosalette name to what its row says."""
    text = GUIDE.read_text()
    assert SECTION in text, "docs/migrating.md lost its last section"
    section = text.split(SECTION, 1)[1]
    assert "\n## " not in section, "the table's section must stay the last one"
    rows: dict[str, str] = {}
    for line in section.splitlines():
        found = ROW.match(line)
        if found:
            assert found.group(1) not in rows, f"{found.group(1)} has two rows"
            rows[found.group(1)] = found.group(2)
    return rows


def every_name() -> list[str]:
    return [f"{module}.{name}" for module, names in COSALETTE_0_12_1.items() for name in names]


def resolve(path: str) -> object:
    """``triolette.a.b.Name``: the longest importable module, then attributes."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(path)


def test_every_cosalette_name_has_a_row():
    rows = table()
    missing = [name for name in every_name() if name not in rows]
    assert missing == []
    assert sorted(rows) == sorted(every_name()), "a row for a name cosalette does not have"


@pytest.mark.parametrize("name", every_name())
def test_each_row_names_an_import_that_resolves_or_says_why_there_is_none(name: str):
    cell = table()[name]
    found = IMPORT.match(cell)
    if found is None:
        assert re.match(r"(none|not yet|typed contracts \(in progress\))[: ]", cell), cell
        return
    resolve(found.group(1))  # raises if the import does not resolve


def test_an_import_that_does_not_resolve_is_caught():
    with pytest.raises(AttributeError):
        resolve("triolette.NoSuchName")
    with pytest.raises(AttributeError):
        resolve("triolette.filters.NoSuchFilter")
