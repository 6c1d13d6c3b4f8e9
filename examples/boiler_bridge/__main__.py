"""``python -m examples.boiler_bridge``: run the bridge until Ctrl-C.

With no ``--host`` (nor ``BOILER_MQTT__HOST``) it starts an embedded MQTT broker and says how
to watch it; with no ``BOILER_EBUSD__HOST`` it runs on the simulated boiler. Its state (the
flow target's changes, the pressure's low episodes) lives in ``./data/boiler2mqtt.json``.
"""

from __future__ import annotations

import logging
import sys

from examples.boiler_bridge.app import STORE_PATH, app


def main() -> None:
    if app.settings is not None and app.settings.ebusd.host is None:
        app.dry_run = True  # no ebusd to talk to: the simulated boiler, the broker as usual
        print("no BOILER_EBUSD__HOST: the boiler is simulated", file=sys.stderr, flush=True)
    print(f"state lives in {STORE_PATH.absolute()}", file=sys.stderr, flush=True)
    logging.getLogger("triolette.published").setLevel(logging.DEBUG)  # show every publish
    app.run()  # the flags of `triolette run`; until Ctrl-C or SIGTERM
    print(f"stopped; the state is saved in {STORE_PATH.absolute()}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
