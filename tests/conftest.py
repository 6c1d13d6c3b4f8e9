"""Test rules for this suite.

* Real parts: real files with fsync, real SQLite, real subprocesses for crash and lock tests.
* No sleeping to synchronise: trio's autojump clock, ``wait_all_tasks_blocked`` and events for
  async code; pipes and exit codes for subprocesses.
* Every test must be able to fail: each one checks a behaviour that breaks without the code.
"""
