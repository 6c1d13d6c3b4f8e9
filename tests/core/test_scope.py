"""Scope: what handlers may ask for by type, nearest scope first."""

from __future__ import annotations

import pytest

from triolette import RegistrationError
from triolette.core.scope import MISSING, Scope


class Base:
    pass


class Derived(Base):
    pass


class Other(Base):
    pass


def test_an_exact_type_is_found():
    scope = Scope()
    derived = Derived()
    scope.provide(Derived, derived)
    assert scope.get(Derived) is derived


def test_a_base_class_finds_the_one_instance_of_a_subclass():
    scope = Scope()
    derived = Derived()
    scope.provide(Derived, derived)
    assert scope.get(Base) is derived


def test_two_subclasses_make_a_base_class_ambiguous():
    scope = Scope()
    scope.provide(Derived, Derived())
    scope.provide(Other, Other())
    with pytest.raises(RegistrationError, match="Base is ambiguous: 2"):
        scope.get(Base)


def test_a_child_answers_before_its_parent_and_falls_back_to_it():
    app = Scope()
    app_base, own = Base(), Derived()
    app.provide(Base, app_base)
    device = app.child()
    assert device.get(Base) is app_base
    device.provide(Derived, own)
    assert device.get(Base) is own  # the nearest scope that can answer answers
    assert app.get(Base) is app_base


def test_a_type_is_provided_once_per_scope():
    scope = Scope()
    scope.provide(Base, Base())
    with pytest.raises(RegistrationError, match="already provided as Base"):
        scope.provide(Base, Base())


def test_a_missing_type_names_what_is_provided():
    scope = Scope()
    scope.provide(Derived, Derived())
    assert scope.find(Other) is MISSING
    with pytest.raises(LookupError, match=r"sensor asks for Other.*provided: Derived"):
        scope.get(Other, asked_by="sensor")


def test_replace_swaps_what_is_provided_and_children_see_it():
    scope = Scope()
    first, second = Derived(), Derived()
    scope.provide(Derived, first)
    child = scope.child()
    scope.replace(Derived, second)
    assert child.get(Base) is second
    with pytest.raises(KeyError, match="nothing is provided as Other to replace"):
        scope.replace(Other, Other())
