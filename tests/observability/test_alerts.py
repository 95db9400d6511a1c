"""Each operational alert: cause the condition, evaluate several times, see ``alert.raised`` once;
remove it, evaluate several times, see ``alert.resolved`` once. Alerts are routed by the rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from hub import alerts
from hub.outbound.circuit import Circuit, Credentials
from hub.store import Action, Delivery, Event, utcnow
from tests.conftest import FIXTURES
from tests.helpers import stripe_headers

BODY = (FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes()


def evaluate(hub, now=None, times: int = 3) -> None:
    for _ in range(times):  # evaluating again while nothing changed records nothing more
        alerts.evaluate(hub, now)


def alert_events(hub, key: str) -> list[str]:
    with hub.store.session() as s:
        return list(s.execute(select(Event.type).where(Event.subject == key).order_by(Event.time,
                                                                                      Event.recorded_at)).scalars())


def add_delivery(hub, n: int, at, status: str = "processed") -> int:
    return hub.store.insert_one(Delivery.__table__, {
        "connector": "stripe", "dedup_key": f"evt_{n}", "headers": {}, "body": b"{}", "received_at": at,
        "status": status, "attempts": 0, "enqueued": 1, "enqueued_at": at, "event_count": 0},
        ["connector", "dedup_key"])


def test_dead_letters_raise_then_resolve_when_the_window_has_passed(hub):
    now = utcnow()
    with hub.store.session() as s:
        s.add(Action(key="k1", connector="klaviyo", name="track_event", params={}, due_at=now, status="dead",
                     attempts=20, dispatch_seq=1, created_at=now, updated_at=now))
    evaluate(hub, now)
    assert alert_events(hub, "dead_letters/klaviyo") == ["alert.raised"]
    evaluate(hub, now + timedelta(hours=2))
    assert alert_events(hub, "dead_letters/klaviyo") == ["alert.raised", "alert.resolved"]


def test_an_open_circuit_raises_and_closing_it_resolves(hub):
    Circuit(hub.redis).failure("klaviyo", 1, 60.0, "503 from klaviyo")
    evaluate(hub)
    assert alert_events(hub, "circuit_open/klaviyo") == ["alert.raised"]
    Circuit(hub.redis).success("klaviyo")
    evaluate(hub)
    assert alert_events(hub, "circuit_open/klaviyo") == ["alert.raised", "alert.resolved"]


def test_invalid_credentials_raise_and_a_success_resolves(hub):
    Credentials(hub.redis).mark_invalid("klaviyo", 401, "invalid API key")
    evaluate(hub)
    assert alert_events(hub, "credentials_invalid/klaviyo") == ["alert.raised"]
    Credentials(hub.redis).clear("klaviyo")
    evaluate(hub)
    assert alert_events(hub, "credentials_invalid/klaviyo") == ["alert.raised", "alert.resolved"]


def test_a_burst_of_forged_webhooks_raises_and_quiet_resolves(hub, client):
    for _ in range(20):
        forged = stripe_headers(BODY, "whsec_forged")
        assert client.post("/webhooks/stripe", data=BODY, headers=forged).status_code == 401
    now = utcnow()
    evaluate(hub, now)
    [raised] = [e for e in alerts_for(hub, "signature_failures/stripe")]
    assert raised.data["alert"]["value"] == 20
    evaluate(hub, now + timedelta(minutes=11))  # the 10-minute window has passed
    assert alert_events(hub, "signature_failures/stripe") == ["alert.raised", "alert.resolved"]


def test_a_provider_silent_for_three_times_its_usual_gap_raises_and_its_next_webhook_resolves(hub):
    start = utcnow() - timedelta(hours=5)
    for n in range(5):  # every 30 minutes, the last at start + 2h
        add_delivery(hub, n, start + timedelta(minutes=30 * n))
    evaluate(hub, start + timedelta(hours=3))  # 1 h quiet: within 3 x 30 min
    assert alert_events(hub, "provider_silent/stripe") == []
    evaluate(hub, start + timedelta(hours=4))  # 2 h quiet
    assert alert_events(hub, "provider_silent/stripe") == ["alert.raised"]
    add_delivery(hub, 99, start + timedelta(hours=4, minutes=1))
    evaluate(hub, start + timedelta(hours=4, minutes=2))
    assert alert_events(hub, "provider_silent/stripe") == ["alert.raised", "alert.resolved"]


def test_an_old_backlog_raises_and_stays_raised_until_it_is_below_the_clear_threshold(hub):
    now = utcnow()
    delivery = add_delivery(hub, 1, now - timedelta(minutes=20), status="received")
    evaluate(hub, now)
    assert alert_events(hub, "backlog_age/ingest") == ["alert.raised"]
    with hub.store.session() as s:  # 10 minutes old: under raise_at (15m) but over clear_at (5m)
        s.execute(update(Delivery).where(Delivery.id == delivery).values(received_at=now - timedelta(minutes=10)))
    evaluate(hub, now)
    assert alert_events(hub, "backlog_age/ingest") == ["alert.raised"]
    with hub.store.session() as s:
        s.execute(update(Delivery).where(Delivery.id == delivery).values(status="processed"))
    evaluate(hub, now)
    assert alert_events(hub, "backlog_age/ingest") == ["alert.raised", "alert.resolved"]


def test_a_raised_alert_is_posted_to_slack_by_the_default_playbook(make_hub, monkeypatch):
    monkeypatch.setenv("HUB_RULES_ALERTS_SLACK_URL", "https://hooks.slack.test/services/T0/B0/x")
    hub = make_hub()
    Credentials(hub.redis).mark_invalid("klaviyo", 401, "invalid API key")
    alerts.evaluate(hub)
    with hub.store.session() as s:
        [action] = s.execute(select(Action).where(Action.rule_id == "alerts-to-slack")).scalars().all()
    assert (action.connector, action.name) == ("webhook", "post")
    assert action.params["url"] == "https://hooks.slack.test/services/T0/B0/x"
    assert action.params["payload"]["text"].startswith(":rotating_light: RAISED credentials_invalid (klaviyo)")


def test_alert_thresholds_without_hysteresis_are_refused_with_their_place(tmp_path):
    from hub.rules.yamlpos import LocatedError

    (tmp_path / "alerts.yaml").write_text("alerts:\n  operational:\n    backlog_age: {raise_at: 5m, clear_at: 10m}\n")
    with pytest.raises(LocatedError, match=r"alerts.yaml:3:\d+: .*must be below raise_at"):
        alerts.load_config([tmp_path])


def alerts_for(hub, key: str) -> list:
    from hub.kernel.events import CanonicalEvent

    with hub.store.session() as s:
        rows = s.execute(select(Event).where(Event.subject == key)).scalars().all()
        return [CanonicalEvent(type=r.type, time=str(r.time), provider=r.provider,
                               providereventid=r.provider_event_id, providertype=r.provider_type, data=r.data)
                for r in rows]


def test_hub_alerts_check_lists_what_fires_and_records_it(hub):
    from click.testing import CliRunner

    from hub.cli import cli

    Credentials(hub.redis).mark_invalid("klaviyo", 401, "invalid API key")
    result = CliRunner().invoke(cli, ["alerts", "check"])
    assert result.exit_code == 0, result.output
    assert "FIRING  credentials_invalid/klaviyo: klaviyo credentials rejected (401)" in result.output
    assert "alert.raised credentials_invalid/klaviyo" in result.output
    assert alert_events(hub, "credentials_invalid/klaviyo") == ["alert.raised"]
