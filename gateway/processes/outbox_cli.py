"""``crosswalk outbox status|dead|replay ID|--all|discard ID --reason R``: for operators.

Each function takes an open store and answers the text to print.
"""

from __future__ import annotations

from gateway.processes.replay import discard_dead_letter, replay_all, replay_dead_letter
from gateway.store import MessageStatus, Store

__all__ = ["dead", "discard", "replay", "status"]


async def status(store: Store) -> str:
    """Message counts by system and status, and the totals."""
    counts = (await store.outbox_status()).counts
    statuses: tuple[MessageStatus, ...] = tuple(MessageStatus.__members__.values())
    header = f"{'system':<10}" + "".join(f"{s.value:>11}" for s in statuses)
    lines = [header]
    for system in sorted(counts):
        lines.append(f"{system:<10}" + "".join(f"{counts[system].get(s, 0):>11}" for s in statuses))
    totals = {s: sum(c.get(s, 0) for c in counts.values()) for s in statuses}
    lines.append(f"{'total':<10}" + "".join(f"{totals[s]:>11}" for s in statuses))
    if totals[MessageStatus.DEAD]:
        lines.append(
            f"{totals[MessageStatus.DEAD]} dead letter(s) block their customers' queues: "
            "crosswalk outbox dead, then crosswalk outbox replay ID (or --all)"
        )
    return "\n".join(lines)


async def dead(store: Store) -> str:
    """Every dead letter: id, system, step, operation, customer, attempts (failed
    deliveries), deliveries (leases, waits for an open breaker included) and reason."""
    lines: list[str] = []
    after: int | None = None
    while True:
        page = await store.list_messages(status=MessageStatus.DEAD, limit=100, after=after)
        if not page:
            break
        for m in page:
            lines.append(
                f"#{m.id} {m.system} {m.type} operation={m.operation_id} "
                f"customer={m.aggregate_key} "
                f"attempts={m.attempts} deliveries={m.deliveries} "
                f"since={m.updated_at.isoformat(timespec='seconds')}\n"
                f"    {m.last_error or 'no reason recorded'}"
            )
        after = page[-1].id
    if not lines:
        return "no dead letters"
    return "\n".join([f"{len(lines)} dead letter(s):", *lines])


async def replay(store: Store, message_id: int | None, *, all: bool = False) -> str:
    """Replay one dead letter by id, or every one with ``all``."""
    if all:
        count = await replay_all(store)
        return f"replayed {count} dead letter(s)"
    if message_id is None:
        return "nothing replayed: give a dead letter id or --all"
    replayed, view = await replay_dead_letter(store, message_id)
    if not replayed:
        return f"message {message_id} is not a dead letter (see crosswalk outbox dead)"
    where = f"; operation {view.id} is {view.status}" if view else ""
    return f"replayed dead letter {message_id}{where}"


async def discard(store: Store, message_id: int, *, reason: str) -> str:
    """Discard one dead letter: its operation ends FAILED, with the reason audited."""
    discarded, view = await discard_dead_letter(
        store, message_id, actor="operator (cli)", reason=reason
    )
    if not discarded:
        return f"message {message_id} is not a dead letter (see crosswalk outbox dead)"
    where = f"; operation {view.id} is {view.status}" if view else ""
    return f"discarded dead letter {message_id}{where}"
