"""``make_settings``: an app's settings for a test, from the given values and defaults only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from triolette.runtime.app_settings import Settings

S = TypeVar("S", bound="Settings")


@overload
def make_settings(settings_class: type[S], /, **overrides: Any) -> S: ...


@overload
def make_settings(**overrides: Any) -> Settings: ...


def make_settings(settings_class: type[Any] | None = None, /, **overrides: Any) -> Any:
    """Settings of ``settings_class`` (default: the base ``triolette.Settings``) built from
    ``overrides`` and the class's defaults: the environment, ``.env`` files and secrets are
    ignored, so a test sees the same settings on every machine.

    A nested field is given as a dict (``mqtt={"host": "broker"}``) or with ``__``
    (``mqtt__host="broker"``). An unknown top-level name is a TypeError naming it; an invalid
    value a :class:`~triolette.SettingsError` naming the field.
    """
    from pydantic import ValidationError

    from triolette.runtime.app_settings import Settings, settings_error

    cls = Settings if settings_class is None else settings_class
    if not (isinstance(cls, type) and issubclass(cls, Settings)):
        raise TypeError(f"make_settings: {cls!r} is not a subclass of triolette.Settings")
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        path = key.split("__")
        if path[0] not in cls.model_fields:
            known = ", ".join(sorted(cls.model_fields))
            raise TypeError(f"make_settings: {cls.__name__} has no field {path[0]!r} ({known})")
        target = values
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    try:
        checked = _isolated(cls)(**values)
    except ValidationError as error:
        raise settings_error(cls, error) from None
    # The same values as an instance of the class itself (they are validated already).
    return cls.model_construct(checked.model_fields_set, **dict(checked))


def _isolated(cls: type[Any]) -> type[Any]:
    """A subclass of ``cls`` whose only source is its constructor's arguments."""

    def only_arguments(subclass: Any, /, settings_cls: Any, init_settings: Any, **rest: Any) -> Any:
        return (init_settings,)

    namespace = {"settings_customise_sources": classmethod(only_arguments)}
    return type(cls.__name__, (cls,), namespace)
