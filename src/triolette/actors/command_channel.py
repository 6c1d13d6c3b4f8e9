"""A device handler's command channel: :class:`CommandStream` and ``ctx.on_command`` handlers.

Both read the device's inbox (only ``{prefix}/{device}/set`` is routed to a device) and turn
each message into a :class:`~triolette.Command`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, cast

import trio

from triolette.core.commands import Command
from triolette.core.messages import Message

_C = TypeVar("_C")

CommandCall = Callable[[Command], Awaitable[None]]


class CommandStream(Generic[_C]):
    """An async iterator over a device's commands; ``None`` after each quiet ``timeout``.

    It ends when the device's inbox closes (the app stops). Cancelling a wait loses no
    command: one is taken from the inbox only when it is returned.
    """

    def __init__(
        self, inbox: trio.MemoryReceiveChannel[Message], command_topic: str, timeout: float | None
    ) -> None:
        self._inbox = inbox
        self._command_topic = command_topic
        self._timeout = timeout

    def __aiter__(self) -> CommandStream[_C]:
        return self

    async def __anext__(self) -> _C:
        try:
            if self._timeout is None:
                message = await self._inbox.receive()
            else:
                with trio.move_on_after(self._timeout):
                    message = await self._inbox.receive()
                    return self._command(message)
                return cast(_C, None)
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        return self._command(message)

    async def receive(self) -> _C:
        """The next command (``None`` after a quiet ``timeout``); EndOfChannel at the end."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise trio.EndOfChannel from None

    def _command(self, message: Message) -> _C:
        command = Command.from_message(
            message, command_topic=self._command_topic, timestamp=trio.current_time()
        )
        return cast(_C, command)


def command_caller(device: str, handler: Callable[..., Any]) -> CommandCall:
    """How to call an ``on_command`` ``handler``: with the :class:`Command` when its one
    parameter is typed ``Command``, else with ``(sub_topic, payload)``. A TypeError naming
    ``device`` and the handler for any other shape. A handler may be sync or async."""
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError) as error:
        raise TypeError(f"{device}: on_command({handler!r}) takes no callable") from error
    name = getattr(handler, "__qualname__", repr(handler))
    if len(parameters) == 1 and _is_command(handler, parameters[0]):

        async def with_command(command: Command) -> None:
            await _finish(handler(command))

        return with_command
    if len(parameters) == 2:

        async def with_sub_topic_and_payload(command: Command) -> None:
            await _finish(handler(command.sub_topic, command.payload))

        return with_sub_topic_and_payload
    raise TypeError(
        f"{device}: on_command handler {name} must take (sub_topic, payload) "
        "or one parameter typed Command"
    )


def _is_command(handler: Callable[..., Any], parameter: inspect.Parameter) -> bool:
    annotation = parameter.annotation
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(handler).get(parameter.name, annotation)
        except Exception:
            return annotation in ("Command", "triolette.Command")
    return annotation is Command


async def _finish(result: Any) -> None:
    if inspect.isawaitable(result):
        await result


async def serve_commands(
    stream: CommandStream[Command],
    call: CommandCall,
    *,
    report: Callable[[BaseException], None],
    went_well: Callable[[], None],
) -> None:
    """Call ``call`` for each command in order until the stream ends or this is cancelled.

    A handler's exception is reported (``report``) and the next command is handled; one that
    goes well tells ``went_well``.
    """
    async for command in stream:
        try:
            await call(command)
        except Exception as error:
            report(error)
        else:
            went_well()


class CommandChannel:
    """Who reads one device actor's commands: ``ctx.commands()`` or an ``on_command`` handler.

    ``nursery`` is where an ``on_command`` handler's task runs (set by the ``@app.device``
    actor while its handler runs); it is cancelled with that nursery.
    """

    def __init__(
        self,
        device: str,
        inbox: trio.MemoryReceiveChannel[Message] | None,
        command_topic: str,
        report: Callable[[BaseException], None],
        went_well: Callable[[], None],
    ) -> None:
        self.device = device
        self.nursery: trio.Nursery | None = None
        self._inbox = inbox
        self._command_topic = command_topic
        self._report = report
        self._went_well = went_well
        self._reader: str | None = None

    def stream(self, reader: str, timeout: float | None) -> CommandStream[Any]:
        """The commands for ``reader`` (``"commands"`` or ``"on_command"``).

        RuntimeError when the device takes no commands or another reader has them
        (``ctx.commands()`` may be called again; an ``on_command`` handler reads alone).
        """
        if self._inbox is None:
            raise RuntimeError(f"{self.device} takes no commands")
        if self._reader == "on_command":
            raise RuntimeError(f"{self.device}: an on_command handler already reads the commands")
        if reader == "on_command" and self._reader is not None:
            raise RuntimeError(f"{self.device}: ctx.commands() already reads the commands")
        self._reader = reader
        return CommandStream(self._inbox, self._command_topic, timeout)

    def serve(self, handler: Callable[..., Any]) -> None:
        """Start a task in :attr:`nursery` calling ``handler`` for each command, in order.

        TypeError for a handler of another shape; RuntimeError outside an ``@app.device``
        handler, or as :meth:`stream`.
        """
        call = command_caller(self.device, handler)
        if self.nursery is None:
            raise RuntimeError(f"{self.device}: on_command is for @app.device handlers")
        stream = self.stream("on_command", None)
        serve = functools.partial(serve_commands, report=self._report, went_well=self._went_well)
        self.nursery.start_soon(serve, stream, call)
