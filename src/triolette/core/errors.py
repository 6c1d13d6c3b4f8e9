"""The exceptions triolette raises.

::

    TrioletteError
    ├── StateNotJSONError      (also TypeError)   a device's state cannot round-trip through JSON
    ├── StoreNotLoadedError    (also RuntimeError) a DeviceStore was used before it was loaded
    ├── StoreOpenError                             a store could not be opened at start
    │   ├── StoreLockedError                       another process holds the store's lock
    │   └── LeaseHeldError                         another bridge holds a device's lease
    ├── StoreWriteError        (also OSError)      a backend could not make a write durable
    ├── StoreConflictError                         a save was based on a stale revision
    ├── StateVersionError                          a stored state is newer than the code knows
    │   └── StateMigrationError                    a stored state could not be migrated
    ├── LeaseLostError                             this bridge lost its lease on its devices
    │   └── StoreFencedError                       the store refused a write of an old lease
    ├── KeyInUseError          (also RuntimeError) a device key already has a running owner
    ├── RegistrationError      (also ValueError)   a device or handler was declared wrongly
    ├── PublishError                               the broker did not confirm a publish
    ├── ConnectError                               the broker could not be reached or refused us
    ├── SettingsError          (also ValueError)   a setting (flag, variable) is invalid
    ├── RestartLimitError                          devices crashed too often: the app stopped
    ├── HandlerTimeoutError    (also TimeoutError) a cycle or command overran its watchdog
    ├── HeartbeatMissedError   (also TimeoutError) a device handler stopped calling heartbeat()
    ├── UnknownDeviceError     (also LookupError)  no device of that name takes the request
    ├── FlushIncompleteError                       shutdown ended with snapshots not durable
    ├── StreamFullError                            a stream's buffer was full (backpressure="raise")
    ├── ReturnValidationError  (also ValueError)   a state did not match its model
    └── PayloadValidationError (also ValueError)   a command's payload did not match its model

Each error names its offender (device, path, holder) in its message and carries it as attributes.
"""

from __future__ import annotations

from pathlib import Path


class TrioletteError(Exception):
    """Base class of every error triolette raises on purpose."""


class StateNotJSONError(TrioletteError, TypeError):
    """A device's state holds a value that does not survive a strict JSON round trip.

    ``str(error)`` reads like ``sensor: ["calib"]["when"] is a datetime``.
    """

    def __init__(self, device: str, path: str, problem: str) -> None:
        self.device = device
        self.path = path
        self.problem = problem
        where = f" {path}" if path else ""
        super().__init__(f"{device}:{where} {problem}")


class StoreNotLoadedError(TrioletteError, RuntimeError):
    """A :class:`~triolette.DeviceStore` was read or written before it was loaded."""

    def __init__(self, device: str) -> None:
        self.device = device
        super().__init__(
            f"{device}: the DeviceStore was used before it was loaded (call load() first)"
        )


class StoreWriteError(TrioletteError, OSError):
    """A backend failed to write; what was persisted before is intact.

    ``path`` is the file, or a server store's URL without its password. The failing
    ``OSError`` (or ``sqlite3.Error``, or the database client's error) is the ``__cause__``;
    ``errno`` is the cause's, or the one the backend names for it (SQLite's "database or
    disk is full" is ``ENOSPC``), so callers check one attribute whatever the backend.
    """

    def __init__(
        self, path: Path | str, keys: list[str], cause: BaseException, *, errno: int | None = None
    ) -> None:
        self.path = path
        self.keys = keys
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        message = f"could not save {shown} to {path}: {cause}"
        if errno is None and isinstance(cause, OSError):
            errno = cause.errno
        if errno is not None:
            super().__init__(errno, message)
        else:
            super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[-1])


class KeyInUseError(TrioletteError, RuntimeError):
    """A second owner asked for a device key that a running device store already owns.

    ``key`` is the device key; the message starts with it.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"{key}: another running device store already owns this key")


class RegistrationError(TrioletteError, ValueError):
    """A device, handler or setting was declared wrongly; raised when it is declared."""


class PublishError(TrioletteError):
    """A publish was not confirmed by the broker (disconnected, refused or timed out)."""

    def __init__(self, topic: str, reason: str) -> None:
        self.topic = topic
        self.reason = reason
        super().__init__(f"publish to {topic} was not confirmed: {reason}")


class FlushIncompleteError(TrioletteError):
    """Shutdown finished with device state that is not durable; ``keys`` names those devices."""

    def __init__(self, keys: list[str], reason: str) -> None:
        self.keys = sorted(keys)
        self.reason = reason
        super().__init__(f"state of {', '.join(self.keys)} was not saved: {reason}")


class RestartLimitError(TrioletteError):
    """Devices were restarted more than the limit allows; ``device`` crashed last.

    The crash that went over the limit is the ``__cause__``.
    """

    def __init__(self, device: str, restarts: int, seconds: float) -> None:
        self.device = device
        self.restarts = restarts
        self.seconds = seconds
        super().__init__(
            f"{device}: crashed once more after {restarts} restarts within {seconds:g} s "
            "(the restart limit)"
        )


class HandlerTimeoutError(TrioletteError, TimeoutError):
    """A telemetry cycle or a command handler ran past its ``timeout`` and was cancelled."""

    def __init__(self, device: str, seconds: float) -> None:
        self.device = device
        self.seconds = seconds
        super().__init__(f"{device}: the handler took longer than {seconds:g} s and was cancelled")


class HeartbeatMissedError(TrioletteError, TimeoutError):
    """An ``@app.device(heartbeat=...)`` handler went too long without ``ctx.heartbeat()``."""

    def __init__(self, device: str, seconds: float) -> None:
        self.device = device
        self.seconds = seconds
        super().__init__(f"{device}: no heartbeat for {seconds:g} s; the handler was restarted")


class ConnectError(TrioletteError):
    """A connection to the broker failed.

    ``permanent`` errors will not go away by retrying (the host name does not resolve, the
    broker refused our credentials, the TLS certificate does not verify); the others (refused,
    timed out, no CONNACK) are outages, retried with backoff.
    """

    def __init__(self, broker: str, reason: str, *, permanent: bool = False) -> None:
        self.broker = broker
        self.reason = reason
        self.permanent = permanent
        super().__init__(f"cannot connect to the MQTT broker at {broker}: {reason}")


class SettingsError(TrioletteError, ValueError):
    """A setting from a flag or an environment variable is invalid; ``setting`` names it."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class StoreOpenError(TrioletteError):
    """A store could not be opened: ``path`` names the store (a file, or a server store's URL
    without its password), ``reason`` the cause.

    ``str(error)`` is one line, like ``cannot open the store /var/lib/x/state.json: Permission
    denied``. Retrying will not help until someone fixes the file or the folder.
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = path
        self.reason = " ".join(reason.split())  # one log line, whatever the cause says
        super().__init__(f"cannot open the store {path}: {self.reason}")


class StoreLockedError(StoreOpenError):
    """The store file is locked by another process (or by another store object)."""

    def __init__(self, path: Path, holder: str) -> None:
        self.holder = holder
        super().__init__(path, f"it is already in use by {holder}; one process owns a store file")


class StoreConflictError(TrioletteError):
    """A save was based on a stale revision: another writer changed the record since this
    store read it. Nothing was written (the whole batch was refused).

    ``device`` is the key, ``expected`` the revision the save was based on, ``found`` the
    revision the store holds (0: the record is absent), ``path`` the store.
    """

    def __init__(self, path: Path | str, device: str, expected: int, found: int) -> None:
        self.path = path
        self.device = device
        self.expected = expected
        self.found = found
        super().__init__(
            f"{device}: the store {path} holds revision {found}, but this save was based on "
            f"revision {expected}: another writer changed it; nothing was overwritten"
        )


class StateVersionError(TrioletteError):
    """The stored state of ``device`` has version ``stored``, newer than ``code_version``,
    the newest this code knows: it was written by a newer release. The device is refused and
    its stored state is left as it is (a downgrade must not destroy data)."""

    def __init__(self, device: str, stored: int, code_version: int, detail: str = "") -> None:
        self.device = device
        self.stored = stored
        self.code_version = code_version
        super().__init__(
            detail
            or f"{device}: the stored state has version {stored}, but this code knows versions "
            f"up to {code_version} (state_version={code_version}): it was written by a newer "
            "release; refusing to start, and leaving its stored state untouched"
        )


class StateMigrationError(StateVersionError):
    """Migrating the stored state of ``device`` from version ``step`` to ``step + 1`` failed
    (the migration raised, returned something else than a dict, or is missing), or the
    migrated state does not fit the device's state model (``step`` is then ``code_version``).
    ``problem`` says what went wrong; the stored state is left as it is."""

    def __init__(
        self, device: str, stored: int, code_version: int, step: int, problem: str
    ) -> None:
        self.step = step
        self.problem = problem
        where = (
            "the migrated state does not fit its state model"
            if step == code_version
            else f"migrating its stored state from version {step} to {step + 1} failed"
        )
        super().__init__(
            device,
            stored,
            code_version,
            f"{device}: {where}: {problem} (stored version {stored}, code version "
            f"{code_version}); the device does not start and its stored state is untouched",
        )


class LeaseHeldError(StoreOpenError):
    """Another bridge holds the lease on ``device`` in the shared store ``path``.

    ``holder`` says who: ``host``, ``pid`` and ``since`` (when its lease was granted).
    """

    def __init__(self, path: Path | str, device: str, host: str, pid: int, since: str) -> None:
        self.device = device
        self.host = host
        self.pid = pid
        self.since = since
        self.holder = f"process {pid} on {host} since {since}"
        super().__init__(
            path,
            f"the device {device!r} is held by another bridge: {self.holder} (start this one "
            "as a standby to take over when that one stops)",
        )


class LeaseLostError(TrioletteError):
    """This bridge lost its lease on its devices in the shared store ``path`` (renewal
    failed past its deadline, or another bridge took them over); it stops its devices."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"lost the lease on the devices in {path}: {reason}")


class StoreFencedError(LeaseLostError):
    """The store refused a write carrying lease epoch ``epoch``: ``device`` was granted to a
    newer lease since (another bridge took over). Nothing was written."""

    def __init__(self, path: Path | str, device: str, epoch: int) -> None:
        self.device = device
        self.epoch = epoch
        super().__init__(
            path,
            f"the store refused a write of {device!r} under lease epoch {epoch}: "
            "another bridge holds a newer lease",
        )


class UnknownDeviceError(TrioletteError, LookupError):
    """A request named a device the app does not have, or one that does not take it
    (``app.trigger()`` for telemetry that is not triggerable locally)."""

    def __init__(self, device: str, reason: str) -> None:
        self.device = device
        self.reason = reason
        super().__init__(f"{device}: {reason}")

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0])


class StreamFullError(TrioletteError):
    """A stream with ``backpressure="raise"`` got an item while its buffer was full."""

    def __init__(self, stream: str, maxsize: int) -> None:
        self.stream = stream
        self.maxsize = maxsize
        super().__init__(f"{stream}: the stream's buffer is full ({maxsize} items)")


class ReturnValidationError(TrioletteError, ValueError):
    """A device's state did not match its model (``state_model=`` or the handler's return
    annotation); nothing of it was published or saved.

    ``str(error)`` names the device, the model and each field path with pydantic's error code,
    never the values: ``sensor: the state does not match Reading: [celsius]: type=float_parsing``.
    """

    def __init__(self, device: str, model: str, errors: tuple[str, ...]) -> None:
        self.device = device
        self.model = model
        self.errors = errors
        super().__init__(f"{device}: the state does not match {model}: {'; '.join(errors)}")


class PayloadValidationError(TrioletteError, ValueError):
    """A command's payload was not JSON, or did not match its model; the handler was not called.

    ``str(error)`` names the device, the model and each field path with pydantic's error code,
    never the input: ``valve: the payload does not match Setpoint: [target]: type=missing``
    (``(root): type=json_invalid`` when it is not JSON).
    """

    def __init__(self, device: str, model: str, errors: tuple[str, ...]) -> None:
        self.device = device
        self.model = model
        self.errors = errors
        super().__init__(f"{device}: the payload does not match {model}: {'; '.join(errors)}")
