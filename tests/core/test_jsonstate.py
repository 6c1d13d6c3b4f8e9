"""The strict JSON codec: what it accepts, and how it names what it refuses."""

from __future__ import annotations

import datetime
import decimal
import enum
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triolette import StateNotJSONError
from triolette.core.jsonstate import decode_document, decode_state, encode_state

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
states = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@given(states)
def test_every_json_state_round_trips_exactly(state):
    text = encode_state("dev", state)
    assert decode_state(text) == state
    assert json.loads(text) == state


class Colour(enum.Enum):
    RED = 1


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            {"calib": {"when": datetime.datetime(2026, 1, 1)}},
            'sensor: ["calib"]["when"] is a datetime',
        ),
        ({"t": float("nan")}, 'sensor: ["t"] is nan, which JSON cannot hold'),
        ({"t": float("-inf")}, 'sensor: ["t"] is -inf, which JSON cannot hold'),
        ({"pair": (1, 2)}, 'sensor: ["pair"] is a tuple'),
        ({"tags": {"a"}}, 'sensor: ["tags"] is a set'),
        ({"price": decimal.Decimal("1.5")}, 'sensor: ["price"] is a Decimal'),
        ({"colour": Colour.RED}, 'sensor: ["colour"] is a Colour'),
        ({"raw": b"x"}, 'sensor: ["raw"] is a bytes'),
        ({"ids": {1: "one"}}, 'sensor: ["ids"] has the key 1, an int, not a str'),
        ({2: "x"}, "sensor: has the key 2, an int, not a str"),
        ({"list": [0, [1, object()]]}, 'sensor: ["list"][1][1] is an object'),
        ({"s": "\ud800"}, 'sensor: ["s"] is a string holding a lone surrogate'),
        ({'we"ird': {"ü": ()}}, 'sensor: ["we\\"ird"]["ü"] is a tuple'),
        ([1, 2], "sensor: state is a list, not a dict"),
    ],
)
def test_refusals_name_the_device_and_the_path(state, message):
    with pytest.raises(StateNotJSONError) as caught:
        encode_state("sensor", state)
    assert str(caught.value) == message
    assert caught.value.device == "sensor"
    assert isinstance(caught.value, TypeError)


def test_a_state_that_contains_itself_is_refused():
    state: dict[str, object] = {"inner": {}}
    state["inner"]["loop"] = state  # type: ignore[index]
    with pytest.raises(StateNotJSONError, match=r'\["inner"\]\["loop"\] contains itself'):
        encode_state("dev", state)


def test_decode_refuses_non_standard_constants_and_non_objects():
    with pytest.raises(ValueError, match="NaN is not JSON"):
        decode_state('{"t": NaN}')
    with pytest.raises(ValueError, match="expected a JSON object, found an array"):
        decode_state("[1]")
    with pytest.raises(ValueError, match="the top level is an array"):
        decode_document("[]")
    with pytest.raises(ValueError, match="the entry 'sensor' is a number, not an object"):
        decode_document('{"sensor": 5}')


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param('{"gas": {"n": 1}, "gas": {"n": 2}}', "gas", id="device"),
        pytest.param('{"gas": {"n": 1, "m3": 0.1, "n": 2}}', "n", id="key-in-a-state"),
        pytest.param('{"gas": {"cal": [{"k": 1, "k": 1}]}}', "k", id="deep-even-if-equal"),
    ],
)
def test_decode_document_refuses_a_key_written_twice(text, key):
    """json keeps the last of two equal keys: the other value is already lost, so it is damage."""
    with pytest.raises(ValueError, match=f"the key '{key}' appears twice"):
        decode_document(text)


def test_decode_state_refuses_a_key_written_twice_and_keeps_distinct_keys():
    with pytest.raises(ValueError, match="the key 'n' appears twice"):
        decode_state('{"n": 1, "n": 2}')
    assert decode_state('{"n": 1, "N": 2, "m": {"n": 3}}') == {"n": 1, "N": 2, "m": {"n": 3}}
