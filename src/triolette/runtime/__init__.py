"""The trio machinery that runs an app: App, supervisor, dependency injection, signals.

Internal: import public names from ``triolette``.
"""
