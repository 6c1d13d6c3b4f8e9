"""An MQTT broker inside the app's own process, for a first run with no broker installed.

:class:`EmbeddedBroker` runs `amqtt <https://pypi.org/project/amqtt/>`_ (an asyncio MQTT 3.1.1
broker, pure Python) in the trio-asyncio loop the caller already opened::

    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        broker = EmbeddedBroker(port=0)
        await nursery.start(broker.run)
        print(broker.subscribe_hint("demo"))
        ...  # connect to 127.0.0.1:broker.port
        nursery.cancel_scope.cancel()  # stops the broker and frees the port

It is a broker for trying things out: anonymous access, retained messages and sessions in
memory only (gone when the process ends), and by default reachable from this machine only.
amqtt is an optional dependency: ``pip install 'triolette[broker]'`` (in a clone of the
repository: ``pip install -e '.[broker]'``). It is imported when
:meth:`EmbeddedBroker.run` starts, so importing triolette never imports it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import importlib.util
import ipaddress
import logging
import shlex
import socket
import sys
from types import TracebackType
from typing import Any

import trio

from triolette.core.errors import SettingsError, TrioletteError

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "pip install 'triolette[broker]', or in a clone of triolette: pip install -e '.[broker]'"
)

_LISTENER = "default"
# The broker library's loggers, kept at WARNING while a broker runs unless triolette logs DEBUG.
_LIBRARY_LOGGERS = ("amqtt", "transitions")


class BrokerExtraMissingError(TrioletteError, ImportError):
    """The embedded broker's library (the ``broker`` extra) is not installed."""

    def __init__(self) -> None:
        super().__init__(
            f"the embedded MQTT broker needs the 'broker' extra (amqtt): {INSTALL_HINT}",
            name="amqtt",
        )


class EmbeddedBroker:
    """An anonymous MQTT 3.1.1 broker on ``host``:``port``, run by :meth:`run`.

    ``port=0`` picks a free port; :attr:`port` is the bound one once :meth:`run` started.
    ``host`` must be a loopback address (``127.0.0.1``, ``::1``, ``localhost``), because
    anyone who can reach the port may publish and subscribe to everything; ``allow_remote=True``
    lifts that. ``shutdown_timeout`` bounds the clean shutdown on cancellation.

    Raises :class:`~triolette.core.errors.SettingsError` (a ``ValueError``) for a non-loopback
    host without ``allow_remote``, or a port outside 0..65535.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        allow_remote: bool = False,
        shutdown_timeout: float = 2.0,
    ) -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise SettingsError("embedded broker port", f"must be 0..65535, got {port!r}")
        if not allow_remote and not _is_loopback(host):
            raise SettingsError(
                "embedded broker host",
                f"{host!r} is not a loopback address; the embedded broker lets anyone who "
                f"reaches it publish and subscribe without credentials, so it listens on "
                f"127.0.0.1 or ::1 only. Pass allow_remote=True to listen on {host!r} anyway",
            )
        self.host = "127.0.0.1" if host == "localhost" else host
        self.allow_remote = allow_remote
        self.shutdown_timeout = shutdown_timeout
        self._port = port
        self._running = False
        self._active = False  # run() entered and not returned yet
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """The port the broker listens on: the bound one while running (the asked one before)."""
        return self._port

    @property
    def running(self) -> bool:
        """Whether :meth:`run` has started the broker and not stopped it yet."""
        return self._running

    @property
    def url(self) -> str:
        """``mqtt://HOST:PORT``, e.g. ``mqtt://127.0.0.1:1883``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    def subscribe_hint(self, prefix: str) -> str:
        """A ``mosquitto_sub`` command line that shows everything under ``prefix``, to print."""
        prefix = prefix.strip("/")
        topic = f"{prefix}/#" if prefix else "#"
        return f"mosquitto_sub -h {self.host} -p {self.port} -t {shlex.quote(topic)} -v"

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<EmbeddedBroker {self.url} {state}>"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the broker until cancelled; start it with ``await nursery.start(broker.run)``.

        Needs a running trio-asyncio loop: call it inside ``async with
        trio_asyncio.open_loop():``, with the nursery opened inside that block too (the broker
        is asyncio code and lives in that loop; ``run`` never opens a loop of its own). Reports
        started once the port accepts connections. On cancellation it disconnects every
        client and closes the port, waiting at most ``shutdown_timeout`` seconds (shielded).

        Raises RuntimeError without a trio-asyncio loop, :class:`BrokerExtraMissingError`
        (an ``ImportError``) when amqtt is not installed, and OSError when the port cannot
        be bound (e.g. another broker already listens on it).
        """
        if self._active:
            raise RuntimeError(f"{self!r} is already running")
        broker_class = _import_broker_class()
        aio_as_trio = _asyncio_bridge()
        self._active = True
        try:
            await self._serve(aio_as_trio, broker_class, task_status)
        finally:
            self._active = False

    async def _serve(
        self, aio_as_trio: Any, broker_class: Any, task_status: trio.TaskStatus[None]
    ) -> None:
        with _QuietLibraryLogs():
            broker, server = await aio_as_trio(self._start)(broker_class)
            try:
                self._port = server.sockets[0].getsockname()[1]
                self._running = True
                logger.info("embedded MQTT broker listening on %s", self.url)
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._running = False
                with trio.move_on_after(self.shutdown_timeout, shield=True) as scope:
                    await aio_as_trio(self._stop)(broker, server)
                if scope.cancelled_caught:
                    logger.warning(
                        "embedded MQTT broker on %s did not stop within %s s; port closed anyway",
                        self.url,
                        self.shutdown_timeout,
                    )
                self._close_everything(server)  # even when the broker's shutdown overran
                logger.info("embedded MQTT broker on %s stopped", self.url)

    # -- asyncio side (runs in the trio-asyncio loop) ----------------------------------------

    async def _start(self, broker_class: Any) -> tuple[Any, asyncio.Server]:
        """Create and start the broker, then the listening socket that feeds it connections.

        triolette binds the socket itself (amqtt's "external" listener type) so that port 0,
        IPv6 loopback and closing the port stay in its hands.
        """
        config = {
            "listeners": {_LISTENER: {"type": "external"}},
            # Only anonymous access: no $SYS publisher, no packet logging, no persistence.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        broker = broker_class(config)
        await broker.start()
        try:
            server = await asyncio.start_server(
                functools.partial(self._serve_client, broker), self.host, self._port
            )
        except OSError as error:
            await broker.shutdown()
            raise OSError(
                error.errno,
                f"the embedded MQTT broker cannot listen on {self.url}: {error.strerror} "
                f"(is another broker running there? port=0 picks a free port)",
            ) from error
        except BaseException:
            await broker.shutdown()
            raise
        return broker, server

    async def _serve_client(
        self, broker: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One client connection, from accept to close (an asyncio task per connection)."""
        self._clients.add(writer)
        try:
            await broker.stream_connected(reader, writer, listener_name=_LISTENER)
        except asyncio.CancelledError:
            # This task ends here either way. Ending it cancelled would make Python 3.11's
            # start_server raise CancelledError in a done callback (fixed in 3.12), which
            # trio-asyncio propagates into the loop's nursery: an error in the caller.
            pass
        finally:
            # Closing twice is harmless, and amqtt 0.12.1 can skip it: its writer adapter
            # drains before closing and gives up when draining fails (client gone first).
            self._clients.discard(writer)
            writer.close()

    async def _stop(self, broker: Any, server: asyncio.Server) -> None:
        server.close()  # accept no new client while the broker disconnects the others
        try:
            await broker.shutdown()
        except Exception:
            logger.warning("embedded MQTT broker: error while shutting down", exc_info=True)
        self._close_everything(server)
        await server.wait_closed()

    def _close_everything(self, server: asyncio.Server) -> None:
        """Close the listening socket and every client connection still open."""
        server.close()
        for writer in list(self._clients):
            writer.close()
        self._clients.clear()


def watch_command(port: int, prefix: str, *, host: str = "127.0.0.1") -> str:
    """A ``triolette watch`` command line showing everything under ``prefix``, to print.

    It names this process's interpreter (``/path/to/venv/bin/python -m triolette watch ...``),
    so it works as printed even when the venv's ``bin`` is not on ``PATH``.
    """
    prefix = prefix.strip("/")
    topic = f"{prefix}/#" if prefix else "#"
    where = "" if host in ("127.0.0.1", "0.0.0.0", "::", "") else f"--host {shlex.quote(host)} "
    python = shlex.quote(sys.executable)
    return f"{python} -m triolette watch {where}--port {port} {shlex.quote(topic)}"


def broker_installed() -> bool:
    """Whether the ``broker`` extra (amqtt) is installed, without importing it."""
    return importlib.util.find_spec("amqtt") is not None


def usual_port_or_free(host: str = "127.0.0.1", port: int = 1883) -> int:
    """``port`` if nothing listens there now, else a port that is free now (so that it can be
    printed before the broker starts)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            probe.bind((host, 0))
        bound: int = probe.getsockname()[1]
    return bound


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _asyncio_bridge() -> Any:
    """``trio_asyncio.aio_as_trio``, after checking that a trio-asyncio loop is running."""
    import trio_asyncio  # imported here: importing it patches asyncio's loop policy

    loop = trio_asyncio.current_loop.get()
    if loop is None or loop.is_closed():
        raise RuntimeError(
            "EmbeddedBroker.run needs a running trio-asyncio loop: start it inside "
            "`async with trio_asyncio.open_loop():` (with the nursery opened in that block)"
        )
    return trio_asyncio.aio_as_trio


def _import_broker_class() -> Any:
    try:
        module = importlib.import_module("amqtt.broker")
    except ImportError as error:
        raise BrokerExtraMissingError() from error
    return _spec_retained_delivery(module.Broker)


# Set while amqtt handles a SUBSCRIBE packet (in that client's asyncio task).
_subscribing: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "triolette_embedded_subscribing", default=False
)


@functools.cache
def _spec_retained_delivery(base: Any) -> Any:
    """amqtt's Broker, sending retained messages on SUBSCRIBE only, as MQTT 3.1.1 says.

    amqtt 0.12.1 also sends them on CONNECT, at QoS 0, for every filter that *any* client
    subscribed to: a client that subscribed to nothing receives other clients' retained
    messages, and a resumed session gets retained commands again. Both hooks are private
    amqtt methods; if they change, this quietly does nothing and the tests catch it.
    """

    class Broker(base):  # type: ignore[misc]
        async def _handle_subscription(self, *args: Any, **kwargs: Any) -> None:
            token = _subscribing.set(True)
            try:
                await super()._handle_subscription(*args, **kwargs)
            finally:
                _subscribing.reset(token)

        async def _publish_retained_messages_for_subscription(
            self, *args: Any, **kwargs: Any
        ) -> None:
            if _subscribing.get():
                await super()._publish_retained_messages_for_subscription(*args, **kwargs)

    return Broker


class _QuietLibraryLogs:
    """Keeps the broker library's loggers at WARNING while brokers run (nestable).

    Left alone when triolette logs at DEBUG, or when the application set their level itself.
    """

    _users = 0
    _quietened: tuple[str, ...] = ()

    def __enter__(self) -> None:
        cls = _QuietLibraryLogs
        cls._users += 1
        if cls._users > 1 or logging.getLogger("triolette").isEnabledFor(logging.DEBUG):
            return
        names = [n for n in _LIBRARY_LOGGERS if logging.getLogger(n).level == logging.NOTSET]
        for name in names:
            logging.getLogger(name).setLevel(logging.WARNING)
        cls._quietened = tuple(names)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        cls = _QuietLibraryLogs
        cls._users -= 1
        if cls._users:
            return
        for name in cls._quietened:
            if logging.getLogger(name).level == logging.WARNING:
                logging.getLogger(name).setLevel(logging.NOTSET)
        cls._quietened = ()
