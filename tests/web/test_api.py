"""The admin API (bearer token), health checks and Prometheus metrics."""

from __future__ import annotations

from tests.conftest import FIXTURES
from tests.helpers import drain, recent, stripe_headers

BODY = (FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes()
AUTH = {"Authorization": "Bearer admin-test-token"}


def test_api_needs_the_bearer_token(client):
    assert client.get("/api/events").status_code == 401
    assert client.get("/api/events", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/events", headers=AUTH).status_code == 200


def test_api_lists_what_happened(hub, client):
    client.post("/webhooks/stripe", data=BODY, headers=stripe_headers(BODY))
    drain(hub)
    [delivery] = client.get("/api/deliveries", headers=AUTH).json
    assert delivery["status"] == "processed" and delivery["event_count"] == 1
    events = client.get("/api/events?type=payment.*", headers=AUTH).json
    assert [e["type"] for e in events] == ["payment.failed"]
    actions = client.get("/api/actions?attempts=1", headers=AUTH).json
    notify = [a for a in actions if a["rule_id"] == "payment-failed-notify"]
    assert notify and notify[0]["event_id"] == events[0]["id"]


def test_every_list_takes_since_and_until_as_the_cli_does(hub, client):
    """Ages (7d) and RFC 3339 times, on each list endpoint, select the same rows as --since/--until."""
    import json
    from datetime import timedelta

    from click.testing import CliRunner
    from sqlalchemy import update

    from hub.cli import cli
    from hub.store import Action, Delivery, Event, utcnow

    body = recent(BODY, "created")
    client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    drain(hub)
    three_days_ago = utcnow() - timedelta(days=3)
    with hub.store.session() as s:  # everything happened three days ago
        s.execute(update(Delivery).values(received_at=three_days_ago))
        s.execute(update(Event).values(time=three_days_ago))
        s.execute(update(Action).values(created_at=three_days_ago))
    for name in ("events", "deliveries", "actions"):
        for window, rows in (("since=4d", True), ("since=2d", False), ("until=2d", True), ("until=4d", False),
                             (f"since={(three_days_ago - timedelta(hours=1)).isoformat()}", True),
                             ("since=4d&until=2d", True), ("until=2000-01-01T00:00:00Z", False)):
            listed = client.get(f"/api/{name}?{window.replace('+', '%2B')}", headers=AUTH)
            assert listed.status_code == 200, (name, window, listed.json)
            assert bool(listed.json) is rows, (name, window)
            flags = [f"--{part.replace('=', ' ', 1)}" for part in window.split("&")]
            cli_rows = CliRunner().invoke(cli, [name, "--json", *" ".join(flags).split()]).stdout.splitlines()
            assert sorted(str(json.loads(r)["id"]) for r in cli_rows) == \
                sorted(str(r["id"]) for r in listed.json), (name, window)


def test_replay_through_the_api(hub, client):
    from hub.store import Action
    from hub.store.models import ActionStatus

    client.post("/webhooks/stripe", data=BODY, headers=stripe_headers(BODY))
    drain(hub)
    with hub.store.session() as s:
        action = s.query(Action).filter(Action.rule_id == "payment-failed-notify").one()
        action.status = ActionStatus.DEAD
        action_id = action.id
    answer = client.post("/api/replay", json={"kind": "actions", "ids": [action_id]}, headers=AUTH)
    assert answer.json == {"replayed": 1, "already_pending": 0, "skipped": 0}
    with hub.store.session() as s:
        assert s.get(Action, action_id).status == ActionStatus.QUEUED
    again = client.post("/api/replay", json={"kind": "actions", "ids": [action_id, 999]}, headers=AUTH)
    assert again.json == {"replayed": 0, "already_pending": 1, "skipped": 1}


def test_replay_through_the_api_refuses_a_status_it_cannot_replay(client):
    answer = client.post("/api/replay", json={"kind": "actions", "status": "bogus"}, headers=AUTH)
    assert answer.status_code == 400 and "status" in answer.json["message"]
    assert client.post("/api/replay", json={"kind": "nope", "ids": [1]}, headers=AUTH).status_code == 400


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"ok": True}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readiness_fails_when_redis_is_away(make_hub):
    from hub.web import create_app

    hub = make_hub(HUB_REDIS_URL="redis://127.0.0.1:1/0")
    ready = create_app(hub).test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["redis"].startswith("unavailable")


def test_prometheus_metrics(hub, client):
    client.post("/webhooks/stripe", data=BODY, headers=stripe_headers(BODY))
    hub.relay.flush()  # the ingest job is enqueued off the request thread
    text = client.get("/metrics").get_data(as_text=True)
    assert 'hub_deliveries{connector="stripe",status="received"} 1.0' in text
    assert 'hub_queue_jobs{queue="ingest"} 1.0' in text
