"""``publish="durable"`` against a real mosquitto: a SIGKILL never takes back a count seen.

A counting bridge process (:mod:`tests.runtime.durable_bridge_process`) is killed again and
again (:func:`tests.runtime.durable_kills.kill_rounds`); after each kill an independent
observer's last count per device is compared with the store file. Without the option the
observer is ahead of the disk by one or two cycles after most kills.
"""

from __future__ import annotations

import collections
import uuid
from pathlib import Path

import pytest

from tests.runtime.durable_kills import kill_rounds
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.plugin import ObserverFactory


@pytest.mark.parametrize("backend", ["json", "sqlite"])
def test_after_each_sigkill_no_device_was_seen_ahead_of_its_store(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory, tmp_path: Path, backend: str
) -> None:
    prefix = f"durable-{uuid.uuid4().hex[:8]}"
    observer = mqtt_observer_factory(mosquitto, [f"{prefix}/#"])
    leads = kill_rounds(
        mosquitto,
        observer,
        prefix,
        tmp_path,
        kills=8,
        backend=backend,
        publish="durable",
        devices=3,
    )
    assert len(leads) == 8 * 3
    assert max(leads) <= 0, sorted(collections.Counter(leads).items())
