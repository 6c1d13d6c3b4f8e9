"""MQTT benchmark: the MQTT actor (``MqttActor`` over ``PahoTransport``) against paho's own thread.

    python bench/mqtt.py [--quick] [--repeat 5] [--messages 20000] [--round-trips 2000]
                         [--paced-seconds 2] [--cases qos0,qos1,inbound,rtt,paced]
                         [--durable-seconds 3]

One local mosquitto (``triolette.testing.mosquitto.Mosquitto``, loopback, started by this script
and closed at the end; ``max_queued_messages`` raised so that it never drops the inbound
backlog) serves both sides. Each measurement gets a fresh connection, client id and topic prefix
``p``. Payloads are 100-byte JSON objects, built before the clock starts. MQTT 3.1.1 on both
sides.

* **actor**: ``MqttActor(PahoTransport(host, port), Topics(p))`` started with
  ``await nursery.start(actor.run)`` in a fresh ``trio.run`` (PahoTransport's defaults:
  in-flight window 100, no paho thread). The clock starts once connected and the ``online``
  message was acknowledged.
* **threaded** (the baseline): a paho 2.2 ``Client`` (VERSION2 callbacks, MQTTv311) with its own
  network thread (``loop_start``) and no ``on_publish`` callback (the fastest way to use it);
  for QoS 1 ``max_inflight_messages_set(100)``, the same window as PahoTransport's default.

Cases, for both sides (``--messages`` N messages, or ``--round-trips`` for case 4):

1. **publish QoS 0**: N ``await actor.enqueue(Message(f"{p}/dev/state", payload, qos=0,
   retain=False))`` (baseline: ``client.publish(topic, payload, 0)``), then a QoS 1 fence on the
   same topic, ``await actor.publish(fence)`` (baseline: ``publish(..., 1)`` and
   ``wait_for_publish()``). The clock stops when the fence is acknowledged: PUBACKs and QoS 0
   writes are ordered on one connection, so the broker has read every message by then. The
   actor keeps QoS 0 and QoS 1 in separate queues, each with its own pump, so the fence is
   published only once the QoS 0 queue is empty (``statistics().outbox_depth == 0``, polled
   with ``trio.lowlevel.checkpoint()``; the time for that is in the figure). msg/s = N / time.
2. **publish QoS 1**: N QoS 1 messages, the first N-1 with ``await actor.enqueue``, the last
   with ``await actor.publish`` (true once acknowledged); baseline: N ``publish(..., 1)`` and
   ``wait_for_publish()`` on the last. Both in-flight windows are 100. The clock stops at the
   last PUBACK (the broker acknowledges in order). msg/s = N / time.
3. **inbound QoS 0**: the client subscribes to ``{p}/dev/set`` (QoS 1 subscription; the actor
   through ``actor.route("dev", deliver)``, so routing by topic happens inside the actor, and
   ``deliver`` only counts and takes a timestamp; the baseline's ``on_message`` reads
   ``msg.topic`` and ``msg.payload``, counts and takes a timestamp). Then the client stops
   reading (actor: the trio thread is blocked in a synchronous call; baseline: ``loop_stop``),
   and a separate paho client publishes N QoS 0 messages to that topic, followed by a QoS 1
   fence on another topic: once that is acknowledged, the broker has queued all N for the
   subscriber (in its socket buffers and in mosquitto). Then the subscriber reads again
   (baseline: ``loop_start``), and msg/s = (N - 1) / (last receipt - first receipt), so a
   publisher can never be the bottleneck and costs no CPU during the window.
4. **round trip**: one at a time, a QoS 1 publish to ``{p}/dev/set``, which the same client
   is subscribed to (QoS 1); the time from the call (actor: ``await actor.enqueue(...)``, not
   waiting for the PUBACK; baseline: ``client.publish``) to the delivery (actor: ``deliver``
   routed by the actor sets a ``trio.Event`` the producer awaits; baseline: ``on_message`` sets
   a ``threading.Event`` the main thread waits on). The first 5% are warm-up, not counted.
   Median and p99 per repetition.
5. **CPU per 1,000 messages**: ``time.process_time()`` of this process (all its threads) over
   each case's timed window, per 1,000 messages (round trips), in ms. The broker is a separate
   process and not in it (nor is the inbound case's publisher, which ran before the window).
6. **paced QoS 0** (context for the notes' CPU budget, 5% of one core at 1,000 msg/s): for
   ``--paced-seconds`` (0: skipped), one QoS 0 message every 1 ms on a drift-free schedule
   (actor: ``trio.sleep_until`` then ``await actor.enqueue``; baseline: ``time.sleep`` then
   ``client.publish``); CPU time over the window divided by the window: the share of one core.
   At full speed, wake-ups are shared by many messages; at 1,000 msg/s each message pays them.
   Next to each actor run, the same schedule with nothing published (``trio.sleep_until``
   alone, no actor) measures the floor: what trio's wake-ups cost before any MQTT work.

7. **publish only what is durable** (``--durable-seconds``, 0: skipped): the cost of a
   telemetry device's ``publish="durable"`` next to the default ``publish="now"``, for a
   ``JsonFileStore`` and a ``SqliteStore``: cycles/s of 20 devices every 10 ms and the publish
   latency from the handler's return to a subscriber (see ``bench/durable_publish.py``).

Repetitions are interleaved (case by case, the two sides in alternating order), after an
unmeasured warm-up round. Reported: the median over repetitions, with min-max; the ratio is
actor/threaded of the medians, with the min-max of the per-repetition ratios (the two sides of
one repetition ran next to each other). Targets, judged on the ratios of one run (this machine is
shared and noisy, so absolute rates move from run to run): actor QoS 0 at least 0.5x threaded,
QoS 1 at least 0.8x, inbound at least 0.9x, round-trip median under 250 us. Figures from the
notes' section 8.3 (absolute rates, round trip against threaded, CPU budget) are shown too,
for context.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
from benchtools import markdown_table, percentile, verdict
from durable_publish import figures as durable_figures
from paho.mqtt import __version__ as paho_version
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from triolette.actors.mqtt import MqttActor
from triolette.actors.paho import PahoTransport
from triolette.core.messages import Message
from triolette.core.topics import Topics
from triolette.testing.mosquitto import Mosquitto, find_mosquitto

PAYLOAD_BYTES = 100
INFLIGHT = 100  # PahoTransport's default window; the baseline gets the same
TIMEOUT = 60.0  # for any one wait: a benchmark that stalls fails instead of hanging
STALL = 5.0  # the inbound case gives up when nothing arrived for this long
WARM_UP_SHARE = 0.05  # of the round trips
DEVICE = "dev"

TARGET_QOS0 = 0.5
TARGET_QOS1 = 0.8
TARGET_INBOUND = 0.9
TARGET_RTT_US = 250.0
# From the notes, section 8.3 (context only).
NOTES_QOS0_RATE = 25_000
NOTES_QOS1_RATE = 8_000
NOTES_RTT_RATIO = 1.3
NOTES_CORE_SHARE = 5.0  # % of one core at 1,000 msg/s
PACED_RATE = 1000.0

CASES = ("qos0", "qos1", "inbound", "rtt", "paced")
SIDES = ("actor", "threaded")
SIDE_NAMES = {"actor": "actor (trio)", "threaded": "paho loop_start"}


@dataclass
class Sample:
    """One timed window of one case on one side."""

    count: int  # messages (or round trips) in the window
    seconds: float
    cpu: float  # process CPU seconds in the window
    latencies: list[float] = field(default_factory=list)  # round trips only

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_ms_per_1k(self) -> float:
        return self.cpu / self.count * 1e6 if self.count else float("nan")


@dataclass(frozen=True)
class Broker:
    host: str
    port: int


@dataclass(frozen=True)
class Plan:
    """What each repetition runs."""

    bodies: list[bytes]
    trips: int
    paced_seconds: float


def payloads(count: int) -> list[bytes]:
    """``count`` distinct JSON objects of exactly 100 bytes."""
    out = []
    for i in range(count):
        body = {"device": DEVICE, "seq": i, "temperature": 21.5, "humidity": 48.25, "pad": ""}
        short = PAYLOAD_BYTES - len(json.dumps(body, separators=(",", ":")))
        body["pad"] = "x" * short
        encoded = json.dumps(body, separators=(",", ":")).encode()
        assert len(encoded) == PAYLOAD_BYTES, len(encoded)
        out.append(encoded)
    return out


def fresh_prefix() -> str:
    return f"bench{uuid.uuid4().hex[:12]}"


# -- the threaded baseline -------------------------------------------------------------------------


def threaded_client(broker: Broker, client_id: str, *, inflight: int = INFLIGHT) -> paho.Client:
    """A connected paho client running its own network thread (``loop_start``)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
    client.max_inflight_messages_set(inflight)
    connected = threading.Event()

    def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            connected.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port, keepalive=60)
    client.loop_start()
    if not connected.wait(TIMEOUT):
        raise RuntimeError(f"{client_id}: no CONNACK")
    client.on_connect = None
    return client


def threaded_close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


def threaded_subscribe(client: paho.Client, topic: str) -> None:
    acked = threading.Event()

    def on_subscribe(client: paho.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        acked.set()

    client.on_subscribe = on_subscribe
    result, _ = client.subscribe(topic, 1)
    if result != MQTTErrorCode.MQTT_ERR_SUCCESS or not acked.wait(TIMEOUT):
        raise RuntimeError(f"subscribe to {topic} failed")
    client.on_subscribe = None


def threaded_publish(broker: Broker, bodies: list[bytes], qos: int) -> Sample:
    prefix = fresh_prefix()
    topic = f"{prefix}/{DEVICE}/state"
    client = threaded_client(broker, f"{prefix}-threaded")
    try:
        publish = client.publish
        gc.collect()
        cpu, began = time.process_time(), time.perf_counter()
        failed = 0
        if qos == 0:
            for body in bodies:
                if publish(topic, body, 0).rc:
                    failed += 1
            last = publish(topic, b"fence", 1)
        else:
            for body in bodies[:-1]:
                if publish(topic, body, 1).rc:
                    failed += 1
            last = publish(topic, bodies[-1], 1)
        last.wait_for_publish(TIMEOUT)
        ended, cpu_end = time.perf_counter(), time.process_time()
        if failed or not last.is_published():
            raise RuntimeError(
                f"threaded QoS {qos}: {failed} refused, last published: {last.is_published()}"
            )
    finally:
        threaded_close(client)
    return Sample(len(bodies), ended - began, cpu_end - cpu)


def threaded_inbound(broker: Broker, bodies: list[bytes]) -> Sample:
    prefix = fresh_prefix()
    topic = f"{prefix}/{DEVICE}/set"
    client = threaded_client(broker, f"{prefix}-threaded")
    expected = len(bodies)
    count = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(client: paho.Client, userdata: Any, message: Any) -> None:
        nonlocal count, first, last
        _ = message.topic, message.payload
        last = time.perf_counter()
        count += 1
        if count == 1:
            first = last
        if count == expected:
            done.set()

    client.on_message = on_message
    try:
        threaded_subscribe(client, topic)
        client.loop_stop()  # not reading while the backlog is built up
        prepublish(broker, topic, bodies)
        gc.collect()
        cpu = time.process_time()
        client.loop_start()
        seen = -1
        while not done.wait(STALL) and count != seen:
            seen = count
        cpu_end = time.process_time()
    finally:
        threaded_close(client)
    if count != expected:
        raise RuntimeError(f"threaded inbound: received {count} of {expected}")
    return Sample(count - 1, last - first, cpu_end - cpu)


def threaded_round_trips(broker: Broker, bodies: list[bytes], trips: int) -> Sample:
    prefix = fresh_prefix()
    topic = f"{prefix}/{DEVICE}/set"
    client = threaded_client(broker, f"{prefix}-threaded")
    arrived = threading.Event()

    def on_message(client: paho.Client, userdata: Any, message: Any) -> None:
        arrived.set()

    client.on_message = on_message
    warm_up = int(trips * WARM_UP_SHARE)
    latencies: list[float] = []
    try:
        threaded_subscribe(client, topic)
        publish, perf = client.publish, time.perf_counter
        gc.collect()
        cpu = cpu_end = 0.0
        for i in range(warm_up + trips):
            if i == warm_up:
                cpu = time.process_time()
            arrived.clear()
            began = perf()
            publish(topic, bodies[i % len(bodies)], 1)
            if not arrived.wait(TIMEOUT):
                raise RuntimeError("threaded round trip: the message never came back")
            latencies.append(perf() - began)
        cpu_end = time.process_time()
    finally:
        threaded_close(client)
    measured = latencies[warm_up:]
    return Sample(len(measured), sum(measured), cpu_end - cpu, measured)


def threaded_paced(broker: Broker, bodies: list[bytes], seconds: float) -> Sample:
    prefix = fresh_prefix()
    topic = f"{prefix}/{DEVICE}/state"
    client = threaded_client(broker, f"{prefix}-threaded")
    count = int(PACED_RATE * seconds)
    try:
        publish, perf = client.publish, time.perf_counter
        gc.collect()
        cpu, began = time.process_time(), perf()
        for i in range(count):
            delay = began + i / PACED_RATE - perf()
            if delay > 0:
                time.sleep(delay)
            publish(topic, bodies[i % len(bodies)], 0)
        delay = began + seconds - perf()
        if delay > 0:
            time.sleep(delay)
        ended, cpu_end = perf(), time.process_time()
    finally:
        threaded_close(client)
    return Sample(count, ended - began, cpu_end - cpu)


def prepublish(broker: Broker, topic: str, bodies: list[bytes]) -> None:
    """Publish ``bodies`` (QoS 0) to ``topic`` from a separate client; return when the broker
    has read them all (a QoS 1 fence on another topic is acknowledged)."""
    client = threaded_client(broker, f"{fresh_prefix()}-publisher")
    try:
        for body in bodies:
            if client.publish(topic, body, 0).rc:
                raise RuntimeError("publisher: publish refused")
        fence = client.publish(f"{topic}/fence", b"fence", 1)
        fence.wait_for_publish(TIMEOUT)
        if not fence.is_published():
            raise RuntimeError("publisher: the fence was not acknowledged")
    finally:
        threaded_close(client)


# -- the actor -------------------------------------------------------------------------------------


async def with_actor(
    broker: Broker,
    measure: Callable[[MqttActor, Topics], Awaitable[Sample]],
    routes: dict[str, Callable[[Message], bool]] | None = None,
) -> Sample:
    """Run ``measure`` against a started, connected actor; close the actor afterwards."""
    topics = Topics(fresh_prefix())
    transport = PahoTransport(broker.host, broker.port, client_id=f"{topics.prefix}-actor")
    actor = MqttActor(transport, topics, publish_timeout=TIMEOUT)
    for device, deliver in (routes or {}).items():
        actor.route(device, deliver)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)  # connected, subscribed, "online" handed over
        try:
            if not actor.connected:
                raise RuntimeError(f"the actor could not connect to {transport.broker}")
            with trio.fail_after(TIMEOUT):
                # Polled (the actor has no event for it): "online" acknowledged, all quiet.
                while actor.statistics().published < 1:  # noqa: ASYNC110
                    await trio.sleep(0.001)
            gc.collect()
            result = await measure(actor, topics)
        except BaseException:
            actor.abandon()
            raise
        actor.close()
    stats = actor.statistics()
    if stats.failed or stats.commands_dropped:
        raise RuntimeError(f"actor: {stats.failed} failed, {stats.commands_dropped} dropped")
    return result


async def actor_publish(broker: Broker, bodies: list[bytes], qos: int) -> Sample:
    async def measure(actor: MqttActor, topics: Topics) -> Sample:
        topic = topics.state(DEVICE)
        enqueue = actor.enqueue
        cpu, began = time.process_time(), time.perf_counter()
        refused = 0
        if qos == 0:
            for body in bodies:
                if not await enqueue(Message(topic, body, qos=0, retain=False)):
                    refused += 1
            # The fence must not overtake them (QoS 1 has its own queue and pump).
            while actor.statistics().outbox_depth:
                await trio.lowlevel.checkpoint()
            confirmed = await actor.publish(Message(topic, b"fence", qos=1, retain=False))
        else:
            for body in bodies[:-1]:
                if not await enqueue(Message(topic, body, qos=1, retain=False)):
                    refused += 1
            confirmed = await actor.publish(Message(topic, bodies[-1], qos=1, retain=False))
        ended, cpu_end = time.perf_counter(), time.process_time()
        if refused or not confirmed:
            raise RuntimeError(f"actor QoS {qos}: {refused} refused, confirmed: {confirmed}")
        return Sample(len(bodies), ended - began, cpu_end - cpu)

    return await with_actor(broker, measure)


async def actor_inbound(broker: Broker, bodies: list[bytes]) -> Sample:
    expected = len(bodies)
    count = 0
    first = last = 0.0
    done = trio.Event()

    def deliver(message: Message) -> bool:
        nonlocal count, first, last
        last = time.perf_counter()
        count += 1
        if count == 1:
            first = last
        if count == expected:
            done.set()
        return True

    async def measure(actor: MqttActor, topics: Topics) -> Sample:
        # Deliberately blocks the trio thread: the actor reads nothing while the backlog builds.
        prepublish(broker, topics.command(DEVICE), bodies)
        gc.collect()
        cpu = time.process_time()
        seen = -1
        while count != seen:
            seen = count
            with trio.move_on_after(STALL):
                await done.wait()
            if done.is_set():
                break
        cpu_end = time.process_time()
        if count != expected:
            raise RuntimeError(f"actor inbound: received {count} of {expected}")
        return Sample(count - 1, last - first, cpu_end - cpu)

    return await with_actor(broker, measure, {DEVICE: deliver})


async def actor_round_trips(broker: Broker, bodies: list[bytes], trips: int) -> Sample:
    arrived = trio.Event()

    def deliver(message: Message) -> bool:
        arrived.set()
        return True

    async def measure(actor: MqttActor, topics: Topics) -> Sample:
        nonlocal arrived
        topic = topics.command(DEVICE)
        warm_up = int(trips * WARM_UP_SHARE)
        latencies: list[float] = []
        perf, enqueue = time.perf_counter, actor.enqueue
        cpu = 0.0
        with trio.fail_after(TIMEOUT):
            for i in range(warm_up + trips):
                if i == warm_up:
                    cpu = time.process_time()
                arrived = trio.Event()
                began = perf()
                await enqueue(Message(topic, bodies[i % len(bodies)], qos=1, retain=False))
                await arrived.wait()
                latencies.append(perf() - began)
        cpu_end = time.process_time()
        measured = latencies[warm_up:]
        return Sample(len(measured), sum(measured), cpu_end - cpu, measured)

    return await with_actor(broker, measure, {DEVICE: deliver})


async def trio_timer_floor(seconds: float) -> Sample:
    """The paced schedule with nothing published: the cost of the wake-ups alone."""
    count = int(PACED_RATE * seconds)
    gc.collect()
    cpu, began, start = time.process_time(), time.perf_counter(), trio.current_time()
    for i in range(count):
        await trio.sleep_until(start + i / PACED_RATE)
    await trio.sleep_until(start + seconds)
    return Sample(count, time.perf_counter() - began, time.process_time() - cpu)


async def actor_paced(broker: Broker, bodies: list[bytes], seconds: float) -> Sample:
    async def measure(actor: MqttActor, topics: Topics) -> Sample:
        topic = topics.state(DEVICE)
        count = int(PACED_RATE * seconds)
        enqueue = actor.enqueue
        cpu, began, start = time.process_time(), time.perf_counter(), trio.current_time()
        for i in range(count):
            await trio.sleep_until(start + i / PACED_RATE)
            await enqueue(Message(topic, bodies[i % len(bodies)], qos=0, retain=False))
        await trio.sleep_until(start + seconds)
        ended, cpu_end = time.perf_counter(), time.process_time()
        return Sample(count, ended - began, cpu_end - cpu)

    return await with_actor(broker, measure)


# -- driver ----------------------------------------------------------------------------------------


def run_one(case: str, side: str, broker: Broker, plan: Plan) -> Sample:
    bodies = plan.bodies
    if side == "threaded":
        if case == "qos0":
            return threaded_publish(broker, bodies, 0)
        if case == "qos1":
            return threaded_publish(broker, bodies, 1)
        if case == "inbound":
            return threaded_inbound(broker, bodies)
        if case == "rtt":
            return threaded_round_trips(broker, bodies, plan.trips)
        return threaded_paced(broker, bodies, plan.paced_seconds)
    if case == "qos0":
        return trio.run(actor_publish, broker, bodies, 0)
    if case == "qos1":
        return trio.run(actor_publish, broker, bodies, 1)
    if case == "inbound":
        return trio.run(actor_inbound, broker, bodies)
    if case == "rtt":
        return trio.run(actor_round_trips, broker, bodies, plan.trips)
    return trio.run(actor_paced, broker, bodies, plan.paced_seconds)


def progress_of(case: str, actor: Sample, threaded: Sample) -> str:
    if case == "rtt":
        return f"rtt {us(median(actor.latencies)):.0f}/{us(median(threaded.latencies)):.0f} us"
    if case == "paced":
        return f"paced {core_share(actor):.1f}/{core_share(threaded):.1f}% of a core"
    return f"{case} {actor.rate:,.0f}/{threaded.rate:,.0f}"


def core_share(sample: Sample) -> float:
    """Percent of one core used over the window."""
    return sample.cpu / sample.seconds * 100


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: str) -> str:
    """``median (min-max)``."""
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def us(seconds: float) -> float:
    return seconds * 1e6


def mosquitto_version() -> str:
    try:
        done = subprocess.run(
            [find_mosquitto(), "-h"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    first = (done.stdout or done.stderr).splitlines()
    return first[0].removeprefix("mosquitto version ").strip() if first else "?"


def command_line() -> str:
    python = sys.executable
    relative = os.path.relpath(python)
    return shlex.join([relative if not relative.startswith("..") else python, *sys.argv])


Results = dict[str, dict[str, list[Sample]]]


def report(results: Results, repeat: int, messages: int, plan: Plan) -> list[str]:
    """Print the table; return the verdict lines."""

    def values(case: str, side: str, get: Callable[[Sample], float]) -> list[float]:
        return [get(sample) for sample in results[case][side]]

    def ran(case: str) -> bool:
        return bool(results[case]["actor"])

    def paired(case: str, get: Callable[[Sample], float]) -> list[float]:
        return [
            get(a) / get(t)
            for a, t in zip(results[case]["actor"], results[case]["threaded"], strict=True)
        ]

    def rate(s: Sample) -> float:
        return s.rate

    def rtt_median(s: Sample) -> float:
        return us(median(s.latencies))

    def rtt_p99(s: Sample) -> float:
        return us(percentile(s.latencies, 99))

    def cpu(s: Sample) -> float:
        return s.cpu_ms_per_1k

    rows_spec: list[tuple[str, str, Callable[[Sample], float], str]] = [
        ("publish QoS 0 (msg/s)", "qos0", rate, ",.0f"),
        (f"publish QoS 1, in-flight {INFLIGHT} (msg/s)", "qos1", rate, ",.0f"),
        ("inbound QoS 0 (msg/s)", "inbound", rate, ",.0f"),
        ("round trip QoS 1, median (us)", "rtt", rtt_median, ",.0f"),
        ("round trip QoS 1, p99 (us)", "rtt", rtt_p99, ",.0f"),
    ]
    if ran("paced"):
        rows_spec.append(("paced QoS 0, 1,000 msg/s (% of a core)", "paced", core_share, ".1f"))
    header = [
        "case",
        f"{SIDE_NAMES['actor']}",
        f"{SIDE_NAMES['threaded']}",
        "actor/threaded",
        "CPU ms/1k, actor",
        "CPU ms/1k, threaded",
    ]
    rows: list[list[str]] = []
    for label, case, get, fmt in rows_spec:
        if not ran(case):
            continue
        actor, threaded = values(case, "actor", get), values(case, "threaded", get)
        ratios = paired(case, get)
        ratio = median(actor) / median(threaded)
        cpu_cells = [spread(values(case, side, cpu), ".1f") for side in SIDES]
        if get is rtt_p99:
            cpu_cells = ["", ""]
        rows.append(
            [
                label,
                spread(actor, fmt),
                spread(threaded, fmt),
                f"{ratio:.2f}x" + (f" ({min(ratios):.2f}-{max(ratios):.2f})" * (len(ratios) > 1)),
                *cpu_cells,
            ]
        )
    print()
    print(
        f"medians of {repeat} interleaved repetitions (min-max); {messages:,} messages per"
        f" throughput case, {plan.trips:,} round trips; ratio = actor/threaded of the medians"
        " (per-repetition ratios min-max); CPU = this process's CPU time (all threads; the"
        " broker not included) per 1,000 messages or round trips"
    )
    print()
    print(markdown_table(header, rows))

    def ratio_of(case: str, get: Callable[[Sample], float]) -> float:
        return median(values(case, "actor", get)) / median(values(case, "threaded", get))

    verdicts: list[str] = []
    context: list[str] = []
    for case, name, target in (
        ("qos0", "QoS 0 publish", TARGET_QOS0),
        ("qos1", "QoS 1 publish", TARGET_QOS1),
        ("inbound", "inbound QoS 0", TARGET_INBOUND),
    ):
        if ran(case):
            ratio = ratio_of(case, rate)
            verdicts.append(
                f"actor {name} {ratio:.2f}x threaded >= {target}x: " + verdict(ratio >= target)
            )
    if ran("rtt"):
        rtt = median(values("rtt", "actor", rtt_median))
        verdicts.append(
            f"actor round-trip median {rtt:.0f} us < {TARGET_RTT_US:.0f} us: "
            + verdict(rtt < TARGET_RTT_US)
        )
    for case, floor in (("qos0", NOTES_QOS0_RATE), ("qos1", NOTES_QOS1_RATE)):
        if ran(case):
            actor_rate = median(values(case, "actor", rate))
            context.append(
                f"actor {case} {actor_rate:,.0f} msg/s >= {floor:,}: "
                + verdict(actor_rate >= floor)
            )
    if ran("rtt"):
        rtt_ratio = ratio_of("rtt", rtt_median)
        context.append(
            f"actor round-trip median {rtt_ratio:.2f}x threaded <= {NOTES_RTT_RATIO}x: "
            + verdict(rtt_ratio <= NOTES_RTT_RATIO)
        )
    if ran("paced"):
        share = median(values("paced", "actor", core_share))
        baseline = median(values("paced", "threaded", core_share))
        wake_ups = median(values("paced", "floor", core_share))
        context.append(
            f"actor at 1,000 msg/s QoS 0: {share:.1f}% of one core < {NOTES_CORE_SHARE:g}%"
            f" (threaded: {baseline:.1f}%): " + verdict(share < NOTES_CORE_SHARE)
        )
        context.append(
            f"  of which trio's 1,000 wake-ups a second with nothing published: {wake_ups:.1f}%;"
            f" the MQTT work on top: {share - wake_ups:.1f}%"
        )
    print("\ncontext, from the notes' section 8.3 (not this benchmark's targets):")
    for line in context:
        print(f"  {line}")
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 repetitions of 5,000 messages, 500 round trips, 1 s paced",
    )
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (default 5)")
    parser.add_argument("--messages", type=int, default=None, help="per case (default 20,000)")
    parser.add_argument("--round-trips", type=int, default=None, help="(default 2,000)")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    parser.add_argument(
        "--paced-seconds", type=float, default=None, help="paced case per side (default 2; 0: off)"
    )
    parser.add_argument(
        "--durable-seconds",
        type=float,
        default=None,
        help='publish="durable" against "now", per run (default 3, --quick 1; 0: off)',
    )
    args = parser.parse_args(argv)
    durable = args.durable_seconds
    if durable is None:
        durable = 1.0 if args.quick else 3.0
    repeat = args.repeat or (3 if args.quick else 5)
    messages = args.messages or (5_000 if args.quick else 20_000)
    trips = args.round_trips or (500 if args.quick else 2_000)
    paced = args.paced_seconds if args.paced_seconds is not None else (1.0 if args.quick else 2.0)
    if repeat < 1 or messages < 2 or trips < 1 or paced < 0:
        parser.error("--repeat, --round-trips must be positive, --messages at least 2")

    print(
        f"python {sys.version.split()[0]}, trio {trio.__version__}, paho-mqtt {paho_version},"
        f" mosquitto {mosquitto_version()}, {os.cpu_count()} CPUs,"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    print(f"command: {command_line()}")
    plan = Plan(payloads(messages), trips, paced)
    cases = [case for case in CASES if case in args.cases.split(",")]
    if paced == 0 and "paced" in cases:
        cases.remove("paced")
    if not cases or not set(args.cases.split(",")) <= set(CASES):
        parser.error(f"--cases takes a comma-separated subset of {','.join(CASES)}")
    results: Results = {case: {side: [] for side in SIDES} for case in CASES}
    mosquitto = Mosquitto(config=["max_queued_messages 100000000"]).start()
    broker = Broker(mosquitto.host, mosquitto.port)
    began = time.perf_counter()
    try:
        warm = Plan(plan.bodies[:1000], min(100, trips), min(0.2, paced))
        for case in cases:  # warm-up round: imports, thread pools, broker allocations
            for side in SIDES:
                run_one(case, side, broker, warm)
        for rep in range(repeat):
            order = SIDES if rep % 2 == 0 else SIDES[::-1]
            progress = []
            for case in cases:
                for side in order:
                    results[case][side].append(run_one(case, side, broker, plan))
                if case == "paced":
                    timer_only = trio.run(trio_timer_floor, plan.paced_seconds)
                    results[case].setdefault("floor", []).append(timer_only)
                progress.append(
                    progress_of(case, results[case]["actor"][-1], results[case]["threaded"][-1])
                )
            print(
                f"  repetition {rep + 1}/{repeat} (actor/threaded): {', '.join(progress)};"
                f" load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        durable_lines = (
            durable_figures(
                broker.host, broker.port, seconds=durable, devices=20, interval=0.01, repeat=2
            )
            if durable > 0
            else []
        )
    finally:
        mosquitto.close()
    verdicts = report(results, repeat, messages, plan)
    print("\ntargets (ratios from this run):")
    for line in verdicts:
        print(f"  {line}")
    if durable_lines:
        print()
        print("\n".join(durable_lines))
    print(f"\n{time.perf_counter() - began:.0f} s; command: {command_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
