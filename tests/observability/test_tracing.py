"""OpenTelemetry: a webhook's receive, ingest and deliver spans form one trace carrying the delivery id
(recorded here with the SDK's in-memory exporter; in production the OTLP exporter, when
OTEL_EXPORTER_OTLP_ENDPOINT is set)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub import jobs, tracing
from tests.conftest import FIXTURES
from tests.helpers import drain, recent, stripe_headers

BODY = recent((FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes(), "created")  # live, not history


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)


def test_receive_ingest_and_deliver_are_one_trace_with_the_delivery_id(hub, client, spans):
    answer = client.post("/webhooks/stripe", data=BODY, headers=stripe_headers(BODY))
    delivery_id = answer.json["delivery"]
    drain(hub)
    finished = spans.get_finished_spans()
    [receive] = [s for s in finished if s.name == "webhook.receive"]
    [ingest] = [s for s in finished if s.name == "ingest"]
    delivers = [s for s in finished if s.name == "deliver"]
    assert receive.attributes["hub.delivery_id"] == delivery_id
    assert receive.attributes["hub.outcome"] == "stored" and receive.attributes["hub.connector"] == "stripe"
    assert ingest.parent.span_id == receive.context.span_id
    assert ingest.context.trace_id == receive.context.trace_id
    assert ingest.attributes["hub.delivery_id"] == delivery_id
    # the deliver jobs the ingest job enqueued continue its trace; work that comes back later (held for
    # a rate-limit room, retried) is enqueued by the scheduler and starts its own
    joined = [s for s in delivers if s.context.trace_id == receive.context.trace_id]
    assert joined, "the actions due at once were delivered in the webhook's trace"
    for span in joined:
        assert span.parent.span_id == ingest.context.span_id
        assert span.attributes["hub.delivery_id"] == str(delivery_id) and span.attributes["hub.action_id"]


def test_without_an_exporter_nothing_is_traced_and_jobs_carry_no_trace(hub, client, monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracing.install(None)
    monkeypatch.setattr(tracing, "_pid", None)  # decide again from the environment
    client.post("/webhooks/stripe", data=BODY, headers=stripe_headers(BODY))
    hub.relay.flush()
    [job] = jobs.queue(hub.redis, "ingest").get_jobs()
    assert not tracing.enabled() and "trace" not in (job.meta or {})
