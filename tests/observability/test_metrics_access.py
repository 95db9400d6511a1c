"""/metrics and the details of /readyz are behind HUB_METRICS_TOKEN; /healthz stays open."""

from __future__ import annotations

from hub.web import create_app

TOKEN = {"Authorization": "Bearer metrics-token"}


def test_with_a_token_metrics_and_readiness_details_need_it(make_hub):
    client = create_app(make_hub(HUB_METRICS_TOKEN="metrics-token")).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers=TOKEN).status_code == 200
    assert client.get("/readyz").json == {"ready": True}
    detailed = client.get("/readyz", headers=TOKEN).json
    assert detailed["checks"] == {"database": "ok", "redis": "ok"} and "klaviyo" in detailed["connectors"]
    assert client.get("/healthz").json == {"ok": True}


def test_in_production_without_a_token_only_loopback_clients_see_metrics(make_hub):
    client = create_app(make_hub(HUB_ENV="production", HUB_ADMIN_TOKEN="a-production-admin-token-of-32-chars")).test_client()
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=remote).status_code == 401
    assert client.get("/readyz", environ_base=remote).json == {"ready": True}
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200


def test_the_webhook_counters_count_each_outcome(client):
    from hub.telemetry import WEBHOOKS
    from tests.conftest import FIXTURES
    from tests.helpers import stripe_headers

    body = (FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes()

    def value(outcome: str) -> float:
        return WEBHOOKS.labels("stripe", outcome)._value.get()

    before = {o: value(o) for o in ("stored", "duplicate", "refused")}
    client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    client.post("/webhooks/stripe", data=body, headers=stripe_headers(body, "whsec_forged"))
    client.post("/webhooks/nope", data=body)  # an unknown connector is no label value
    assert {o: value(o) - before[o] for o in before} == {"stored": 1, "duplicate": 1, "refused": 1}
    text = client.get("/metrics").get_data(as_text=True)
    assert 'connector="nope"' not in text
