"""Describe answers: what a client that describes before it reads needs to know."""

from __future__ import annotations

from typing import Any

from sandbox.crm.schema import API_VERSION, BASE, OBJECTS, ObjectDef

__all__ = ["describe", "describe_global", "resources", "versions"]


def resources() -> dict[str, str]:
    """``GET /services/data/v60.0``: the resources this version offers."""
    return {name: f"{BASE}/{name}" for name in ("sobjects", "query", "composite", "limits")}


def describe_global() -> dict[str, Any]:
    """``GET /sobjects``."""
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [describe(o, brief=True) for o in OBJECTS.values()],
    }


def describe(obj: ObjectDef, *, brief: bool = False) -> dict[str, Any]:
    """``GET /sobjects/{Object}/describe`` (``brief``: the object without its fields)."""
    info: dict[str, Any] = {
        "name": obj.name,
        "label": obj.name,
        "keyPrefix": obj.prefix,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "urls": {
            "sobject": f"{BASE}/sobjects/{obj.name}",
            "describe": f"{BASE}/sobjects/{obj.name}/describe",
            "rowTemplate": f"{BASE}/sobjects/{obj.name}/{{ID}}",
        },
    }
    if brief:
        return info
    info["fields"] = [
        {
            "name": f.name,
            "label": f.label or f.name,
            "type": f.type,
            "length": f.length if f.type not in ("currency", "date", "datetime", "boolean") else 0,
            "nillable": not f.required and f.type != "boolean",
            "createable": f.writable,
            "updateable": f.writable,
            "externalId": f.external_id,
            "unique": f.unique,
            "idLookup": f.name == "Id" or f.external_id,
            "referenceTo": [f.reference_to] if f.reference_to else [],
            "relationshipName": f.relationship,
        }
        for f in obj.fields.values()
    ]
    return info


def versions() -> list[dict[str, str]]:
    """``GET /services/data``: the versions list (no authentication needed)."""
    return [{"label": "Spring '24", "url": BASE, "version": API_VERSION}]
