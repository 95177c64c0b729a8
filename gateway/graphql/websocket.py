"""graphql-transport-ws on ``/graphql``: the same checks and deadlines as HTTP.

Strawberry's handler speaks the protocol (connection_init, ping, subscribe, complete);
``CrosswalkTransportWSHandler`` replaces how one ``subscribe`` message is run, so that a
query, mutation or subscription sent over a websocket passes through the same
``OperationRunner.admit`` as an HTTP request (persisted-only clients, depth, aliases,
cost, tokens, introspection, the client's rate and cost budgets, validation) and runs
with the same per-request ``Context``: the connection's client, a correlation id of its
own, and the HTTP deadline for queries and mutations. A subscription's deadline is
``SUBSCRIPTION_SECONDS``: past it the stream is completed and the client subscribes again.

Refused operations answer the protocol's ``error`` message with the coded errors.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, cast

import anyio
from graphql import ExecutionResult, GraphQLError, OperationType, subscribe
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage

from gateway.graphql.context import Context, current_time
from gateway.graphql.engine import Outcome, RequestParams, format_error, throttled_outcome
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.ratelimit import OverBudget

if TYPE_CHECKING:
    from gateway.graphql.app import CrosswalkGraphQL

__all__ = ["SUBSCRIPTION_SECONDS", "CrosswalkTransportWSHandler"]

log = logging.getLogger(__name__)

#: how long one subscription may stream before it is completed (then subscribe again)
SUBSCRIPTION_SECONDS = 3600.0


class _Operation(Operation[Context, None]):
    """Strawberry's operation record, with the request's extensions (persisted queries)."""

    __slots__ = ("params",)

    def __init__(
        self, handler: BaseGraphQLTransportWSHandler[Context, None], id: str, params: RequestParams
    ) -> None:
        super().__init__(handler, id, params.query or "", params.variables, params.operation_name)
        self.params = params


def _params(payload: Any) -> RequestParams | str:
    """The subscribe payload as request parameters, or what is wrong with it."""
    if not isinstance(payload, dict):
        return "The subscribe payload must be an object with a 'query'."
    query = payload.get("query")
    name = payload.get("operationName")
    variables = payload.get("variables")
    extensions = payload.get("extensions")
    if query is not None and not isinstance(query, str):
        return "'query' must be a string."
    if name is not None and not isinstance(name, str):
        return "'operationName' must be a string."
    if variables is not None and not isinstance(variables, dict):
        return "'variables' must be a JSON object."
    if extensions is not None and not isinstance(extensions, dict):
        return "'extensions' must be a JSON object."
    return RequestParams(query, name, variables, extensions)


class CrosswalkTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with Crosswalk's admission and deadlines (see the module)."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not self.connection_acknowledged:
            await self.websocket.close(code=4401, reason="Unauthorized")
            return
        operation_id = message.get("id")
        if not isinstance(operation_id, str):
            await self.handle_invalid_message("A subscribe message needs a string 'id'.")
            return
        if operation_id in self.operations:
            await self.websocket.close(
                code=4409, reason=f"Subscriber for {operation_id} already exists"
            )
            return
        params = _params(message.get("payload"))
        if isinstance(params, str):
            await self.handle_invalid_message(params)
            return
        if (
            self.max_subscriptions_per_connection is not None
            and len(self.operations) >= self.max_subscriptions_per_connection
        ):
            error = CodedError(
                ErrorCode.THROTTLED,
                f"At most {self.max_subscriptions_per_connection} operations at once on one "
                "connection.",
            )
            await self.send_message(
                {"id": operation_id, "type": "error", "payload": [error.formatted]}
            )
            return
        operation = _Operation(self, operation_id, params)
        # strawberry's handler owns one task per operation and cancels it on complete or
        # disconnect (its shutdown awaits them)
        operation.task = _start(self, operation)
        self.operations[operation_id] = operation

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        assert isinstance(operation, _Operation)
        view: CrosswalkGraphQL = self.view  # type: ignore[assignment]
        connection = self.context
        client = connection.client
        context = Context(
            runtime=connection.runtime,
            client=client,
            correlation_id=uuid.uuid4().hex,
            deadline=current_time() + view.deadline_seconds,
            request=connection.request,
            response=connection.response,
            connection_params=connection.connection_params,
            extras={"xref_cache": view.xref_cache},
        )
        try:
            await self._run(operation, view, context)
        except Exception:  # the boundary: log it, tell the client, keep the connection
            log.exception("websocket operation failed (correlation id %s)", context.correlation_id)
            error = CodedError(
                ErrorCode.INTERNAL_ERROR,
                f"Internal error; quote correlation id {context.correlation_id} to the operators.",
            )
            await _send(
                operation, {"id": operation.id, "type": "error", "payload": [error.formatted]}
            )
        finally:
            context.release()

    async def _run(self, operation: _Operation, view: CrosswalkGraphQL, context: Context) -> None:
        client = context.client
        try:
            view.runner.rates.request(client)
        except OverBudget as throttled:
            await self._refuse(operation, throttled_outcome(throttled))
            return
        prepared = view.runner.admit(operation.params, client, transport="WS")
        if isinstance(prepared, Outcome):
            await self._refuse(operation, prepared)
            return
        document, definition = prepared
        if definition.operation is OperationType.SUBSCRIPTION:
            context.deadline = current_time() + SUBSCRIPTION_SECONDS
            with anyio.move_on_after(SUBSCRIPTION_SECONDS):
                await self._stream(operation, document, context)
        else:
            outcome = await view.runner.execute(document, operation.params, context)
            if outcome.request_error:
                await self._refuse(operation, outcome)
                return
            await _send(operation, {"id": operation.id, "type": "next", "payload": outcome.body})
        await _send(operation, {"id": operation.id, "type": "complete"})

    async def _refuse(self, operation: Operation[Context, None], outcome: Outcome) -> None:
        await _send(
            operation, {"id": operation.id, "type": "error", "payload": outcome.body["errors"]}
        )

    async def _stream(self, operation: _Operation, document: Any, context: Context) -> None:
        view: CrosswalkGraphQL = self.view  # type: ignore[assignment]
        params = operation.params
        result: Any = subscribe(
            view.runner.graphql_schema,
            document,
            context_value=context,
            variable_values=params.variables,
            operation_name=params.operation_name,
        )
        if isawaitable(result):
            result = await result
        if isinstance(result, ExecutionResult):
            errors = [format_error(e, context.correlation_id) for e in result.errors or ()]
            await _send(operation, {"id": operation.id, "type": "error", "payload": errors})
            return
        stream: AsyncIterator[ExecutionResult] = result
        started = False
        try:
            async for item in stream:
                payload: dict[str, Any] = {"data": item.data}
                if item.errors:
                    payload["errors"] = [
                        format_error(e, context.correlation_id) for e in item.errors
                    ]
                await _send(operation, {"id": operation.id, "type": "next", "payload": payload})
                started = True
        except GraphQLError as exc:
            # raised by the subscription's own source (e.g. NOT_FOUND before the first
            # event): an error message if nothing was sent yet, else a last next
            error = format_error(exc, context.correlation_id)
            message: dict[str, Any]
            if started:
                message = {
                    "id": operation.id,
                    "type": "next",
                    "payload": {"data": None, "errors": [error]},
                }
            else:
                message = {"id": operation.id, "type": "error", "payload": [error]}
            await _send(operation, message)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()


async def _send(operation: Operation[Context, None], message: dict[str, Any]) -> None:
    """Send one protocol message for ``operation`` (``complete`` and ``error`` end it)."""
    await operation.send_operation_message(cast(Any, message))


def _start(handler: CrosswalkTransportWSHandler, operation: _Operation) -> asyncio.Task[None]:
    task = asyncio.create_task(handler.run_operation(operation))
    task.add_done_callback(handler._task_done)
    return task
