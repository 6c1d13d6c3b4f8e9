"""boiler2mqtt: a heating boiler on MQTT, written as a cosalette bridge is.

    python -m examples.boiler_bridge [the flags of triolette run: --host, --port, --dry-run, ...]

The modules follow the usual layout: ``settings`` (the settings class), ``ports`` (what the
handlers need from the hardware), ``adapters`` (the ebusd client and its simulated twin),
``state`` (the heating demand shared by the handlers), ``models`` (the published states'
shapes), ``routers`` (the telemetry and the command) and ``app`` (the composition root).
"""
