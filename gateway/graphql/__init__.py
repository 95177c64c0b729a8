"""The experience API: one GraphQL schema for portals and widgets.

- ``schema``: the schema, from the read side's query types (``queries``: the customer
  360 and system health; ``lookups``; ``reconciliation``; ``audit``) and the write
  path's (``operations``, ``mutations``, ``subscriptions``);
- ``customer``, ``golden``, ``freshness``, ``invoices``: the customer 360 and its parts;
  ``types``, ``paging``, ``system_status``: the plain object types;
- ``loaders``: the per-request DataLoaders; ``context``: what a resolver knows of its
  request;
- ``engine``: how an operation runs (admission, the lean executor, coded errors);
  ``app`` (HTTP) and ``websocket`` (graphql-transport-ws) hand operations to it;
  ``auth``, ``limits``, ``ratelimit``, ``persisted``: what is checked before it runs.
"""
