"""One module per actor, each the sole owner of one resource (device state, store, broker link).

Internal: import public names from ``triolette``.
"""
