"""Against a real mosquitto: a hung broker slows no device, and overflow is never silent.

The broker is SIGSTOPped (a hung broker, or a dead network path: no RST, no FIN) with a
keepalive far longer than the pause, so only the bridge's own confirmation deadline can notice.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import trio

from triolette import App, DeviceContext, SaveOnChange
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.plugin import ObserverFactory

from .test_mqtt_broker import (
    RECONNECT,
    VERSION,
    RecordingStore,
    WatchedTransport,
    add_counter,
    has,
    highest,
    make_app,
    observe,
    unique,
    watched,
)

DEVICES = 5
INTERVAL = 0.05
BOUND = 1.0  # the publish timeout: a broker silent longer than this counts as lost


def stall_app(broker: Mosquitto, store: RecordingStore, **options: object) -> App:
    """An App whose keepalive (60 s) cannot notice a pause of a few seconds."""
    return App(
        unique("bridge"),
        VERSION,
        store=store,
        transport=WatchedTransport(
            broker.host, broker.port, client_id=unique("bridge"), keepalive=60, connect_timeout=1
        ),
        publish_timeout=BOUND,
        reconnect_backoff=RECONNECT,
        log_statistics_every=None,
        **options,  # type: ignore[arg-type]
    )


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "triolette.mqtt" and text in r.getMessage()]


async def cycle_rates(app: App, seconds: int) -> list[float]:
    """Telemetry cycles per second, all devices together, for each of ``seconds`` seconds."""
    rates = []
    for _ in range(seconds):
        before, started = sum(app.statistics().cycles.values()), trio.current_time()
        await trio.sleep(1)  # a measurement window, not a synchronisation
        done = sum(app.statistics().cycles.values()) - before
        rates.append(done / (trio.current_time() - started))
    return rates


@pytest.mark.slow
async def test_a_hung_broker_slows_no_device_warns_once_and_gets_the_latest_state(
    mosquitto: Mosquitto,
    mqtt_observer_factory: ObserverFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="triolette.mqtt")
    store = RecordingStore(tmp_path / "state.json")
    app = stall_app(mosquitto, store)
    assert isinstance(app.transport, WatchedTransport)
    p = app.topics.prefix
    names = [f"meter{index}" for index in range(DEVICES)]
    for name in names:
        add_counter(app, name, interval=INTERVAL, persist=SaveOnChange())

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await app.wait_until_connected()
        normal = await cycle_rates(app, 2)

        mosquitto.pause()
        saved_at_pause = len(store.history(names[0]))
        try:
            paused = await cycle_rates(app, 4)
        finally:
            mosquitto.resume()
        saved_in_pause = len(store.history(names[0])) - saved_at_pause
        counts_at_resume = {name: store.history(name)[-1] for name in names}

        await app.wait_until_connected()
        late = await observe(mqtt_observer_factory, mosquitto, p)  # an independent observer
        await late.until(
            lambda _: all(
                highest(late, f"{p}/{name}/state") >= counts_at_resume[name] for name in names
            ),
            timeout=10,
        )
        await late.until(has(f"{p}/status", "online"))
        app.shutdown()

    expected = sum(normal) / len(normal)
    print(f"cycles/s before the pause {normal}, during {paused}")
    assert expected >= 0.7 * DEVICES / INTERVAL
    assert all(rate >= 0.8 * expected for rate in paused), (normal, paused)
    # SaveOnChange kept saving at the cycle rate (each save, one device's write).
    assert saved_in_pause >= 0.8 * 4 / INTERVAL
    assert len(messages(caplog, "has confirmed none")) == 1
    assert len(messages(caplog, "confirms messages again")) == 1
    stats = app.statistics().mqtt
    assert stats is not None
    assert stats.connects >= 2  # the silent broker was treated as lost: reconnect path
    assert stats.stalls >= 1
    state = json.loads((tmp_path / "state.json").read_text())
    assert all(state[name]["count"] >= counts_at_resume[name] for name in names)


@pytest.mark.slow
async def test_an_overflow_in_an_outage_is_warned_once_and_reported_when_the_broker_is_back(
    mosquitto: Mosquitto,
    mqtt_observer_factory: ObserverFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="triolette.mqtt")
    app = make_app(mosquitto, outbox_size=10)
    transport = watched(app)
    p = app.topics.prefix
    go, done = trio.Event(), trio.Event()
    returned: list[bool] = []

    @app.device("events")
    async def events(ctx: DeviceContext) -> None:
        await go.wait()
        for number in range(25):
            returned.append(await ctx.publish("event", str(number)))
        done.set()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await app.wait_until_connected()
        transport.gate = trio.Event()  # hold the reconnect until the observer listens
        await trio.to_thread.run_sync(mosquitto.kill)
        await transport.until_attempt(2)
        go.set()
        await done.wait()
        assert messages(caplog, "outbox full") == []  # the episode goes on while away

        await trio.to_thread.run_sync(mosquitto.restart)
        after = await observe(mqtt_observer_factory, mosquitto, p)
        transport.gate.set()
        await after.until(has(f"{p}/events/error"))
        await after.until(has(f"{p}/error"))
        app.shutdown()

    assert returned == [False] * 25
    assert [int(m.payload) for m in after.on(f"{p}/events/event")] == list(range(10))
    logged = messages(caplog, "outbox full")
    assert len(logged) == 1
    assert "outbox full (10 QoS 1 messages): dropped 15 of device events" in logged[0].getMessage()
    [report] = after.payloads(f"{p}/events/error")
    assert report["type"] == "OutboxFullError"
    assert report["device"] == "events"
    assert "dropped 15 of device events since" in report["message"]
