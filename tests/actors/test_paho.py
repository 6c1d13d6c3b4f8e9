"""PahoTransport details a real broker shows: socket options, partly written messages."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
import trio

from triolette.actors.paho import PahoTransport
from triolette.core.errors import ConnectError, PublishError
from triolette.core.messages import Message
from triolette.core.topics import MAX_NAME_BYTES, Topics, check_name
from triolette.testing import Mosquitto


async def test_a_qos0_message_finished_by_a_later_eager_write_is_confirmed(
    mosquitto: Mosquitto,
) -> None:
    small_send_buffer = (socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport = PahoTransport(mosquitto.host, mosquitto.port, socket_options=[small_send_buffer])
    await transport.connect(Message("review/will", b"x"), lambda message: None)
    results: dict[str, PublishError | None] = {}

    def recorder(name: str) -> Callable[[PublishError | None], None]:
        def confirmed(error: PublishError | None) -> None:
            results.setdefault(name, error)

        return confirmed

    async with trio.open_nursery() as nursery:
        nursery.start_soon(transport.serve)
        await transport.publish(
            Message("review/big", b"x" * 2_000_000, qos=0),
            recorder("big"),
        )
        assert "big" not in results  # only partly written: the socket refused the rest
        for n in range(400):  # no checkpoint in this loop: the writer task never runs
            time.sleep(0.01)  # noqa: ASYNC251 -- on purpose: the broker drains, trio does not run
            await transport.publish(
                Message("review/small", b"y", qos=0),
                recorder(f"small{n}"),
            )
            if f"small{n}" in results:
                break
        assert results.get(f"small{n}", "missing") is None  # an eager write finished them all
        assert results.get("big", "missing") is None, "confirmed by the write that finished it"
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
