"""The App: topics and flags, lifecycle, statistics, the final flush, signals in a real process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing

import triolette
from tests.helpers import recording_harness
from triolette import (
    App,
    Backoff,
    DeviceContext,
    DeviceStore,
    MemoryStore,
    RegistrationError,
    RestartLimit,
    SaveOnChange,
    SaveOnShutdown,
)
from triolette.runtime.running import Lifecycle
from triolette.testing import AppHarness

# -- topics and flags ---------------------------------------------------------------------------


async def test_status_availability_and_state_topics_and_flags(autojump_clock):
    harness = AppHarness.create(name="bridge")

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object]:
        return {"temp": 21.5, "ok": True}

    await harness.run(cycles=2)
    shown = [(m.topic, m.retain) for m in harness.messages]
    assert shown == [
        ("bridge/status", True),
        ("bridge/sensor/availability", True),
        ("bridge/sensor/state", True),
        ("bridge/sensor/state", True),
        ("bridge/sensor/availability", True),
        ("bridge/status", True),
    ]
    texts = [m.text for m in harness.messages]
    assert texts[:2] == ["online", "online"]
    assert texts[-2:] == ["offline", "offline"]
    assert [json.loads(text) for text in texts[2:4]] == [{"temp": 21.5, "ok": True}] * 2
    retained = {topic: m.text for topic, m in harness.broker.retained.items()}
    assert retained == {
        "bridge/status": "offline",
        "bridge/sensor/availability": "offline",
        "bridge/sensor/state": texts[3],
    }


async def test_a_topic_prefix_replaces_the_app_name(autojump_clock):
    harness = AppHarness.create(name="bridge", topic_prefix="home")

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object]:
        raise ValueError("nope")

    await harness.run()
    topics = {m.topic for m in harness.messages}
    assert topics == {
        "home/status",
        "home/sensor/availability",
        "home/sensor/error",
        "home/error",
    }


async def test_every_device_announces_its_availability(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("a", interval=10)
    async def a() -> None: ...

    @harness.app.device("b")
    async def b(ctx: DeviceContext) -> None:
        await ctx.sleep(100)

    @harness.app.command("c")
    async def c(payload: str) -> None: ...

    await harness.run(duration=50)
    for device in ("a", "b", "c"):
        texts = [m.text for m in harness.broker.on(f"testapp/{device}/availability")]
        assert texts == ["online", "offline"], device


async def test_a_state_that_is_not_a_dict_is_reported(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> object:
        return [1, 2, 3]

    await harness.run()
    assert harness.states("sensor") == []
    (error,) = harness.errors("sensor")
    assert error["type"] == "TypeError"
    assert "sensor" in error["message"]


async def test_a_state_that_is_not_json_is_reported_with_its_path(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object]:
        return {"calib": {"when": object()}}

    await harness.run()
    assert harness.states("sensor") == []
    (error,) = harness.errors("sensor")
    assert error["type"] == "StateNotJSONError"
    assert error["message"].startswith('sensor: ["calib"]["when"]')


# -- the final flush ----------------------------------------------------------------------------


async def test_a_mutation_made_before_the_cancellation_is_flushed(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.telemetry("sensor", interval=3600, persist=SaveOnShutdown())
    async def sensor(store: DeviceStore) -> None:
        store["phase"] = "measuring"
        await trio.sleep(1000)  # cancelled here by the shutdown
        store["phase"] = "done"

    await harness.run(duration=10)
    assert harness.app.statistics().cycles == {"sensor": 0}
    assert [(w.shutdown, w.states) for w in backend.writes] == [
        (True, {"sensor": {"phase": "measuring"}})
    ]


async def test_the_final_flush_writes_every_device(autojump_clock):
    harness, backend = recording_harness({"idle": {"keep": 1}})

    for name in ("left", "right"):

        @harness.app.telemetry(name, interval=10)
        async def handler(ctx: DeviceContext, store: DeviceStore) -> None:
            store["n"] = store.get("n", 0) + 1

    @harness.app.device("idle")
    async def idle(ctx: DeviceContext, store: DeviceStore) -> None:
        await ctx.sleep(10_000)

    await harness.run(cycles=3)
    assert backend.in_loop("left") == []
    assert backend.in_loop("right") == []
    assert backend.load("left") == {"n": 3}
    assert backend.load("right") == {"n": 3}
    assert backend.load("idle") == {"keep": 1}
    assert all("idle" not in w.states for w in backend.writes), "an unchanged state costs no I/O"


# -- lifecycle ----------------------------------------------------------------------------------


async def test_an_app_serves_again_after_a_serve_ended_with_a_fresh_run(autojump_clock):
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)

    @harness.app.telemetry("sensor", interval=10, persist=SaveOnChange())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run()
    first = harness.app.running
    await harness.run(cycles=2)

    assert harness.app.running is not first
    assert harness.app.statistics().cycles == {"sensor": 2}  # counted per serve
    assert backend.load("sensor") == {"count": 3}  # the second serve loaded the first's state


async def test_a_serve_moves_through_one_lifecycle_state(autojump_clock):
    harness = AppHarness.create(store=MemoryStore(), shutdown_timeout=5)
    seen: list[Lifecycle] = []
    release = trio.Event()

    @harness.app.device("stubborn")
    async def stubborn() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await release.wait()  # ignores the shutdown until released

    async def watch() -> None:
        running = await harness.app.current_run()
        for state in Lifecycle:
            await running.wait_for(state)
            seen.append(running.state)
            if state is Lifecycle.ABANDONING:
                release.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await harness.run(duration=60)

    assert seen == list(Lifecycle)  # starting, serving, stopping, abandoning, stopped
    assert trio.current_time() == pytest.approx(65)  # the deadline: 5 s after the request


async def test_serving_an_app_twice_at_once_is_an_error_naming_it(autojump_clock):
    harness = AppHarness.create(name="boiler")

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> None: ...

    async with harness.serving():
        with pytest.raises(RuntimeError, match="'boiler' is already serving"):
            await harness.app.serve()


async def test_devices_cannot_be_declared_while_the_app_serves(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> None: ...

    async def late() -> None: ...

    async with harness.serving():
        with pytest.raises(RegistrationError, match="late: devices must be declared before"):
            harness.app.telemetry("late", interval=10)(late)
        with pytest.raises(RegistrationError, match="adapters must be registered before"):
            harness.app.adapter(int, int)
    assert harness.app.device_names == ["sensor"]


async def test_shutdown_before_serve_makes_serve_return_after_start_up(autojump_clock):
    backend = MemoryStore({"sensor": {"count": 5}})
    harness = AppHarness.create(store=backend)
    calls: list[int] = []

    @harness.app.telemetry("sensor", interval=3600)
    async def sensor(store: DeviceStore) -> None:
        calls.append(1)
        store["count"] += 1

    harness.app.shutdown()
    t0 = trio.current_time()
    await harness.app.serve()  # no deadline around it: see the test below
    assert trio.current_time() == t0
    assert calls == []
    assert backend.load("sensor") == {"count": 5}
    assert [m.text for m in harness.broker.on("testapp/status")] == ["online", "offline"]


async def test_a_graceful_shutdown_takes_no_virtual_time(autojump_clock):
    """Under the autojump clock, stopping must not let virtual time leap to the next deadline.

    Waiting for the persistence actor in a worker thread leaves every task blocked for a moment,
    and the autojump clock then jumps to the test's own deadline. It happens in some runs only,
    so the check repeats.
    """
    for _ in range(200):
        harness = AppHarness.create(store=MemoryStore())

        @harness.app.telemetry("sensor", interval=10)
        async def sensor(store: DeviceStore) -> None:
            store["n"] = store.get("n", 0) + 1

        t0 = trio.current_time()
        with trio.move_on_after(5):  # a test's usual guard
            await harness.run()
        assert trio.current_time() == t0


async def test_shutdown_from_inside_a_handler(autojump_clock):
    harness = AppHarness.create()
    calls: list[float] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object] | None:
        calls.append(trio.current_time())
        if len(calls) == 3:
            harness.trigger_shutdown()
            return None
        return {"n": len(calls)}

    t0 = trio.current_time()
    await harness.run(duration=10_000)
    assert [t - t0 for t in calls] == pytest.approx([0, 10, 20]), "no cycle after the request"
    assert harness.state("sensor") == {"n": 2}


async def test_serve_reports_started_once_the_actors_run(autojump_clock):
    harness = AppHarness.create(store=MemoryStore())

    @harness.app.device("dev")
    async def dev(ctx: DeviceContext) -> None:
        await ctx.sleep(10_000)

    async with trio.open_nursery() as nursery:
        await nursery.start(harness.app.serve)
        assert [m.text for m in harness.broker.on("testapp/status")] == ["online"]
        harness.app.shutdown()
    assert [m.text for m in harness.broker.on("testapp/status")] == ["online", "offline"]


async def test_statistics_after_a_run(autojump_clock):
    harness = AppHarness.create(store=MemoryStore())

    @harness.app.telemetry("sensor", interval=60, persist=SaveOnChange())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    @harness.app.telemetry("quiet", interval=100)
    async def quiet() -> None: ...

    before = harness.app.statistics()
    assert before.cycles == {"sensor": 0, "quiet": 0}
    assert before.persistence is None
    assert before.mqtt is None

    await harness.run(duration=150)  # sensor: 0, 60, 120; quiet: 0, 100
    stats = harness.app.statistics()
    assert isinstance(stats, triolette.AppStatistics)  # a public name, for annotations
    assert stats.cycles == {"sensor": 3, "quiet": 2}
    assert stats.restarts == {"sensor": 0, "quiet": 0}
    persistence = stats.persistence
    assert persistence is not None
    assert persistence.saves == 3
    assert persistence.batches == 3
    assert persistence.keys_written == 3
    assert persistence.bytes_written == sum(len(f'{{"count":{n}}}') for n in (1, 2, 3))
    assert persistence.failures == 0
    assert persistence.last_error is None
    assert persistence.pending_keys == 0
    assert persistence.mailbox_senders == 0, "every mailbox handle was closed"
    assert stats.mqtt is not None
    assert stats.mqtt.published == len(harness.messages)
    assert stats.mqtt.failed == 0


async def test_an_app_without_a_store_runs_and_has_no_persistence_statistics(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object]:
        return {"ok": True}

    await harness.run(cycles=2)
    assert harness.states("sensor") == [{"ok": True}] * 2
    assert harness.app.statistics().persistence is None


# -- App.run() and signals, in a real process ---------------------------------------------------

APP_SCRIPT = """\
import sys

from triolette import App, DeviceStore, JsonFileStore, SaveOnShutdown

app = App("sigapp", store=JsonFileStore(sys.argv[1]))


@app.telemetry("counter", interval=0.005, persist=SaveOnShutdown())
async def counter(store: DeviceStore) -> dict[str, object]:
    store["count"] = store.get("count", 0) + 1
    print(store["count"], flush=True)
    return {"count": store["count"]}


app.run(["--dry-run"])
"""


async def _run_until_signalled(folder: Path, signum: int) -> tuple[int, list[str], str]:
    """Start the app script, wait for its first count, send ``signum``; return what it did."""
    script = trio.Path(folder / "app.py")
    await script.write_text(APP_SCRIPT)
    state = folder / "state.json"
    process = await trio.lowlevel.open_process(
        [sys.executable, str(script), str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = b""
    try:
        with trio.fail_after(30):
            while not any(line.isdigit() for line in output.splitlines()[:-1]):
                chunk = await process.stdout.receive_some()
                if not chunk:
                    break
                output += chunk  # the log lines of app.run() come first, then the counts
            assert b"1\n" in output, f"the app printed no count: {output.decode()!r}"
            process.send_signal(signum)
            while chunk := await process.stdout.receive_some():
                output += chunk
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stdout.aclose()
    text = output.decode()
    return code, text.splitlines(), await trio.Path(state).read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_run_stops_gracefully_on_a_signal_and_flushes(tmp_path, signum):
    code, lines, saved = await _run_until_signalled(tmp_path, signum)
    counts = [line for line in lines if line.isdigit()]
    assert counts, lines
    assert counts == [str(n) for n in range(1, len(counts) + 1)], lines
    assert code == 0, "\n".join(lines)
    assert "Traceback" not in "\n".join(lines)
    document = json.loads(saved)
    written = document.pop("triolette/revisions")["counter"]  # the store's own record
    assert document == {"counter": {"count": int(counts[-1])}}
    assert 1 <= written <= len(counts)  # saves close together share one write


def test_run_exits_with_status_1_when_state_could_not_be_saved(caplog):
    """The error comes out of the signal-watching nursery unwrapped, so run() can map it."""
    import datetime

    app = App("bridge", store=MemoryStore())

    @app.telemetry("sensor", interval=60)
    async def sensor(store: DeviceStore) -> None:
        store["when"] = datetime.datetime.now()  # not JSON: the final snapshot is refused
        app.shutdown()

    with pytest.raises(SystemExit) as exited:
        app.run(["--dry-run"])
    assert exited.value.code == 1
    assert any("sensor" in r.getMessage() for r in caplog.records if r.levelname == "CRITICAL")


class _CannotLoad(MemoryStore):
    def load_all(self) -> dict[str, dict[str, object]]:
        raise OSError(5, "cannot read the store")

    def load_all_encoded(self) -> dict[str, str]:
        raise OSError(5, "cannot read the store")


async def test_a_store_that_cannot_load_fails_serve_at_once_with_its_own_error():
    app = App("bridge", store=_CannotLoad(), publish_timeout=30)

    @app.telemetry("sensor", interval=60)
    async def sensor(store: DeviceStore) -> None:
        store["n"] = 1

    @app.telemetry("other", interval=60)
    async def other(store: DeviceStore) -> None:
        store["n"] = 1

    with trio.fail_after(5):  # real clock: nothing may wait for the MQTT actor that never ran
        with pytest.raises(OSError, match="cannot read the store"):
            await app.serve()


def test_run_exits_with_status_2_when_the_restart_limit_stopped_the_app(caplog):
    app = App("bridge", restart_limit=RestartLimit(restarts=0, seconds=60))

    @app.device("flaky")
    async def flaky() -> None:
        raise RuntimeError("bus error")

    with pytest.raises(SystemExit) as exited:
        app.run(["--dry-run"])
    assert exited.value.code == 2
    assert any(
        "flaky" in r.getMessage() and "restart limit" in r.getMessage()
        for r in caplog.records
        if r.levelname == "CRITICAL"
    )


async def test_the_app_logs_a_statistics_line_periodically(autojump_clock, caplog):
    caplog.set_level("INFO", logger="triolette.app")
    harness = AppHarness.create(store=MemoryStore(), log_statistics_every=10)

    @harness.app.telemetry("sensor", interval=1, persist=SaveOnChange())
    async def sensor(store: DeviceStore) -> None:
        store["n"] = store.get("n", 0) + 1

    await harness.run(duration=35)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("statistics:")]
    assert len(lines) == 3  # at 10, 20 and 30 s
    assert "crashes=0 restarts=0 watchdog=0 failed=-" in lines[-1]
    assert "batches=" in lines[-1]
    assert "store_failures=0" in lines[-1]


async def test_crashes_and_watchdog_firings_are_counted(autojump_clock):
    harness = AppHarness.create(restart_backoff=Backoff(initial=1, jitter=0))
    never = trio.Event()
    runs = 0

    @harness.app.device("flaky")
    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError("bus error")

    @harness.app.telemetry("slow", interval=10, timeout=1)
    async def slow() -> None:
        await never.wait()

    await harness.run(cycles=2)
    stats = harness.app.statistics()
    assert stats.crashes == {"flaky": 2, "slow": 0}
    assert stats.restarts == {"flaky": 2, "slow": 0}
    assert stats.watchdog_firings == 2


async def test_a_thousand_devices_say_online_and_offline_without_waiting_on_the_outbox(
    autojump_clock,
):
    """Availability goes through a table (latest per device), not the bounded outbox.

    The latest value wins: a device that stops before its ``online`` went out publishes only
    ``offline``, which is what a retained availability topic must end with anyway.
    """
    harness = AppHarness.create()
    names = [f"d{index:04d}" for index in range(1000)]
    for name in names:

        @harness.app.telemetry(name, interval=10)
        async def device() -> None:
            return None

    await harness.run(cycles=2)  # ten seconds up: every "online" is out before the stop
    for name in names:
        assert harness.broker.payloads(harness.app.topics.availability(name)) == [
            "online",
            "offline",
        ], name
    assert harness.broker.retained[harness.app.topics.availability("d0999")].text == "offline"
    stats = harness.app.statistics().mqtt
    assert stats is not None
    assert stats.failed == 0
