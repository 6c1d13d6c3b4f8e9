"""PahoTransport details a real broker shows: socket options, partly written messages."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
import trio
import trio.testing

from triolette.actors.paho import PahoTransport
from triolette.core.errors import ConnectError, PublishError
from triolette.core.messages import Message
from triolette.core.topics import MAX_NAME_BYTES, Topics, check_name
from triolette.testing import Mosquitto


async def test_messages_published_in_one_round_leave_together_and_confirm_once_written(
    mosquitto: Mosquitto,
) -> None:
    """No write per publish: the writer sends what a round published, at its end, in order."""
    small_send_buffer = (socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport = PahoTransport(mosquitto.host, mosquitto.port, socket_options=[small_send_buffer])
    await transport.connect(Message("review/will", b"x"), lambda message: None)
    results: dict[str, PublishError | None] = {}
    all_confirmed = trio.Event()

    def recorder(name: str) -> Callable[[PublishError | None], None]:
        def confirmed(error: PublishError | None) -> None:
            results.setdefault(name, error)
            if len(results) == 52:
                all_confirmed.set()

        return confirmed

    async with trio.open_nursery() as nursery:
        nursery.start_soon(transport.serve)
        await trio.testing.wait_all_tasks_blocked()
        await transport.publish(Message("review/big", b"x" * 2_000_000, qos=0), recorder("big"))
        for n in range(50):  # no checkpoint: all of them wait for the writer
            await transport.publish(Message("review/small", b"y", qos=0), recorder(f"small{n}"))
        await transport.publish(Message("review/q1", b"z", qos=1), recorder("q1"))
        assert results == {}  # nothing written yet, so nothing confirmed
        assert transport._client.want_write()
        with trio.fail_after(10):
            await all_confirmed.wait()
        assert list(results) == ["big", *(f"small{n}" for n in range(50)), "q1"]
        assert set(results.values()) == {None}
        assert not transport._client.want_write()
        await transport.disconnect()
        nursery.cancel_scope.cancel()


async def test_a_socket_option_the_system_refuses_is_a_permanent_connect_error(
    mosquitto: Mosquitto,
) -> None:
    unknown = (socket.SOL_SOCKET, 0x7FFF, 1)
    transport = PahoTransport(mosquitto.host, mosquitto.port, socket_options=[unknown])
    refused = rf"socket option \({socket.SOL_SOCKET}, 32767, 1\) refused"
    with pytest.raises(ConnectError, match=refused) as caught:
        await transport.connect(Message("review/will", b"x"), lambda message: None)
    assert caught.value.permanent
    assert not transport.connected


async def test_the_longest_names_check_name_allows_make_topics_mosquitto_takes(
    mosquitto: Mosquitto,
) -> None:
    longest = "é" * (MAX_NAME_BYTES // 2)
    topics = Topics(check_name(longest, "topic prefix"))
    names = [check_name(name) for name in (longest, "Küche", "温度", "a\u2028b")]
    results: list[PublishError | None] = []
    all_confirmed = trio.Event()

    def confirmed(error: PublishError | None) -> None:
        results.append(error)
        if len(results) == len(names):
            all_confirmed.set()

    transport = PahoTransport(mosquitto.host, mosquitto.port)
    await transport.connect(Message("review/will", b"x"), lambda message: None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(transport.serve)
        for name in names:
            await transport.publish(Message(topics.availability(name), b"online"), confirmed)
        with trio.fail_after(5):
            await all_confirmed.wait()
        assert results == [None] * len(names)
        assert transport.connected  # a malformed topic would have cost the connection
        await transport.disconnect()
        nursery.cancel_scope.cancel()
