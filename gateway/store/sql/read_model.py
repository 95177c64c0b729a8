"""The read model's records and reconciliation runs on the writer connection.

Queued, not sent (except a run's insert, whose id is the answer): these writes need no
answer, so a flush of many records costs one round trip to the connection's thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from gateway.store.records import DriftFinding, ReadRow
from gateway.store.sql.rows import dump_json, to_micros
from gateway.store.sql.unit import SQLUnit

__all__ = ["SQLReadModelWrites"]


class SQLReadModelWrites(SQLUnit):
    async def put_read_rows(self, rows: Sequence[ReadRow]) -> None:
        for row in rows:
            self._pending.append(
                (
                    "INSERT INTO read_records (system, kind, id, customer, version, data, "
                    "deleted, learned_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (system, kind, id) DO UPDATE SET customer = excluded.customer, "
                    "version = excluded.version, data = excluded.data, "
                    "deleted = excluded.deleted, learned_at = excluded.learned_at, "
                    "source = excluded.source WHERE excluded.version >= read_records.version",
                    [
                        row.system,
                        row.kind,
                        row.id,
                        row.customer,
                        row.version,
                        None if row.data is None else dump_json(row.data),
                        int(row.deleted),
                        to_micros(row.learned_at),
                        row.source,
                    ],
                )
            )

    async def cover_read(self, system: str, kind: str, customer: str, loaded_at: datetime) -> None:
        self._pending.append(
            (
                "INSERT INTO read_coverage (system, kind, customer, loaded_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (system, kind, customer) DO UPDATE SET "
                f"loaded_at = {self.GREATEST}(read_coverage.loaded_at, excluded.loaded_at)",
                [system, kind, customer, to_micros(loaded_at)],
            )
        )

    async def set_read_feed(
        self,
        system: str,
        feed: str,
        *,
        cursor: str | None,
        complete_at: datetime | None,
        now: datetime | None = None,
    ) -> None:
        self._pending.append(
            (
                "INSERT INTO read_feeds (system, feed, cursor, complete_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (system, feed) DO UPDATE SET "
                "cursor = excluded.cursor, complete_at = excluded.complete_at, "
                "updated_at = excluded.updated_at",
                [
                    system,
                    feed,
                    cursor,
                    None if complete_at is None else to_micros(complete_at),
                    self._stamp(now),
                ],
            )
        )

    async def record_reconciliation(
        self,
        *,
        started_at: datetime,
        finished_at: datetime,
        trigger: str,
        customers: int,
        findings: Sequence[DriftFinding],
        incomplete: Mapping[str, str],
    ) -> int:
        rows = await self._all(
            "INSERT INTO reconciliation_runs (started_at, finished_at, trigger, customers, "
            "findings, repaired, incomplete) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                to_micros(started_at),
                to_micros(finished_at),
                trigger,
                customers,
                len(findings),
                sum(1 for f in findings if f.repair),
                dump_json(dict(incomplete)),
            ),
        )
        run_id = int(rows[0][0])
        for position, f in enumerate(findings):
            self._pending.append(
                (
                    "INSERT INTO reconciliation_findings (run_id, position, kind, erp_bp, "
                    "system, record_id, field, expected, actual, repair) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        run_id, position, f.kind, f.erp_bp, f.system, f.record_id, f.field,
                        f.expected, f.actual, f.repair,
                    ],
                )
            )  # fmt: skip
        return run_id
