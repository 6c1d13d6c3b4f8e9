"""Registration options decided by the settings: ``interval=setting_ref("poll.seconds")``.

An option given as a callable is *deferred*: the app calls it with its settings object (or
with a device's own configuration, for names expanded from the settings) when a serve starts,
before any device runs. :func:`setting_ref` is such a callable that reads one field by its
dotted path and says which field it reads (the registry shows the path, not ``<deferred>``).
No trio here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from triolette.core.errors import RegistrationError


@attrs.frozen
class SettingRef:
    """Reads the settings field at ``path`` (``"a.b"`` is ``settings.a.b``) when called."""

    path: str

    def __call__(self, settings: Any) -> Any:
        value = settings
        for part in self.path.split("."):
            try:
                value = getattr(value, part)
            except AttributeError:
                raise AttributeError(
                    f"setting_ref({self.path!r}): {type(value).__name__} has no field {part!r}"
                ) from None
        return value

    def __repr__(self) -> str:
        return f"setting_ref({self.path!r})"


def setting_ref(path: str) -> SettingRef:
    """A deferred option that reads the settings field at the dotted ``path``.

    An empty path or an empty segment (``"a..b"``) is a ValueError, raised here.
    """
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise ValueError(
            f"setting_ref needs a dotted field path such as 'poll.seconds', got {path!r}"
        )
    return SettingRef(path)


def is_deferred(value: object) -> bool:
    """Whether ``value`` is decided when the app starts (a callable, not a type)."""
    return callable(value) and not isinstance(value, type)


def resolve(value: Any, source: Any, *, what: str) -> Any:
    """``value`` itself, or, when deferred, ``value(source)``.

    ``what`` names the option in errors (``"sensor: interval"``): a deferred option that
    raises becomes a RegistrationError naming it, with the cause chained.
    """
    if not is_deferred(value):
        return value
    call: Callable[[Any], Any] = value
    try:
        return call(source)
    except Exception as error:
        raise RegistrationError(f"{what}: {value!r} failed: {error}") from error
