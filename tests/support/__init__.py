"""What the tests share, in one place (the fixtures built on it are in tests/conftest.py).

- ``paths``: ``ROOT`` (the repository) and ``POLICIES`` (the shipped policy folder).
- ``store``: the SQLite URL behind the ``store`` and ``store_url`` fixtures.
- ``sandboxes``: the four sandbox systems served on loopback ports, their control
  endpoints, and the systems policy pointed at them.
- ``stack``: the loopback sandbox stack (sandboxes, store, real actors); the GraphQL,
  write-path and read-model stacks in their packages are this stack plus what they test.
- ``gateway``: the gateway app called in-process (``in_process``) or served on a loopback
  port (``running_gateway``, the ``served_gateway`` fixture).

In-process is for a layer's own tests; integration tests use real HTTP: the actors reach
the sandboxes over loopback in every stack, and ``running_gateway`` serves the whole app.
"""
