"""Operations and their saga steps: the part of the contract the write path and the
dispatcher keep a mutation's state in.

An operation is created with its steps in the unit of work that accepts the mutation;
each delivered step updates its step and, at the end, the operation. Watchers
(``Store.watch_operation``) see each committed change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from gateway.store.records import (
    JSON,
    UNSET,
    Operation,
    OperationStatus,
    Page,
    SagaStep,
    StepStatus,
    Unset,
)
from gateway.store.units import Units

__all__ = ["OperationReads", "OperationShortcuts", "OperationWrites"]


class OperationReads(ABC):
    @abstractmethod
    async def get_operation(self, operation_id: str) -> Operation | None:
        """The operation, or ``None`` if there is no such id."""

    @abstractmethod
    async def list_operations(
        self,
        *,
        status: OperationStatus | None = None,
        aggregate_key: str | None = None,
        correlation_id: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[Operation]:
        """Operations, newest first, optionally filtered.

        ``after`` is a previous page's ``next_cursor``."""

    async def find_holding(
        self,
        *,
        aggregate_key: str,
        kind: str,
        field: str,
        value: str,
        settled: Collection[OperationStatus],
    ) -> Operation | None:
        """The newest operation of ``kind`` for ``aggregate_key`` whose input ``field`` is
        ``value`` and whose status is not in ``settled``: who holds a business key (a deal
        being closed, a renewal running). This default pages through the customer's
        operations; a backend may answer it with one indexed query instead."""
        after: str | None = None
        while True:
            page = await self.list_operations(aggregate_key=aggregate_key, limit=200, after=after)
            for operation in page.items:
                if (
                    operation.kind == kind
                    and operation.status not in settled
                    and isinstance(operation.input, Mapping)
                    and operation.input.get(field) == value
                ):
                    return operation
            if page.next_cursor is None:
                return None
            after = page.next_cursor

    @abstractmethod
    async def get_steps(self, operation_id: str) -> list[SagaStep]:
        """The operation's saga steps in the order they were first written."""


class OperationWrites(ABC):
    """Writes of operations and steps. ``create_operation``, ``add_steps`` and
    ``upsert_step`` answer nothing the caller does not know already, so a backend may
    hold them back and send them with the unit's next statement (see ``Transaction``)."""

    @abstractmethod
    async def create_operation(
        self,
        *,
        id: str,
        kind: str,
        correlation_id: str,
        client_id: str,
        aggregate_key: str,
        input: JSON,
        status: OperationStatus = OperationStatus.PENDING,
        now: datetime | None = None,
    ) -> Operation:
        """Insert a new operation (an existing id is a ``ConstraintViolation``); answers
        the record as a read would return it."""

    @abstractmethod
    async def update_operation(
        self,
        operation: str | Operation,
        *,
        status: OperationStatus | None = None,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        verify: bool = False,
        now: datetime | None = None,
    ) -> Operation | None:
        """Change status/result/error (arguments not given are kept); watchers see it
        after commit. Answers the updated operation, or ``None`` if there is no such id.

        Given an ``Operation`` (read in this unit) instead of an id, the backend may build
        the answer from it instead of reading the row back, and hold the write back.
        ``verify=True``: that ``Operation`` was not read in this unit but remembered
        (``Store.recent_operation``); the update applies only if the stored row is still
        that version, else ``StaleOperation`` is raised (at the call or, held back, at the
        unit's next statement or end) and the caller redoes the unit from a fresh read.
        """

    @abstractmethod
    async def upsert_step(
        self,
        operation_id: str,
        name: str,
        *,
        status: StepStatus,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        add_attempt: bool = False,
        now: datetime | None = None,
    ) -> None:
        """Create or update one saga step; ``add_attempt`` adds one to its attempt count."""

    @abstractmethod
    async def add_steps(
        self,
        operation_id: str,
        names: Sequence[str],
        *,
        status: StepStatus = StepStatus.PENDING,
        now: datetime | None = None,
    ) -> None:
        """Write a saga's steps at once, in this order, after any existing ones. An
        existing name is a ``ConstraintViolation``."""


class OperationShortcuts(Units):
    """The ``Store``'s one-call reads of operations."""

    async def get_operation(self, operation_id: str) -> Operation | None:
        async with self._shortcut_reader() as r:
            return await r.get_operation(operation_id)

    async def list_operations(
        self,
        *,
        status: OperationStatus | None = None,
        aggregate_key: str | None = None,
        correlation_id: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[Operation]:
        async with self._shortcut_reader() as r:
            return await r.list_operations(
                status=status,
                aggregate_key=aggregate_key,
                correlation_id=correlation_id,
                limit=limit,
                after=after,
            )

    async def find_holding(
        self,
        *,
        aggregate_key: str,
        kind: str,
        field: str,
        value: str,
        settled: Collection[OperationStatus],
    ) -> Operation | None:
        async with self._shortcut_reader() as r:
            return await r.find_holding(
                aggregate_key=aggregate_key, kind=kind, field=field, value=value, settled=settled
            )

    async def get_steps(self, operation_id: str) -> list[SagaStep]:
        async with self._shortcut_reader() as r:
            return await r.get_steps(operation_id)
