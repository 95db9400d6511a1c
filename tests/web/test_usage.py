"""POST /api/usage: metered usage from the merchant's system becomes usage.recorded events, each
record validated, a bad batch answered record by record with nothing stored, a replay recorded
once, and the upsell rule planning from it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub.store import Action, Event, ExternalId, Subscriber
from tests.conftest import ROOT
from tests.helpers import count, drain, rows
from tests.rules.events import event

AUTH = {"Authorization": "Bearer admin-test-token"}


def record(key: str, quantity: float, **extra: Any) -> dict[str, Any]:
    return {"subscriber": "ann@example.com", "subscription_id": "sub_1", "metric": "api_calls",
            "quantity": quantity, "limit": 10000, "time": "2026-11-20T10:00:00Z", "idempotency_key": key, **extra}


def test_usage_needs_the_bearer_token(client):
    assert client.post("/api/usage", json={"records": [record("k1", 1)]}).status_code == 401


def test_a_batch_becomes_usage_recorded_events_once(hub, client):
    batch = {"records": [record("k1", 4000), record("k2", 100, subscriber=None, external_id="crm-42",
                                                     subscription_id=None, limit=None, time=None)]}
    batch["records"][1] = {k: v for k, v in batch["records"][1].items() if v is not None}
    answer = client.post("/api/usage", json=batch, headers=AUTH)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["recorded"] == 2 and answer.get_json()["duplicates"] == 0
    [first, second] = sorted(rows(hub, Event, Event.type == "usage.recorded"), key=lambda e: e.data["usage"]["metric"]
                             + e.data["usage"]["idempotency_key"])
    assert first.data["usage"] == {"metric": "api_calls", "quantity": 4000, "limit": 10000, "idempotency_key": "k1"}
    assert first.data["subscription"] == {"id": "sub_1"}
    assert first.time.isoformat() == "2026-11-20T10:00:00+00:00"
    assert second.data["subscriber"] == {"external_ids": {"merchant": "crm-42"}}
    assert ("merchant", "crm-42") in [(x.provider, x.external_id) for x in rows(hub, ExternalId)]
    assert {s.email for s in rows(hub, Subscriber)} == {"ann@example.com", None}
    again = client.post("/api/usage", json=batch, headers=AUTH).get_json()
    assert (again["recorded"], again["duplicates"]) == (0, 2)
    assert count(hub, Event, Event.type == "usage.recorded") == 2


def test_bad_records_are_named_by_index_and_nothing_is_stored(hub, client):
    batch = {"records": [
        record("k1", 10),
        {"metric": "api_calls", "quantity": 1, "idempotency_key": "k2"},   # nobody
        record("k3", -5),                                                  # negative
        record("k4", 1, limit=0),
        record("k1", 2),                                                   # key used twice
        record("k6", 1, subscriber="999999"),                              # unknown hub id
        "not an object",
        record("k8", 1, time="yesterday"),
    ]}
    answer = client.post("/api/usage", json=batch, headers=AUTH)
    assert answer.status_code == 400
    problems = {p["index"]: p["errors"] for p in answer.get_json()["records"]}
    assert sorted(problems) == [1, 2, 3, 4, 5, 6, 7]
    assert "subscriber" in problems[1] and "quantity" in problems[2] and "limit" in problems[3]
    assert problems[4] == {"idempotency_key": ["used twice in this batch"]}
    assert problems[5] == {"subscriber": ["no subscriber 999999"]}
    assert "time" in problems[7]
    assert count(hub, Event) == 0
    for body in ({"records": []}, {"records": "x"}, ["a list"], {}):
        refused = client.post("/api/usage", json=body, headers=AUTH)
        assert refused.status_code == 400 and "records" in refused.get_json()["message"]
    assert client.post("/api/usage", data=b"{nope", headers={**AUTH, "Content-Type": "application/json"}
                       ).status_code == 400


def test_the_upsell_rule_works_from_posted_usage(make_hub):
    from hub.ingest.pipeline import record_events
    from hub.web import create_app

    hub = make_hub(HUB_RULES_PATH=str(ROOT / "rules"))
    client = create_app(hub).test_client()
    with hub.store.session() as s:
        record_events(hub, s, [event("subscriber.created", "2026-11-01T00:00:00Z")], origin="import")
    [ann] = rows(hub, Subscriber)
    low = client.post("/api/usage", json={"records": [record("u1", 5000, subscriber=str(ann.id),
                                                             time=None)]}, headers=AUTH)
    assert low.status_code == 200
    drain(hub)
    with hub.store.session() as s:
        assert s.execute(select(Action.id).where(Action.rule_id == "upsell-usage")).all() == []
    high = client.post("/api/usage", json={"records": [record("u2", 8000, subscriber=str(ann.id),
                                                              time=None)]}, headers=AUTH)
    assert high.status_code == 200
    drain(hub)
    with hub.store.session() as s:
        [(params, subscriber_id)] = s.execute(select(Action.params, Action.subscriber_id)
                                              .where(Action.rule_id == "upsell-usage")).all()
    assert subscriber_id == ann.id
    assert params["metric"] == "Upsell Usage"
    assert params["properties"]["usage_metric"] == "api_calls"
    assert params["properties"]["usage_ratio"] == 0.8
