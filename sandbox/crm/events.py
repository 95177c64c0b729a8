"""Change Data Capture events, as Salesforce pushes them, and their delivery header.

One event per changed record, shaped like a CometD CDC message::

    {"data": {"schema": "...", "payload": {"ChangeEventHeader": {...}, <changed fields>},
              "event": {"replayId": 42}},
     "channel": "/data/AccountChangeEvent"}

``changeOrigin`` is ``com/salesforce/api/rest/60.0;client=<id>`` when the writer sent
``Sforce-Call-Options: client=<id>``, so the gateway can drop echoes of its own writes.
Events of one transaction (a request, or a whole ``allOrNone`` composite) share a
``transactionKey`` and count up ``sequenceNumber``.

Delivery carries ``Authorization: Bearer <webhook secret>``: the shared-secret scheme the
sandbox uses in place of a Pub/Sub subscription.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sandbox.crm.schema import API_VERSION
from sandbox.webhooks import Signer

__all__ = [
    "COMMIT_USER",
    "bearer_signer",
    "change_event",
    "change_origin",
    "new_transaction_key",
]

#: the integration user every API write is attributed to
COMMIT_USER = "005SB0000000001AAQ"


def change_origin(client: str | None) -> str:
    origin = f"com/salesforce/api/rest/{API_VERSION}"
    return f"{origin};client={client}" if client else origin


def new_transaction_key() -> str:
    return secrets.token_hex(16)


def change_event(
    *,
    entity: str,
    record_id: str,
    change_type: str,  # CREATE | UPDATE | DELETE
    fields: dict[str, Any],
    origin: str,
    transaction_key: str,
    sequence: int,
    replay_id: int,
    committed: datetime,
) -> dict[str, Any]:
    """One CDC message. ``fields`` are the new values (all of them for CREATE)."""
    changed = [] if change_type in ("CREATE", "DELETE") else sorted(fields)
    header = {
        "entityName": entity,
        "recordIds": [record_id],
        "changeType": change_type,
        "changedFields": changed,
        "nulledFields": sorted(k for k, v in fields.items() if v is None)
        if change_type == "UPDATE"
        else [],
        "diffFields": [],
        "changeOrigin": origin,
        "transactionKey": transaction_key,
        "sequenceNumber": sequence,
        "commitTimestamp": int(committed.timestamp() * 1000),
        "commitNumber": replay_id,
        "commitUser": COMMIT_USER,
    }
    payload: dict[str, Any] = {"ChangeEventHeader": header}
    if change_type != "DELETE":
        payload.update({k: v for k, v in fields.items() if k != "Id"})
    return {
        "data": {
            "schema": f"sandbox-{entity}ChangeEvent-v1",
            "payload": payload,
            "event": {"replayId": replay_id},
        },
        "channel": f"/data/{entity}ChangeEvent",
    }


def bearer_signer(secret: str) -> Signer:
    """The webhook signer: the shared secret as a bearer token."""

    def sign(body: bytes, unix_time: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    return sign
