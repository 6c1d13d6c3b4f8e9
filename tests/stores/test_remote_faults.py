"""Server faults under a real App: connection reset, a silent server, a Redis restart.

A device counts, saves and waits for each save to be durable (``flush``): a count it saw
flushed is acknowledged. During a fault the persistence actor keeps the pending snapshot,
retries with backoff and logs the outage once; once the fault clears the count goes on, and
a store opened afterwards holds at least the last acknowledged count.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.stores.proxy import Proxy
from tests.stores.remote import REMOTE_BACKENDS, open_remote
from tests.stores.test_remote import _kill_connections
from triolette import App, DeviceContext, DeviceStore
from triolette.stores._remote import take_query
from triolette.testing import MemoryBroker, MemoryTransport
from triolette.testing.plugin import missing_service

TIMEOUT = 1.0
"""The stores' own call timeout in these tests: a silent server fails a call after this."""


class Bridge:
    """An App with one counting device over ``store``, and what the test can wait for."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.app = App(
            "bridge",
            store=store,
            transport=MemoryTransport(MemoryBroker()),
            heartbeat_every=None,
            log_statistics_every=None,
        )
        self.acked = 0
        self._send, self._receive = trio.open_memory_channel[int](math.inf)

        @self.app.device("meter")
        async def meter(ctx: DeviceContext, store: DeviceStore) -> None:
            while True:
                store["count"] = store.get("count", 0) + 1
                store.save()
                await store.flush()
                self._send.send_nowait(store["count"])
                await ctx.sleep(0.002)

    async def acks(self, more: int, seconds: float = 30.0) -> None:
        """Wait (real time, bounded) until ``more`` further counts were acknowledged."""
        target = self.acked + more
        with trio.fail_after(seconds):
            while self.acked < target:
                self.acked = await self._receive.receive()

    async def failures(self, count: int, seconds: float = 30.0) -> None:
        """Wait (bounded polling of the statistics) until ``count`` writes have failed."""
        with trio.fail_after(seconds):
            # The statistics have no event to wait on; polling them is bounded and harmless.
            while self.stats().failures < count:  # noqa: ASYNC110
                await trio.sleep(0.02)

    def stats(self) -> Any:
        stats = self.app.statistics().persistence
        assert stats is not None
        return stats


async def run_fault(
    store: Any,
    fault: Callable[[], None],
    heal: Callable[[], None] | None = None,
    *,
    failures: int = 1,
) -> Bridge:
    """Run a bridge, apply ``fault`` after 3 acks, ``heal`` once ``failures`` writes failed,
    then wait for 3 more acks."""
    bridge = Bridge(store)
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.app.serve)
        await bridge.acks(3)
        await trio.to_thread.run_sync(fault)
        if heal is not None:
            await bridge.failures(failures)
            # The snapshot is kept: pending again, or in the retry that is under way.
            assert bridge.stats().last_error.startswith("StoreWriteError")
            await trio.to_thread.run_sync(heal)
        await bridge.acks(3)
        bridge.app.shutdown()
    return bridge


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    records = [r for r in caplog.records if r.name == "triolette.persistence"]
    errors = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    recovered = [r.getMessage() for r in records if "works again" in r.getMessage()]
    return errors, recovered


def check_kept(backend: str, url: str, bridge: Bridge) -> None:
    reopened = open_remote(backend, url)
    try:
        state = reopened.load("meter")
    finally:
        reopened.close()
    assert state is not None
    assert state["count"] >= bridge.acked


@pytest.fixture(params=REMOTE_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{backend}_url"))


async def test_a_connection_reset_is_one_logged_outage_and_nothing_acked_is_lost(
    backend, url, caplog
):
    store = open_remote(backend, url, timeout=TIMEOUT)
    bridge = await run_fault(store, lambda: _kill_connections(backend, url))
    errors, recovered = outage_lines(caplog)
    assert len(errors) == 1, errors
    assert "kept in memory, retrying" in errors[0]
    assert "hunter2" not in errors[0]
    assert len(recovered) == 1, recovered
    check_kept(backend, url, bridge)


def _through(url: str, proxy_port: int) -> str:
    scheme, rest = url.split("://", 1)
    credentials, _, location = rest.rpartition("@")
    path = location[location.index("/") :]
    at = f"{credentials}@" if credentials else ""
    return f"{scheme}://{at}127.0.0.1:{proxy_port}{path}"


def _target(url: str) -> tuple[str, int]:
    import urllib.parse

    parts = urllib.parse.urlsplit(take_query(url, "prefix")[0])
    return parts.hostname or "127.0.0.1", parts.port or 0


async def test_a_server_that_stops_answering_is_an_outage_until_it_answers_again(
    backend, url, caplog
):
    proxy = Proxy(_target(url))
    try:
        store = open_remote(
            backend, _through(url, proxy.port), timeout=TIMEOUT, connect_timeout=TIMEOUT
        )
        # The first failure is the call the silent server leaves unanswered, the next ones
        # are reconnections that get no answer either.
        bridge = await run_fault(store, proxy.pause, proxy.resume, failures=3)
    finally:
        proxy.close()
    errors, recovered = outage_lines(caplog)
    assert len(errors) == 1, errors
    assert "did not answer within 1 s" in errors[0]
    assert len(recovered) == 1, recovered
    seconds = float(recovered[0].split("saved after ")[1].split(" s")[0])
    assert seconds >= 2 * TIMEOUT, recovered
    check_kept(backend, url, bridge)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server of the test's own with an AOF synced on every write."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing_service("redis-server is not installed")
        self.binary = binary
        self.folder = folder
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        options = {"--port": str(self.port), "--bind": "127.0.0.1", "--dir": str(self.folder)}
        options |= {"--appendonly": "yes", "--appendfsync": "always", "--save": ""}
        command = [self.binary, *(word for pair in options.items() for word in pair)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_a_redis_restart_is_an_outage_and_the_aof_keeps_every_acked_count(
    private_redis, caplog
):
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    store = open_remote("redis", url, timeout=TIMEOUT)
    bridge = await run_fault(store, private_redis.kill, private_redis.start)
    errors, recovered = outage_lines(caplog)
    assert len(errors) == 1, errors
    assert len(recovered) == 1, recovered
    check_kept("redis", url, bridge)
    durability = [r.getMessage() for r in caplog.records if "appendfsync=always" in r.getMessage()]
    assert durability
    assert "a server crash loses no acknowledged batch" in durability[0]


def test_a_redis_that_refuses_config_get_has_an_unknown_durability(private_redis, caplog):
    import redis

    with redis.Redis(port=private_redis.port) as admin:
        admin.execute_command("ACL", "SETUSER", "bridge", "on", ">pw", "~*", "+@all", "-config")
    store = open_remote("redis", f"redis://bridge:pw@127.0.0.1:{private_redis.port}/0")
    try:
        store.save("a", {"n": 1})
        assert store.load("a") == {"n": 1}
    finally:
        store.close()
    assert store.durability is not None
    assert store.durability.startswith("unknown (CONFIG GET was refused)")
    assert store.durability in caplog.text


def test_a_redis_batch_is_one_command_as_the_server_counts_them(private_redis):
    """On a server of its own, ``INFO commandstats`` counts what a batch of 200 costs."""
    import redis

    store = open_remote("redis", f"redis://127.0.0.1:{private_redis.port}/0")
    try:
        store.load_all()
        with redis.Redis(port=private_redis.port) as admin:
            admin.config_resetstat()
            store.save_many({f"dev-{i}": {"i": i} for i in range(200)})
            stats = admin.info("commandstats")
    finally:
        store.close()
    calls = {name.removeprefix("cmdstat_"): figures["calls"] for name, figures in stats.items()}
    calls.pop("info", None)
    calls.pop("config|resetstat", None)
    assert calls.pop("eval") == 1, calls
    # The server counts the commands the script ran too: only those may remain.
    assert set(calls) <= {"type", "time", "hget", "hset", "hincrby", "sadd"}, calls


async def test_an_outage_is_on_the_status_heartbeat_and_in_the_statistics(backend, url):
    """While writes fail the heartbeat's ``store`` says since when and how much is pending."""
    from triolette.runtime.health import HeartbeatFacts, heartbeat_body, statistics_line

    def heartbeat_store(bridge: Bridge) -> Any:
        facts = HeartbeatFacts(bridge.app.statistics(), "1.0", 0.0, {})
        body = json.loads(heartbeat_body(facts))
        return body["store"]

    proxy = Proxy(_target(url))
    try:
        store = open_remote(
            backend, _through(url, proxy.port), timeout=TIMEOUT, connect_timeout=TIMEOUT
        )
        bridge = Bridge(store)
        async with trio.open_nursery() as nursery:
            await nursery.start(bridge.app.serve)
            await bridge.acks(2)
            assert heartbeat_store(bridge) == {"outage_since": None, "pending": 0, "lease_epoch": 1}
            before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
            await trio.to_thread.run_sync(proxy.pause)
            await bridge.failures(1)
            during = heartbeat_store(bridge)
            assert datetime.datetime.fromisoformat(during["outage_since"]) >= before
            assert during["pending"] == 1  # the meter's snapshot, kept for the retry
            assert "store_outage=" in statistics_line(bridge.app.statistics())
            await trio.to_thread.run_sync(proxy.resume)
            await bridge.acks(2)
            assert heartbeat_store(bridge)["outage_since"] is None
            bridge.app.shutdown()
    finally:
        proxy.close()
