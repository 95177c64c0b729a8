"""Validation of ticket, organization and user payloads, before anything touches the store.

Each ``clean_*`` function takes the object inside the envelope (``{"ticket": {...}}``),
returns the fields to write, and raises Zendesk's 422 ``RecordInvalid`` with one
``details`` entry per bad field. Documented Zendesk attributes the sandbox does not keep
(``via``, ``brand_id`` ...) are accepted and ignored, as Zendesk accepts them; names that
are no Zendesk attribute at all are refused, so typos do not pass silently.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sandbox.app import SandboxState

from .wire import Details, bad_request, record_invalid
from .world import ORG, USER, find_organizations

__all__ = [
    "ENTITLEMENT_STATUSES",
    "PRIORITIES",
    "STATUSES",
    "SUPPORT_TIERS",
    "TYPES",
    "clean_organization",
    "clean_ticket",
    "clean_user",
    "envelope",
    "parse_ids",
]

TYPES = ("problem", "incident", "question", "task")
PRIORITIES = ("urgent", "high", "normal", "low")
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
ROLES = ("end-user", "agent", "admin")
ENTITLEMENT_STATUSES = ("active", "at_risk", "inactive", "expired")
SUPPORT_TIERS = ("standard", "premium", "enterprise")
ORGANIZATION_FIELDS = ("entitlement_status", "support_tier", "entitlement_ends", "billing_status")

_TICKET_IGNORED = frozenset(
    """id url created_at updated_at via brand_id ticket_form_id collaborator_ids collaborators
    email_cc_ids email_ccs follower_ids followers followup_ids due_at recipient problem_id
    is_public safe_update updated_stamp metadata fields requester custom_status_id
    sharing_agreement_ids macro_id macro_ids attribute_value_ids voice_comment
    allow_attachments allow_channelback has_incidents forum_topic_id satisfaction_rating
    from_messaging_channel generated_timestamp raw_subject assignee_email
    via_followup_source_id additional_collaborators""".split()
)
_ORG_IGNORED = frozenset("id url created_at updated_at deleted_at".split())
_USER_IGNORED = frozenset(
    """id url created_at updated_at last_login_at photo locale locale_id time_zone
    iana_time_zone shared shared_agent suspended restricted_agent moderator ticket_restriction
    only_private_comments signature alias chat_only default_group_id custom_role_id
    two_factor_auth_enabled user_fields identities report_csv shared_phone_number
    remote_photo_url skip_verify_email""".split()
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _problem(details: Details, name: str, description: str, error: str = "InvalidValue") -> None:
    label = name.replace("_", " ").capitalize()
    details.setdefault(name, []).append({"description": f"{label}: {description}", "error": error})


def envelope(body: dict[str, Any], key: str) -> dict[str, Any]:
    """The object under ``key``; Zendesk answers 400 when the envelope is missing."""
    inner = body.get(key)
    if not isinstance(inner, dict):
        raise bad_request("InvalidValue", f"Parameter '{key}' is required and must be an object")
    return inner


def parse_ids(raw: str | None, name: str = "ids", limit: int = 100) -> list[int]:
    if not raw:
        raise bad_request("InvalidValue", f"Parameter '{name}' is required")
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not all(p.isdigit() and len(p) <= 18 for p in parts):
        raise bad_request("InvalidValue", f"'{name}' must be a comma-separated list of integers")
    if len(parts) > limit:
        raise bad_request("InvalidValue", f"'{name}' accepts at most {limit} values")
    return list(dict.fromkeys(int(p) for p in parts))


def _string(details: Details, data: dict[str, Any], name: str, max_len: int) -> str | None:
    value = data[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        _problem(details, name, "must be a string")
        return None
    text = str(value)
    if len(text) > max_len:
        _problem(details, name, f"is too long (maximum is {max_len} characters)", "TooLong")
    return text


def _enum(details: Details, data: dict[str, Any], name: str, allowed: tuple[str, ...]) -> None:
    value = data[name]
    if value is not None and value not in allowed:
        _problem(details, name, f"is not valid (expected one of {', '.join(allowed)})")


def _tags(details: Details, value: object, name: str = "tags") -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        _problem(details, name, "must be a list of strings")
        return []
    tags: list[str] = []
    for tag in value:
        for part in tag.lower().split():
            if len(part) > 80:
                _problem(details, name, "contains a tag over 80 characters", "TooLong")
            elif part not in tags:
                tags.append(part)
    return tags


def _unknown(details: Details, data: dict[str, Any], known: frozenset[str], what: str) -> None:
    for name in data:
        if name not in known:
            _problem(details, name, f"is not a {what} attribute")


def _reference(
    details: Details, state: SandboxState, data: dict[str, Any], name: str, kind: str
) -> int | None:
    value = data[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _problem(details, name, "must be an integer id")
        return None
    if state.store.get(kind, str(value)) is None:
        _problem(details, name, f"{value} does not exist", "RecordNotFound")
    return int(value)


_TICKET_WRITABLE = frozenset(
    """subject description comment type priority status requester_id submitter_id assignee_id
    organization_id group_id tags custom_fields external_id additional_tags remove_tags""".split()
)


def clean_ticket(
    state: SandboxState, data: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    """The ticket fields to write; ``current`` is the stored ticket on update, None on create."""
    details: Details = {}
    _unknown(details, data, _TICKET_WRITABLE | _TICKET_IGNORED, "ticket")
    out: dict[str, Any] = {}
    for name in ("subject", "external_id"):
        if name in data:
            out[name] = _string(details, data, name, 150 if name == "subject" else 255)
    comment_body: str | None = None
    if "comment" in data:
        comment = data["comment"]
        body = comment.get("body", comment.get("html_body")) if isinstance(comment, dict) else None
        if not isinstance(body, str):
            _problem(details, "comment", "must be an object with a string body")
        else:
            comment_body = body
    if current is None:
        description = data.get("description", comment_body)
        if not isinstance(description, str) or not description.strip():
            _problem(details, "description", "cannot be blank", "BlankValue")
        else:
            out["description"] = description
    elif "description" in data:
        _problem(details, "description", "cannot be changed once the ticket exists")
    for name, allowed in (("type", TYPES), ("priority", PRIORITIES), ("status", STATUSES)):
        if name in data:
            _enum(details, data, name, allowed)
            out[name] = data[name]
    if out.get("status", "") is None:
        _problem(details, "status", "cannot be blank", "BlankValue")
    for name, kind in (
        ("requester_id", USER),
        ("submitter_id", USER),
        ("assignee_id", USER),
        ("organization_id", ORG),
    ):
        if name in data:
            out[name] = _reference(details, state, data, name, kind)
    assignee = out.get("assignee_id")
    if assignee is not None:
        user = state.store.get(USER, str(assignee))
        if user is not None and user["role"] == "end-user":
            _problem(details, "assignee_id", "must be an agent")
    if "group_id" in data:
        _problem(details, "group_id", "names no group in this account")
    if "tags" in data:
        out["tags"] = _tags(details, data["tags"])
    base_tags = out.get("tags", current["tags"] if current else [])
    if "additional_tags" in data:
        out["tags"] = list(dict.fromkeys([*base_tags, *_tags(details, data["additional_tags"])]))
        base_tags = out["tags"]
    if "remove_tags" in data:
        gone = set(_tags(details, data["remove_tags"], "remove_tags"))
        out["tags"] = [t for t in base_tags if t not in gone]
    if "custom_fields" in data:
        out["custom_fields"] = _custom_fields(details, data["custom_fields"])
    if current is not None and current["status"] == "closed":
        _problem(details, "status", "closed prevents ticket update", "InvalidValue")
    if details:
        raise record_invalid(details)
    return out


def _custom_fields(details: Details, value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        _problem(details, "custom_fields", "must be a list of {id, value} objects")
        return []
    fields: list[dict[str, Any]] = []
    for item in value:
        ok = (
            isinstance(item, dict)
            and set(item) <= {"id", "value"}
            and isinstance(item.get("id"), int)
            and not isinstance(item.get("id"), bool)
            and _scalar(item.get("value"))
        )
        if not ok:
            _problem(details, "custom_fields", "must be a list of {id, value} objects")
            return []
        fields.append({"id": item["id"], "value": item.get("value")})
    return fields


def _scalar(value: object) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, str) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


_ORG_WRITABLE = frozenset(
    """name external_id domain_names details notes group_id shared_tickets shared_comments tags
    organization_fields""".split()
)


def clean_organization(
    state: SandboxState, data: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    details: Details = {}
    _unknown(details, data, _ORG_WRITABLE | _ORG_IGNORED, "organization")
    out: dict[str, Any] = {}
    for name, limit in (("name", 255), ("external_id", 255), ("details", 4000), ("notes", 4000)):
        if name in data:
            out[name] = _string(details, data, name, limit)
    if current is None or "name" in data:
        name_value = out.get("name")
        if not name_value or not name_value.strip():
            _problem(details, "name", "cannot be blank", "BlankValue")
        else:
            taken = any(
                current is None or o["id"] != current["id"]
                for o in find_organizations(state, "name", name_value.lower())
            )
            if taken:
                _problem(details, "name", "has already been taken", "DuplicateValue")
    if "domain_names" in data:
        out["domain_names"] = _tags(details, data["domain_names"], "domain_names")
    if "tags" in data:
        out["tags"] = _tags(details, data["tags"])
    for name in ("shared_tickets", "shared_comments"):
        if name in data:
            if not isinstance(data[name], bool):
                _problem(details, name, "must be true or false")
            out[name] = data[name]
    if "group_id" in data and data["group_id"] is not None:
        _problem(details, "group_id", "names no group in this account")
    if "organization_fields" in data:
        base = current["organization_fields"] if current else dict.fromkeys(ORGANIZATION_FIELDS)
        out["organization_fields"] = _organization_fields(
            details, data["organization_fields"], base
        )
    if details:
        raise record_invalid(details)
    return out


def _organization_fields(details: Details, value: object, base: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value, dict):
        _problem(details, "organization_fields", "must be an object")
        return base
    fields = dict(base)
    for key, item in value.items():
        name = f"organization_fields.{key}"
        if key not in ORGANIZATION_FIELDS:
            _problem(details, name, "is not an organization field of this account")
            continue
        if key == "entitlement_status" and item not in ENTITLEMENT_STATUSES:
            _problem(
                details, name, f"is not valid (expected one of {', '.join(ENTITLEMENT_STATUSES)})"
            )
        elif key == "support_tier" and item is not None and item not in SUPPORT_TIERS:
            _problem(details, name, f"is not valid (expected one of {', '.join(SUPPORT_TIERS)})")
        elif key == "entitlement_ends" and item is not None and not _is_date(item):
            _problem(details, name, "must be a date written YYYY-MM-DD")
        elif (
            key == "billing_status"
            and item is not None
            and (not isinstance(item, str) or len(item) > 64)
        ):
            _problem(details, name, "must be a string of at most 64 characters")
        fields[key] = item
    return fields


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


_USER_WRITABLE = frozenset(
    "name email role organization_id external_id tags phone details notes verified active".split()
)


def clean_user(
    state: SandboxState, data: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    details: Details = {}
    _unknown(details, data, _USER_WRITABLE | _USER_IGNORED, "user")
    out: dict[str, Any] = {}
    for name, limit in (("name", 255), ("email", 255), ("external_id", 255), ("phone", 64)):
        if name in data:
            out[name] = _string(details, data, name, limit)
    for name in ("details", "notes"):
        if name in data:
            out[name] = _string(details, data, name, 4000)
    if current is None and not (out.get("name") or "").strip():
        _problem(details, "name", "cannot be blank", "BlankValue")
    email = out.get("email")
    if email is not None:
        if not _EMAIL.match(email):
            _problem(details, "email", f"{email} is not properly formatted")
        elif any(
            (u.get("email") or "").lower() == email.lower()
            and (current is None or u["id"] != current["id"])
            for u in state.store.iter(USER)
        ):
            _problem(
                details, "email", f"{email} is already being used by another user", "DuplicateValue"
            )
    if "role" in data:
        _enum(details, data, "role", ROLES)
        out["role"] = data["role"] or "end-user"
    if "organization_id" in data:
        out["organization_id"] = _reference(details, state, data, "organization_id", ORG)
    if "tags" in data:
        out["tags"] = _tags(details, data["tags"])
    for name in ("verified", "active"):
        if name in data:
            if not isinstance(data[name], bool):
                _problem(details, name, "must be true or false")
            out[name] = data[name]
    if details:
        raise record_invalid(details)
    return out
