"""Example bridges: run ``python examples/gas_meter.py`` or ``python -m examples.boiler_bridge``."""
