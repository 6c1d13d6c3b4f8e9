"""A throwaway mosquitto broker process for tests, with crash, hang and restart controls.

Each :class:`Mosquitto` runs its own broker on 127.0.0.1 at a free port, configured in a fresh
temp directory (anonymous access, no persistence, log to a file there). Every control acts on
the broker's own PID only: :meth:`~Mosquitto.kill` is a crash, :meth:`~Mosquitto.pause` a hung
broker or dead network path, :meth:`~Mosquitto.restart` brings it back on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")
"""Where to look for the binary when it is not on PATH (Debian installs it in sbin)."""

_READY_TIMEOUT = 5.0
_POLL_INTERVAL = 0.02
_STOP_TIMEOUT = 3.0
_START_ATTEMPTS = 3
_RESTART_WINDOW = 2.0
_LOG_TYPES = ("error", "warning", "notice", "information")


class MosquittoNotFound(RuntimeError):
    """The mosquitto binary is not installed (or the given path is not an executable)."""


def find_mosquitto() -> str:
    """The path of the mosquitto binary: PATH first, then the sbin directories.

    Raises :class:`MosquittoNotFound` when there is none.
    """
    found = shutil.which("mosquitto")
    if found:
        return found
    for directory in SBIN_DIRS:
        candidate = os.path.join(directory, "mosquitto")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoNotFound(
        f"no mosquitto binary on PATH or in {', '.join(SBIN_DIRS)} "
        "(Debian/Ubuntu: apt-get install mosquitto)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class Mosquitto:
    """One mosquitto broker process on ``host`` at a free (or the given) port.

    Use as a context manager, or call :meth:`start` and :meth:`close`. The constructor raises
    :class:`MosquittoNotFound` when the binary is missing; nothing runs until :meth:`start`.
    ``config`` adds raw lines to the broker's configuration file.
    """

    def __init__(
        self,
        *,
        binary: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        config: Sequence[str] = (),
    ) -> None:
        if binary is None:
            self._binary = find_mosquitto()
        else:
            self._binary = os.fspath(binary)
            if not (os.path.isfile(self._binary) and os.access(self._binary, os.X_OK)):
                raise MosquittoNotFound(f"{self._binary} is not an executable mosquitto binary")
        self._host = host
        self._fixed_port = port
        self._port = port or 0
        self._extra_config = list(config)
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._closed = False
        self._final_log = ""
        # Whatever happens to this object, never leave a (possibly stopped) broker behind.
        self._live: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(self, _reap, self._live)

    # -- properties ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The broker's port; 0 before the first :meth:`start`. It stays the same on restart."""
        return self._port

    @property
    def log_path(self) -> Path:
        """The broker's log file. Raises RuntimeError before :meth:`start` or after close."""
        if self._dir is None:
            raise RuntimeError("the broker has no log file: not started, or already closed")
        return self._dir / "mosquitto.log"

    @property
    def pid(self) -> int | None:
        """The PID of the current broker process, or None if none was started."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the broker process is alive (a paused broker counts as running)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused and self.running

    def log_text(self) -> str:
        """Everything the broker logged, across restarts; after :meth:`close`, the final log."""
        if self._dir is None:
            return self._final_log
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"<Mosquitto {self._host}:{self._port} pid={self.pid} {state}>"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Mosquitto:
        """Start the broker and wait (at most 5 s) until it accepts an MQTT connection.

        On an early exit (usually a port taken in the meantime) it retries up to 3 times, on a
        new port unless one was given. Raises RuntimeError if it is already running, was
        closed, or never came up (the message holds the log).
        """
        self._check_startable()
        self._ensure_dir()
        failures: list[str] = []
        for _ in range(_START_ATTEMPTS):
            self._port = self._fixed_port or free_port(self._host)
            failure = self._spawn()
            if failure is None:
                return self
            failures.append(failure)
        raise RuntimeError(self._failure_message(failures))

    def restart(self) -> Mosquitto:
        """Kill the broker if it runs, then start it again on the same port.

        While the port is still busy it retries for up to 2 s. Raises RuntimeError if the
        broker was never started, was closed, or does not come back.
        """
        if self._closed:
            raise RuntimeError("this broker was closed; create a new Mosquitto")
        if self._port == 0 or self._dir is None:
            raise RuntimeError("restart() needs a broker that was started before")
        self.kill()
        failures: list[str] = []
        deadline = time.monotonic() + _RESTART_WINDOW
        while True:
            failure = self._spawn()
            if failure is None:
                return self
            failures.append(failure)
            if time.monotonic() >= deadline:
                raise RuntimeError(self._failure_message(failures))
            time.sleep(0.05)  # retry pacing while the old listener's port is released

    def kill(self) -> None:
        """SIGKILL the broker and wait until it is gone (a crash); a no-op if it is not running."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP the broker: connections stay open and nothing answers (a hung broker).

        Raises RuntimeError if it is not running.
        """
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused broker. Raises RuntimeError if it is not running."""
        self._signal(signal.SIGCONT)
        self._paused = False

    def close(self) -> None:
        """Stop the broker for good and remove its temp dir; safe to call more than once.

        A paused broker is resumed first; then SIGTERM, up to 3 s to exit, then SIGKILL.
        The log stays readable through :meth:`log_text`.
        """
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            if self._paused:
                proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        self._paused = False
        self._live.clear()
        self._final_log = self.log_text()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Mosquitto:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _check_startable(self) -> None:
        if self._closed:
            raise RuntimeError("this broker was closed; create a new Mosquitto")
        if self.running:
            raise RuntimeError(f"the broker already runs (pid {self.pid})")

    def _signal(self, signum: signal.Signals) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"cannot send {signum.name}: the broker is not running")
        self._proc.send_signal(signum)

    def _ensure_dir(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="triolette-mosquitto-"))
            # Started as root, mosquitto drops to its own user, which must still read these.
            self._dir.chmod(0o755)
            # mosquitto writes its log itself (flushed per line, so a SIGKILL loses nothing);
            # as root it opens the file only after switching to its own user.
            self.log_path.touch()
            self.log_path.chmod(0o666)

    def _write_config(self, directory: Path) -> Path:
        lines = [
            f"listener {self._port} {self._host}",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            *(f"log_type {log_type}" for log_type in _LOG_TYPES),
            "connection_messages true",
            *self._extra_config,
        ]
        path = directory / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o644)
        return path

    def _spawn(self) -> str | None:
        """Start one process on ``self._port``; None when it is ready, else why it failed.

        Its stdout and stderr go to the log file too (errors before the log opens land there).
        """
        assert self._dir is not None
        config = self._write_config(self._dir)
        with self.log_path.open("ab") as log:
            log.write(f"--- triolette: starting mosquitto on port {self._port}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [self._binary, "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._proc = proc
        self._paused = False
        self._live[:] = [proc]
        deadline = time.monotonic() + _READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                return f"exited with code {proc.returncode} on port {self._port}"
            if _accepts(self._host, self._port):
                return None
            if time.monotonic() >= deadline:
                proc.kill()
                proc.wait()
                return f"no CONNACK on port {self._port} within {_READY_TIMEOUT} s"
            time.sleep(_POLL_INTERVAL)  # readiness poll interval

    def _failure_message(self, failures: list[str]) -> str:
        tail = self.log_text()[-4000:]
        return f"mosquitto did not start ({'; '.join(failures)}); log:\n{tail}"


# MQTT 3.1.1 CONNECT (clean session, keepalive 60 s, client id "triolette-ready-probe"),
# the CONNACK that accepts it, and DISCONNECT.
_PROBE_CONNECT = b"\x10\x21\x00\x04MQTT\x04\x02\x00\x3c\x00\x15triolette-ready-probe"
_PROBE_CONNACK = b"\x20\x02\x00\x00"
_PROBE_DISCONNECT = b"\xe0\x00"


def _accepts(host: str, port: int) -> bool:
    """Whether an MQTT broker answers at the address: a TCP connect alone could reach another
    program that took the port, while our broker is about to exit on "address in use"."""
    try:
        with socket.create_connection((host, port), timeout=0.25) as probe:
            probe.sendall(_PROBE_CONNECT)
            answer = b""
            while len(answer) < len(_PROBE_CONNACK):
                chunk = probe.recv(len(_PROBE_CONNACK) - len(answer))
                if not chunk:
                    return False
                answer += chunk
            probe.sendall(_PROBE_DISCONNECT)
            return answer == _PROBE_CONNACK
    except OSError:
        return False


def _reap(live: list[subprocess.Popen[bytes]]) -> None:
    """Last-resort cleanup at garbage collection or interpreter exit: kill what still runs."""
    for proc in live:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()
