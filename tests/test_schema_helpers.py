"""The field metadata producers of ``triolette.schema`` and the keys they emit."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel, Field

from triolette import schema


def test_consumer_emits_the_options_given_under_the_triolette_key():
    assert schema.consumer(display_name="Power", unit="W", read_only=True) == {
        "x-triolette-consumer": {"display_name": "Power", "unit": "W", "read_only": True}
    }
    assert schema.consumer() == {"x-triolette-consumer": {}}
    assert schema.CONSUMER_KEY == "x-triolette-consumer"


def test_temperature_and_percent_are_measurements():
    assert schema.temperature("Outside") == {
        "x-triolette-consumer": {
            "display_name": "Outside",
            "device_class": "temperature",
            "unit": "°C",
            "state_class": "measurement",
        }
    }
    assert schema.percent("Battery") == {
        "x-triolette-consumer": {
            "display_name": "Battery",
            "unit": "%",
            "state_class": "measurement",
        }
    }
    assert schema.percent("Battery", icon="mdi:battery")["x-triolette-consumer"]["icon"] == (
        "mdi:battery"
    )


def test_ha_discovery_emits_its_own_key_and_copies_extra():
    extra = {"entity_category": "config"}
    block = schema.ha_discovery(component="select", expire_after=60, extra=extra)
    assert block == {
        "x-triolette-ha-discovery": {
            "component": "select",
            "expire_after": 60,
            "extra": {"entity_category": "config"},
        }
    }
    extra["entity_category"] = "changed"
    assert block["x-triolette-ha-discovery"]["extra"]["entity_category"] == "config"


def test_merge_combines_blocks_and_refuses_a_key_twice():
    merged = schema.merge(schema.consumer(unit="W"), schema.ha_discovery(component="number"))
    assert set(merged) == {"x-triolette-consumer", "x-triolette-ha-discovery"}
    with pytest.raises(ValueError, match="merge: the key 'x-triolette-consumer' is given twice"):
        schema.merge(schema.consumer(unit="W"), schema.temperature("T"))


@pytest.mark.parametrize(
    "text",
    ["Temp\u200berature", "Temp\u202eerature", "Temp\u2066", "a\u00adb", "tab\there", "\ufeffT"],
)
def test_invisible_or_bidirectional_characters_are_refused(text):
    with pytest.raises(ValueError, match="invisible or bidirectional"):
        schema.consumer(display_name=text)
    with pytest.raises(ValueError, match=r"extra\.label"):
        schema.ha_discovery(extra={"label": text})
    with pytest.raises(ValueError, match=r"extra\.options\.1"):
        schema.ha_discovery(extra={"options": ["ok", text]})


def test_visible_text_in_any_script_is_kept():
    assert schema.temperature("Température extérieure °C ☀")["x-triolette-consumer"]
    assert schema.consumer(display_name="温度 שלום")["x-triolette-consumer"]


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="aggregate must be one of"):
        schema.consumer(aggregate="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="read_only must be a bool"):
        schema.consumer(read_only="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expire_after"):
        schema.ha_discovery(expire_after=-1)


def test_pydantic_puts_the_metadata_in_the_fields_json_schema_where_the_readers_find_it():
    class Reading(BaseModel):
        watts: float = Field(json_schema_extra=schema.consumer(unit="W"))
        legacy: float = Field(json_schema_extra={"x-cosalette-consumer": {"unit": "kWh"}})
        both: float = Field(
            json_schema_extra={
                "x-cosalette-consumer": {"unit": "old"},
                "x-triolette-consumer": {"unit": "new"},
            }
        )
        plain: float = 0.0

    fields = Reading.model_json_schema()["properties"]
    assert schema.consumer_metadata(fields["watts"]) == {"unit": "W"}
    assert schema.consumer_metadata(fields["legacy"]) == {"unit": "kWh"}
    assert schema.consumer_metadata(fields["both"]) == {"unit": "new"}
    assert schema.consumer_metadata(fields["plain"]) is None
    assert schema.ha_discovery_metadata(fields["plain"]) == {}


def test_importing_the_schema_module_does_not_import_pydantic():
    code = "import sys, triolette.schema; print('pydantic' in sys.modules)"
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
