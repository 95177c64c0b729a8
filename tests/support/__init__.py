"""What the tests share, in one place (the fixtures built on it are in tests/conftest.py).

- ``paths``: ``ROOT`` (the repository) and ``POLICIES`` (the shipped policy folder).
- ``store``: the SQLite URL behind the ``store`` and ``store_url`` fixtures.
- ``sandboxes``: the four sandbox systems served on loopback ports, their control
  endpoints, and the systems policy pointed at them.
- ``stack``: the loopback sandbox stack (sandboxes, store, real actors); the GraphQL,
  write-path and read-model stacks in their packages are this stack plus what they test.
- ``gateway``: the gateway app called in-process (``in_process``) or served on a loopback
  port (``running_gateway``, the ``served_gateway`` fixture).
- ``upstack``: ``crosswalk up`` as a real process on free ports (the end-to-end tests);
  ``processes``: stopping such a child process.

In process (``in_process``, no socket): a layer's own tests, and the front door of the
GraphQL and read-model stacks. Real HTTP: every actor reaches its sandbox over loopback,
``running_gateway`` serves the whole app (the webhook tests), and ``running_up`` runs the
whole product as its own process (the end-to-end tests).
"""
