"""The trio machinery that runs an app.

What is declared: ``app`` (the App: options, decorators) and ``registry`` (the device specs).
What runs: ``running`` (one RunningApp per serve: actors, lifecycle, shutdown), ``supervisor``,
``reports`` and ``health``; ``process`` owns the process (signals, exit status) for ``run()``.

Internal: import public names from ``triolette``.
"""
