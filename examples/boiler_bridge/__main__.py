"""``python -m examples.boiler_bridge``: run the bridge until Ctrl-C.

With no ``--host`` (nor ``TRIOLETTE_MQTT_HOST``) it starts an embedded MQTT broker and says how
to watch it; with no ``BOILER_EBUSD__HOST`` it runs on the simulated boiler.
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
    app.run()


if __name__ == "__main__":
    main()
