"""Save policies: decisions, composition, flattening, reprs and user policies."""

from __future__ import annotations

import attrs
import pytest

from triolette import (
    AllSavePolicy,
    AnySavePolicy,
    PersistPolicy,
    SaveAtMostEvery,
    SaveOnChange,
    SaveOnPublish,
    SaveOnShutdown,
)


@attrs.define
class FakeStore:
    dirty: bool = False
    since_save: float | None = None

    def seconds_since_save(self) -> float | None:
        return self.since_save


@pytest.mark.parametrize("dirty", [False, True])
@pytest.mark.parametrize("published", [False, True])
def test_shipped_policies_decide_as_documented(dirty, published):
    store = FakeStore(dirty=dirty)
    assert SaveOnPublish().should_save(store, published) is published
    assert SaveOnChange().should_save(store, published) is dirty
    assert SaveOnShutdown().should_save(store, published) is False
    assert (SaveOnPublish() | SaveOnChange()).should_save(store, published) is (published or dirty)
    assert (SaveOnPublish() & SaveOnChange()).should_save(store, published) is (published and dirty)


def test_at_most_every_counts_from_the_last_save():
    policy = SaveAtMostEvery(60)
    assert policy.should_save(FakeStore(since_save=None), False), "never saved: due"
    assert not policy.should_save(FakeStore(since_save=59.9), True)
    assert policy.should_save(FakeStore(since_save=60.0), False)
    sd_card = SaveOnChange() & SaveAtMostEvery(60)
    assert not sd_card.should_save(FakeStore(dirty=True, since_save=10), False)
    assert sd_card.should_save(FakeStore(dirty=True, since_save=61), False)
    assert not sd_card.should_save(FakeStore(dirty=False, since_save=61), False)


@pytest.mark.parametrize("seconds", [0, -1, float("nan")])
def test_at_most_every_needs_a_positive_period(seconds):
    with pytest.raises(ValueError, match="positive number of seconds"):
        SaveAtMostEvery(seconds)


def test_same_kind_nesting_is_flattened_and_other_kinds_are_kept():
    a, b, c = SaveOnPublish(), SaveOnChange(), SaveAtMostEvery(5)
    assert (a | b | c).children == (a, b, c)
    assert AnySavePolicy(AnySavePolicy(a, b), c).children == (a, b, c)
    assert (a & b & c).children == (a, b, c)
    mixed = (a & b) | c
    assert mixed.children == (AllSavePolicy(a, b), c)


def test_reprs_read_like_the_code_that_built_them():
    assert (
        repr(SaveOnPublish() | SaveOnChange()) == "AnySavePolicy(SaveOnPublish(), SaveOnChange())"
    )
    assert (
        repr((SaveOnChange() & SaveAtMostEvery(30)) | SaveOnShutdown())
        == "AnySavePolicy(AllSavePolicy(SaveOnChange(), SaveAtMostEvery(30)), SaveOnShutdown())"
    )
    assert repr(SaveAtMostEvery(0.5)) == "SaveAtMostEvery(0.5)"


def test_composites_need_children_that_are_policies():
    with pytest.raises(ValueError, match="AnySavePolicy needs at least one policy"):
        AnySavePolicy()
    with pytest.raises(ValueError, match="AllSavePolicy needs at least one policy"):
        AllSavePolicy()
    with pytest.raises(TypeError, match="'often' is not a save policy"):
        AnySavePolicy(SaveOnChange(), "often")  # type: ignore[arg-type]


class EveryThird:
    """A user policy with state: says yes on every third call."""

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[bool] = []

    def should_save(self, store: object, published: bool) -> bool:
        self.calls += 1
        self.seen.append(published)
        return self.calls % 3 == 0


def test_user_policies_compose_from_either_side_and_are_always_asked():
    mine = EveryThird()
    either = SaveOnPublish() | mine
    assert either.children[1] is mine
    store = FakeStore()
    results = [either.should_save(store, True) for _ in range(3)]
    assert results == [True, True, True]
    assert mine.calls == 3, "every child is consulted even after an earlier yes"
    assert mine.seen == [True, True, True]
    both = mine & SaveOnChange()
    assert both.children == (mine, SaveOnChange())


def test_policies_are_values():
    assert SaveOnPublish() == SaveOnPublish()
    assert SaveOnPublish() | SaveOnChange() == AnySavePolicy(SaveOnPublish(), SaveOnChange())
    assert hash(SaveAtMostEvery(3)) == hash(SaveAtMostEvery(3.0))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        SaveAtMostEvery(3).seconds = 4  # type: ignore[misc]


def test_isinstance_tells_a_policy_from_anything_else():
    for policy in [SaveOnPublish(), SaveAtMostEvery(3) & SaveOnChange(), EveryThird()]:
        assert isinstance(policy, PersistPolicy)
    assert not isinstance(object(), PersistPolicy)
    assert not isinstance(FakeStore(), PersistPolicy)
