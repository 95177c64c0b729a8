"""OpenTelemetry tracing, when asked for: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``CROSSWALK_OTEL=1`` with the exporter's defaults) and the ``crosswalk[otel]`` extra
installed. Spans run from the GraphQL operation to the outbox delivery, the actor and
each vendor HTTP call, each with the correlation id as ``crosswalk.correlation_id``.
Off by default; off, it costs one attribute check per span site (``actors.tracing``).
"""

from __future__ import annotations

import logging
import os

from actors import tracing

__all__ = ["configure_tracing"]

log = logging.getLogger(__name__)


def configure_tracing(environ: dict[str, str] | None = None) -> bool:
    """Turn tracing on if the environment asks for it; answers whether it is on."""
    env = os.environ if environ is None else environ
    if not (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("CROSSWALK_OTEL") == "1"):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.error(
            "tracing was asked for (OTEL_EXPORTER_OTLP_ENDPOINT) but the otel extra is not "
            "installed: pip install 'crosswalk[otel]'; running without tracing"
        )
        return False
    provider = TracerProvider(
        resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "crosswalk")})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracing.enable(provider.get_tracer("crosswalk"))
    log.info("tracing: spans exported over OTLP")
    return True
