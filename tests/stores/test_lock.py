"""One process owns a store file: a second opener is refused with a message naming the holder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.stores.layout import temp_prefix
from triolette import JsonFileStore, SqliteStore, StoreLockedError

BACKENDS = {"json": (JsonFileStore, "state.json"), "sqlite": (SqliteStore, "state.db")}

HOLDER = textwrap.dedent(
    """
    import sys
    import triolette

    store = getattr(triolette, sys.argv[1])(sys.argv[2])
    store.save("child", {"alive": True})
    print("ready", flush=True)
    sys.stdin.read()
    store.close()
    """
)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_second_process_is_refused_naming_the_path_and_the_holder(tmp_path, backend):
    kind, name = BACKENDS[backend]
    path = tmp_path / name
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, kind.__name__, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    store = kind(path)
    try:
        assert child.stdout.readline() == "ready\n"
        in_flight = tmp_path / f"{temp_prefix(path)}child-writing"
        in_flight.write_bytes(b"{")

        with pytest.raises(StoreLockedError) as refused:
            store.load("child")

        message = str(refused.value)
        assert refused.value.path == path
        assert str(path) in message
        assert re.search(rf"\bprocess {child.pid}\b", message), message
        assert str(os.getpid()) not in message
        assert in_flight.exists(), "the refused opener swept the holder's temp files"
    finally:
        child.stdin.close()
        returncode = child.wait(timeout=30)
        child.stdout.close()
    assert returncode == 0

    assert store.load("child") == {"alive": True}, "the lock is free once the holder exits"
    store.close()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_second_store_object_in_one_process_waits_for_the_first_to_close(tmp_path, backend):
    kind, name = BACKENDS[backend]
    path = tmp_path / name
    first, second = kind(path), kind(str(path))
    first.save("sensor", {"count": 1})

    with pytest.raises(StoreLockedError) as refused:
        second.load("sensor")
    assert str(path) in str(refused.value)
    assert re.search(rf"\bprocess {os.getpid()}\b", str(refused.value))

    first.close()
    assert second.load("sensor") == {"count": 1}
    with pytest.raises(StoreLockedError):
        first.load("sensor")
    second.close()
    assert first.load("sensor") == {"count": 1}
    first.close()
