"""pytest fixtures for tests against a real mosquitto broker (the ``triolette`` pytest plugin).

* ``mosquitto``: a started :class:`~triolette.testing.mosquitto.Mosquitto` of its own for each
  test, closed afterwards. Without the binary the test is skipped, or fails when the
  environment sets ``TRIOLETTE_REQUIRE_SERVICES=1`` (for CI, where skipping would hide gaps).
  A failing test's report gets the broker log as a "mosquitto log" section.
* ``mqtt_observer_factory``: makes started :class:`~triolette.testing.observer.Observer`
  subscribers for a broker and closes them all after the test.
* ``mock_mqtt``: a new :class:`~triolette.testing.MockMqttClient`.
* ``fake_clock``: a :class:`~triolette.testing.FakeClock`; a trio test that takes it runs on
  it (pytest-trio makes a clock argument the run's clock): time moves only by ``advance``.
* ``postgres_url``: a URL to a new PostgreSQL database of the test's own, dropped afterwards
  (server from ``TRIOLETTE_TEST_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/test``).
* ``redis_url``: a URL with a key prefix of the test's own (``?prefix=...``), whose keys are
  deleted afterwards (server from ``TRIOLETTE_TEST_REDIS``, default ``redis://127.0.0.1:6379/0``).

The service fixtures skip the test, with the reason, when the client library is missing or
the server does not answer; with ``TRIOLETTE_REQUIRE_SERVICES=1`` they fail it instead.

Only this module imports pytest; importing :mod:`triolette` never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Sequence
from typing import NoReturn

import pytest

from triolette.testing.clock import FakeClock
from triolette.testing.mock_mqtt import MockMqttClient
from triolette.testing.mosquitto import Mosquitto, MosquittoNotFound
from triolette.testing.observer import Observer
from triolette.testing.services import postgres_database, redis_prefix

REQUIRE_SERVICES = "TRIOLETTE_REQUIRE_SERVICES"
_LOG_LIMIT = 20_000
_brokers_key = pytest.StashKey[list[Mosquitto]]()


def start_mosquitto(binary: str | None = None) -> Mosquitto:
    """A started broker; skips the test when mosquitto is missing.

    With ``TRIOLETTE_REQUIRE_SERVICES=1`` in the environment a missing binary fails the test
    instead. Raises RuntimeError when the broker does not come up.
    """
    try:
        broker = Mosquitto(binary=binary)
    except MosquittoNotFound as missing:
        if os.environ.get(REQUIRE_SERVICES) == "1":
            pytest.fail(
                f"mosquitto is required ({REQUIRE_SERVICES}=1) but {missing}", pytrace=False
            )
        pytest.skip(f"mosquitto is not installed: {missing}")
    return broker.start()


class ObserverFactory:
    """Makes started observers (the ``mqtt_observer_factory`` fixture); closes them at the end."""

    def __init__(self) -> None:
        self.observers: list[Observer] = []

    def __call__(
        self,
        broker: Mosquitto,
        topics: Sequence[str] = ("#",),
        *,
        client_id: str | None = None,
        start: bool = True,
    ) -> Observer:
        """An observer of ``topics`` on ``broker``, started (subscribed) unless ``start=False``.

        Raises like :meth:`Observer.start`.
        """
        observer = Observer(broker.host, broker.port, topics, client_id=client_id)
        self.observers.append(observer)
        if start:
            observer.start()
        return observer

    def close(self) -> None:
        """Close every observer made so far."""
        for observer in self.observers:
            observer.close()


@pytest.fixture
def mosquitto(request: pytest.FixtureRequest) -> Iterator[Mosquitto]:
    """A mosquitto broker of this test's own, started on a free port; closed at teardown."""
    broker = start_mosquitto()
    request.node.stash.setdefault(_brokers_key, []).append(broker)
    try:
        yield broker
    finally:
        broker.close()


def missing_service(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it with ``TRIOLETTE_REQUIRE_SERVICES=1``."""
    if os.environ.get(REQUIRE_SERVICES) == "1":
        pytest.fail(f"{reason} ({REQUIRE_SERVICES}=1 requires the service)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a PostgreSQL database created for this test and dropped after it."""
    server = os.environ.get("TRIOLETTE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    with postgres_database(server, missing_service) as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL with a key prefix of this test's own; its keys are deleted after it."""
    server = os.environ.get("TRIOLETTE_TEST_REDIS", "redis://127.0.0.1:6379/0")
    with redis_prefix(server, missing_service) as url:
        yield url


@pytest.fixture
def mock_mqtt() -> MockMqttClient:
    """A recording MQTT double, on a broker of its own."""
    return MockMqttClient()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A FakeClock; a trio test that takes it runs on it (pytest-trio uses a clock argument)."""
    return FakeClock()


@pytest.fixture
def mqtt_observer_factory() -> Iterator[ObserverFactory]:
    """Call it with a broker (and topic filters) to get a subscribed Observer."""
    factory = ObserverFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add each broker's log to the report of a failed phase of a test that used one."""
    report = yield
    if report.failed:
        for broker in item.stash.get(_brokers_key, []):
            text = broker.log_text()
            if len(text) > _LOG_LIMIT:
                text = f"[first {len(text) - _LOG_LIMIT} characters cut]\n{text[-_LOG_LIMIT:]}"
            report.sections.append((f"mosquitto log ({broker.host}:{broker.port})", text))
    return report
