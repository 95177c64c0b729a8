"""``POST /composite``: up to 25 subrequests in one call, with references between them.

``{"allOrNone": bool, "compositeRequest": [{"method","url","referenceId","body"}]}``;
a later subrequest may use ``@{ref.id}`` or ``@{ref.field.path[0]}`` from an earlier
one's answer, in its url or body. The answer is always 200
``{"compositeResponse": [{"body","httpHeaders","httpStatusCode","referenceId"}]}``.
With ``allOrNone`` the subrequests share one transaction: the first failure rolls back
the earlier ones and every other subrequest answers ``PROCESSING_HALTED``. Without it
each stands alone, and one that refers to a failed subrequest halts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio

from sandbox.app import SandboxState
from sandbox.crm.calls import Answer, Call
from sandbox.crm.records import Transaction
from sandbox.crm.schema import BASE, SalesforceError

__all__ = ["MAX_COMPOSITE", "Dispatch", "run_composite"]

MAX_COMPOSITE = 25
_REF = re.compile(r"@\{([A-Za-z0-9_]+)\.([A-Za-z0-9_.\[\]]+)\}")

#: how a subrequest is served: the API's own dispatch
Dispatch = Callable[[SandboxState, Call, Transaction | None], Awaitable[Answer]]


async def run_composite(
    state: SandboxState, call: Call, *, dispatch: Dispatch, lock: anyio.Lock
) -> Answer:
    """``POST /composite``: validate the request, then run it holding the write lock."""
    body = call.body
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        raise SalesforceError(
            400, "JSON_PARSER_ERROR", 'Send {"allOrNone": ..., "compositeRequest": [...]}'
        )
    subs: list[dict[str, Any]] = body["compositeRequest"]
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "allOrNone must be true or false")
    if not 1 <= len(subs) <= MAX_COMPOSITE:
        raise SalesforceError(
            400,
            "INVALID_INPUT",
            f"A composite request takes 1 to {MAX_COMPOSITE} subrequests, not {len(subs)}",
        )
    seen: set[str] = set()
    for sub in subs:
        if (
            not isinstance(sub, dict)
            or not isinstance(sub.get("method"), str)
            or not isinstance(sub.get("url"), str)
            or not isinstance(sub.get("referenceId"), str)
            or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", sub["referenceId"])
        ):
            raise SalesforceError(
                400,
                "JSON_PARSER_ERROR",
                "Each subrequest needs method, url and a referenceId of letters, digits, _",
            )
        if sub["referenceId"] in seen:
            raise SalesforceError(
                400, "INVALID_INPUT", f"Duplicate referenceId provided: {sub['referenceId']}"
            )
        seen.add(sub["referenceId"])

    # the subrequests' records, counters and change events: one commit, not one per write
    async with lock, state.store.batch():
        results = await _run_subrequests(state, call, subs, all_or_none, dispatch)
    return Answer(200, {"compositeResponse": results})


async def _run_subrequests(
    state: SandboxState,
    call: Call,
    subs: list[dict[str, Any]],
    all_or_none: bool,
    dispatch: Dispatch,
) -> list[dict[str, Any]]:
    shared = Transaction(state, call.client) if all_or_none else None
    results: list[dict[str, Any]] = []
    bodies: dict[str, Any] = {}
    failed_at: int | None = None
    try:
        for index, sub in enumerate(subs):
            ref = sub["referenceId"]
            try:
                answer = await _subrequest(state, call, sub, bodies, shared, dispatch)
            except SalesforceError as exc:
                answer = Answer(exc.status, exc.body())
            results.append(_sub_result(ref, answer))
            if 200 <= answer.status < 300:
                bodies[ref] = answer.body
            elif all_or_none:
                failed_at = index
                break
    except BaseException:
        if shared is not None:
            with anyio.CancelScope(shield=True):
                await shared.rollback()
        raise
    if shared is None:
        return results
    if failed_at is None:
        await shared.commit()
        return results
    await shared.rollback()
    halted = Answer(400, [_halted()])
    for index, sub in enumerate(subs):
        if index != failed_at:
            result = _sub_result(sub["referenceId"], halted)
            if index < len(results):
                results[index] = result
            else:
                results.append(result)
    return results


async def _subrequest(
    state: SandboxState,
    call: Call,
    sub: dict[str, Any],
    bodies: dict[str, Any],
    txn: Transaction | None,
    dispatch: Dispatch,
) -> Answer:
    url = _resolve_refs(sub["url"], bodies)
    split = urlsplit(url)
    if not split.path.startswith(BASE + "/") and split.path != BASE:
        raise SalesforceError(
            400,
            "INVALID_INPUT",
            f"The subrequest url must start with {BASE}/, not {split.path}",
        )
    inner = Call(
        method=sub["method"],
        path=split.path[len(BASE) :],
        params=dict(parse_qsl(split.query)),
        body=_resolve_refs(sub.get("body"), bodies),
        client=call.client,
        batch_size=call.batch_size,
        allow_duplicate=call.allow_duplicate,
        locked=True,
    )
    if inner.path.strip("/") == "composite":
        raise SalesforceError(400, "INVALID_INPUT", "A composite request cannot nest another")
    return await dispatch(state, inner, txn)


def _halted() -> dict[str, Any]:
    return {
        "errorCode": "PROCESSING_HALTED",
        "message": "The transaction was rolled back since another operation in the same "
        "transaction failed.",
    }


def _sub_result(ref: str, answer: Answer) -> dict[str, Any]:
    return {
        "body": answer.body,
        "httpHeaders": answer.headers,
        "httpStatusCode": answer.status,
        "referenceId": ref,
    }


def _lookup(bodies: dict[str, Any], ref: str, path: str) -> Any:
    if ref not in bodies:
        raise SalesforceError(
            400,
            "PROCESSING_HALTED",
            f"Invalid reference specified. No value for {ref}.{path} found in {ref}: "
            "it failed or runs later",
        )
    value: Any = bodies[ref]
    for step in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            value = value[int(step[1:-1])] if step.startswith("[") else value[step]
        except (KeyError, IndexError, TypeError):
            raise SalesforceError(
                400,
                "PROCESSING_HALTED",
                f"Invalid reference specified. No value for {ref}.{path} found in {ref}",
            ) from None
    return value


def _resolve_refs(value: Any, bodies: dict[str, Any]) -> Any:
    """Replace ``@{ref.path}`` in strings (whole-string references keep the value's type)."""
    if isinstance(value, str):
        whole = _REF.fullmatch(value)
        if whole:
            return _lookup(bodies, whole.group(1), whole.group(2))
        return _REF.sub(lambda m: str(_lookup(bodies, m.group(1), m.group(2))), value)
    if isinstance(value, dict):
        return {k: _resolve_refs(v, bodies) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(v, bodies) for v in value]
    return value
