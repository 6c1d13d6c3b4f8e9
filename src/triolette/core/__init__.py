"""Pure logic shared by every layer: errors, the JSON state codec, save policies.

Internal: import public names from ``triolette``. Nothing here imports trio or does I/O.
"""
