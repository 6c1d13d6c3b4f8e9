"""Stored-state versions: which version a device writes, and migrating older stored states.

A device declares ``state_version=N`` and one migration from each older version
(``migrate={0: fn, 1: fn, ...}``, each a plain function ``dict -> dict``). The persistence
actor loads a stored state with the version recorded beside it (0 when none is: cosalette's
files, or triolette's before versions) and hands it to :meth:`StateContract.migrate` before
any handler sees it:

* version ``N``: the state as it is;
* version ``v < N``: migrations ``v``, ``v+1``, ..., ``N-1`` in order, then, when the device
  declares a ``state_model``, a ``model_validate`` check of the result;
* version ``v > N``: :class:`~triolette.StateVersionError` (written by a newer release).

A migration that raises or returns something else than a dict is a
:class:`~triolette.StateMigrationError` naming the device, the step and the cause. Nothing
here writes: the stored state stays as it was until the device's next save, which records
version ``N`` beside the migrated state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from triolette.actors.spec import DeviceSpec
from triolette.core.errors import StateMigrationError, StateVersionError
from triolette.core.jsonstate import decode_state, encode_state

logger = logging.getLogger("triolette.persistence")

Migration = Callable[[dict[str, Any]], dict[str, Any]]


@attrs.frozen
class StateContract:
    """What one device's stored state must be: its ``version``, the ``migrations`` that lead
    there from each older version, and the ``model`` a migrated state must fit (or ``None``)."""

    version: int = 0
    migrations: Mapping[int, Migration] = attrs.field(factory=dict)
    model: type | None = None

    @classmethod
    def of(cls, spec: DeviceSpec) -> StateContract:
        return cls(spec.state_version, spec.migrations, spec.state_model)

    def migrate(self, key: str, text: str, stored: int) -> str:
        """The canonical text of ``key``'s stored state brought to :attr:`version`.

        ``text`` is returned as it is when ``stored`` is already the version. Raises
        :class:`StateVersionError` when ``stored`` is newer, :class:`StateMigrationError`
        when a step fails or the result does not fit :attr:`model`.
        """
        if stored == self.version:
            return text
        if stored > self.version:
            raise StateVersionError(key, stored, self.version)
        state = decode_state(text)
        for step in range(stored, self.version):
            state = self._step(key, stored, step, state)
        try:
            text = encode_state(key, state)
        except (TypeError, ValueError) as error:
            raise self._failed(key, stored, self.version - 1, f"{error}") from error
        self._check_model(key, stored, state)
        return text

    def _step(self, key: str, stored: int, step: int, state: dict[str, Any]) -> dict[str, Any]:
        migration = self.migrations.get(step)
        if migration is None:
            raise self._failed(key, stored, step, f"no migration from version {step} (migrate=)")
        try:
            result: object = migration(state)
        except Exception as error:
            raise self._failed(key, stored, step, f"{type(error).__name__}: {error}") from error
        if not isinstance(result, dict):
            problem = f"migrate[{step}] returned {type(result).__name__}, not a dict"
            raise self._failed(key, stored, step, problem)
        return result

    def _check_model(self, key: str, stored: int, state: dict[str, Any]) -> None:
        if self.model is None:
            return
        validate: Any = getattr(self.model, "model_validate", None)
        if validate is None:
            return
        try:
            validate(state)
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            problem = " ".join(str(error).split())
            raise self._failed(key, stored, self.version, problem) from error

    def _failed(self, key: str, stored: int, step: int, problem: str) -> StateMigrationError:
        return StateMigrationError(key, stored, self.version, step, problem)


def contracts_of(specs: Iterable[DeviceSpec]) -> dict[str, StateContract]:
    """The contract of each device of ``specs`` that keeps state in the store."""
    return {spec.name: StateContract.of(spec) for spec in specs if spec.uses_store}


def migrate_all(
    contracts: Mapping[str, StateContract],
    texts: Mapping[str, str | None],
    versions: Mapping[str, int],
    keys: Iterable[str],
) -> dict[str, str]:
    """The stored states of ``keys`` that are older than their contract, migrated (logged).

    Raises :class:`StateVersionError` for the first key, in order, that is newer than its
    contract or whose migration fails; nothing is returned then.
    """
    migrated = {}
    for key in keys:
        text, stored = texts.get(key), versions.get(key, 0)
        contract = contracts[key]
        if text is None or stored == contract.version:
            continue
        migrated[key] = contract.migrate(key, text, stored)
        logger.info(
            "%s: migrated the stored state from version %d to %d; it is written with that "
            "version at the device's next save",
            key,
            stored,
            contract.version,
        )
    return migrated
