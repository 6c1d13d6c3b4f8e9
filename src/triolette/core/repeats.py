"""Which error reports are news: repeats of one error are counted, not logged or published again."""

from __future__ import annotations


class RepeatFilter:
    """Remembers each source's last error kind (type and message).

    :meth:`is_new` is true for the first error of a kind, and again after :meth:`clear` (a
    clean cycle) or after an error of another kind. ``suppressed`` counts the repeats.
    """

    def __init__(self) -> None:
        self._last: dict[str | None, tuple[str, str]] = {}
        self.suppressed = 0

    def is_new(self, source: str | None, error: BaseException) -> bool:
        kind = (type(error).__name__, str(error))
        if self._last.get(source) == kind:
            self.suppressed += 1
            return False
        self._last[source] = kind
        return True

    def clear(self, source: str | None) -> None:
        self._last.pop(source, None)
