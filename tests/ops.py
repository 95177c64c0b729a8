"""Talking to the gateway's ops endpoints as an operator.

``/metrics`` and the details of ``/readyz`` need a client with the ``ops`` scope (the
demo ops key) unless ``[ops] access = "open"`` in ``policies/clients.toml``:

    async with ops_client(base_url) as http:
        text = (await http.get("/metrics")).text

or pass ``OPS_HEADERS`` to any request.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["OPS_HEADERS", "OPS_KEY", "ops_client"]

OPS_KEY = "demo-ops-key"
OPS_HEADERS = {"Authorization": f"Bearer {OPS_KEY}"}


def ops_client(base_url: str = "http://gateway", **options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that sends the ops key with every request (pass
    ``transport=httpx.ASGITransport(app=app)`` to talk to an app in-process)."""
    headers = {**OPS_HEADERS, **options.pop("headers", {})}
    return httpx.AsyncClient(base_url=base_url, headers=headers, **options)
