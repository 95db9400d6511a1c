"""OpenTelemetry spans across receive -> ingest -> deliver, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

The webhook request opens ``webhook.receive``; the trace context (W3C ``traceparent``, and the delivery
id as baggage) rides in the RQ job's ``meta``, never in its arguments (jobs carry ids only), so the
ingest job's ``ingest`` span and the ``deliver`` spans of the actions it planned join the same trace
and carry ``hub.delivery_id``. Work that starts later (a scheduled action, a retry) starts its own
trace. Without the variable every call here is a no-op. The exporter is the standard OTLP/HTTP one,
configured by the usual ``OTEL_*`` variables; a provider is built once per process (after gunicorn
or RQ forks).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

from opentelemetry import baggage, context, propagate, trace

_provider: Any = None
_pid: int | None = None


def install(provider: Any) -> None:
    """Use ``provider`` in this process (tests: an SDK provider with an in-memory exporter)."""
    global _provider, _pid
    _provider, _pid = provider, os.getpid()


def _tracer() -> trace.Tracer:
    global _provider, _pid
    if _pid != os.getpid():
        _pid, _provider = os.getpid(), None
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get(
                "OTEL_SERVICE_NAME", "subscriber-hub")}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _provider = provider
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer("hub")


def enabled() -> bool:
    return not isinstance(_tracer(), trace.NoOpTracer)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span in the current trace (a new one at the top)."""
    with _tracer().start_as_current_span(name, attributes=_attrs(attributes)) as current:
        yield current


def annotate(**attributes: Any) -> None:
    """Add attributes to the current span (e.g. the delivery id once it is known)."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(_attrs(attributes))


def carrier(**ids: Any) -> dict[str, str]:
    """The current trace context (and ``ids`` as baggage) to put in a job's meta; {} when not tracing."""
    if not enabled():
        return {}
    ctx = context.get_current()
    for key, value in ids.items():
        ctx = baggage.set_baggage(f"hub.{key}", str(value), ctx)
    out: dict[str, str] = {}
    propagate.inject(out, context=ctx)
    return out


@contextmanager
def job_span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span for an RQ job, continuing the trace its enqueuer put in ``job.meta["trace"]``."""
    if not enabled():
        yield None
        return
    from rq import get_current_job

    job = get_current_job()
    parent = propagate.extract((job.meta or {}).get("trace") or {}) if job is not None else None
    for key, value in baggage.get_all(parent).items():
        attributes.setdefault(key.removeprefix("hub."), value)
    token = context.attach(parent) if parent is not None else None
    try:
        with _tracer().start_as_current_span(name, attributes=_attrs(attributes)) as current:
            yield current
    finally:
        if token is not None:
            context.detach(token)
        # an RQ work-horse ends with os._exit: export its spans before that
        flush = getattr(_provider, "force_flush", None)
        if flush is not None:
            flush(5000)


def _attrs(values: dict[str, Any]) -> dict[str, Any]:
    return {f"hub.{k}": v for k, v in values.items() if v is not None}
