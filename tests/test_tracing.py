"""Optional OpenTelemetry spans: off by default and then no spans at all; on, a customer
360 reads as GraphQL operation -> actor asks -> vendor HTTP calls, with the correlation
id on the operation's span."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors import tracing
from gateway.observability.tracing import configure_tracing
from tests.graphql.conftest import PORTAL
from tests.graphql.stack import open_stack

pytestmark = pytest.mark.anyio

QUERY = '{ customer(id: "erp:1000000") { golden { name } cases { nodes { id } } } }'


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.enable(provider.get_tracer("test"))
    try:
        yield spans
    finally:
        tracing.disable()


def test_tracing_is_off_unless_the_environment_asks() -> None:
    assert configure_tracing({}) is False
    assert not tracing.enabled()
    with tracing.span("nothing") as span:
        assert span is None


async def test_a_read_is_one_trace_from_the_operation_to_each_vendor_call(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    async with open_stack(tmp_path) as stack:
        exporter.clear()
        response = await stack.http.post(
            "/graphql", json={"query": QUERY}, headers={**PORTAL, "X-Correlation-ID": "trace-1"}
        )
        assert response.status_code == 200, response.text
    spans = exporter.get_finished_spans()
    [operation] = [s for s in spans if s.name.startswith("graphql query")]
    assert operation.attributes is not None
    assert operation.attributes["crosswalk.correlation_id"] == "trace-1"
    actors = [s for s in spans if s.name.startswith("actor.")]
    calls = [s for s in spans if s.name.startswith("HTTP ")]
    assert {s.name.split()[0] for s in actors} >= {"actor.erp", "actor.support"}
    assert calls
    trace_ids = {s.context.trace_id for s in (operation, *actors, *calls)}
    assert trace_ids == {operation.context.trace_id}
    actor_ids = {s.context.span_id for s in actors}
    for actor in actors:
        assert actor.parent is not None
        assert actor.parent.span_id == operation.context.span_id
    for call in calls:
        assert call.parent is not None
        assert call.parent.span_id in actor_ids
        assert call.attributes is not None
        assert call.attributes["http.response.status_code"] == 200
