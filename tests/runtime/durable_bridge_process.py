"""A counting bridge with a file store, run as a process and killed by the durability tests.

    python durable_bridge_process.py HOST PORT PREFIX CLIENT_ID BACKEND PATH PUBLISH DEVICES

``DEVICES`` telemetry devices (``d0``, ``d1``, ...) each add one to a count kept in their
store every 20 ms (``SaveOnChange``) and publish it. ``BACKEND`` is ``json`` or ``sqlite``;
``PUBLISH`` is the devices' ``publish=`` option (``now`` or ``durable``).
"""

from __future__ import annotations

import sys
from typing import Any

from triolette import App, Backoff, DeviceStore, JsonFileStore, PahoTransport, SqliteStore
from triolette.core.policies import SaveOnChange


def main() -> None:
    host, port, prefix, client_id, backend, path, publish, devices = sys.argv[1:9]
    transport = PahoTransport(host, int(port), client_id=client_id, keepalive=1, connect_timeout=1)
    store = JsonFileStore(path) if backend == "json" else SqliteStore(path)
    app = App(
        prefix,
        "1.0.0",
        transport=transport,
        store=store,
        reconnect_backoff=Backoff(initial=0.2, maximum=1.0, jitter=0.5),
        log_statistics_every=None,
    )

    async def count(store: DeviceStore) -> dict[str, Any]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    options: dict[str, Any] = {} if publish == "now" else {"publish": publish}
    for index in range(int(devices)):
        app.telemetry(f"d{index}", interval=0.02, persist=SaveOnChange(), **options)(count)
    app.run([])


if __name__ == "__main__":
    main()
