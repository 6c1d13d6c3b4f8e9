"""Deferred registration options: setting_ref and resolve."""

from __future__ import annotations

import types

import pytest

from triolette import RegistrationError
from triolette.core.deferred import is_deferred, resolve, setting_ref


def test_setting_ref_reads_a_dotted_path():
    settings = types.SimpleNamespace(poll=types.SimpleNamespace(seconds=2.5))
    ref = setting_ref("poll.seconds")
    assert ref(settings) == 2.5
    assert ref.path == "poll.seconds"
    assert repr(ref) == "setting_ref('poll.seconds')"


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a."])
def test_setting_ref_refuses_an_empty_segment(path):
    with pytest.raises(ValueError, match="dotted field path"):
        setting_ref(path)


def test_resolve_calls_a_deferred_option_and_names_it_when_it_fails():
    settings = types.SimpleNamespace(poll=types.SimpleNamespace(seconds=3))
    assert resolve(setting_ref("poll.seconds"), settings, what="sensor: interval") == 3
    assert resolve(10, settings, what="sensor: interval") == 10
    with pytest.raises(RegistrationError, match=r"sensor: interval: setting_ref\('poll.nope'\)"):
        resolve(setting_ref("poll.nope"), settings, what="sensor: interval")


def test_a_type_is_not_deferred():
    assert is_deferred(lambda settings: 1)
    assert not is_deferred(int)
    assert not is_deferred(5)
