"""Rules in a running hub: hot reload that refuses a broken file, and `hub explain`."""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select, update

from hub.cli.explain import explain
from hub.ingest.pipeline import record_events
from hub.kernel.values import rfc3339
from hub.store import Action, Subscriber, utcnow
from tests.helpers import drain, stripe_event, stripe_headers
from tests.rules.events import event, subscription

NOTIFY = """\
rules:
  - id: notify
    on: [payment.failed]
    actions:
      - klaviyo.track_event: {{metric: {metric}}}
"""
BROKEN = """\
rules:
  - id: other
    on: [payment.failed]
    when: "payment.attempt >"
    actions:
      - klaviyo.track_event: {}
"""


def _post_failure(client, n: int) -> None:
    body = stripe_event("invoice.payment_failed", {
        "id": f"in_{n}", "object": "invoice", "customer": f"cus_{n}", "customer_email": f"p{n}@example.com",
        "currency": "usd", "amount_due": 1000, "attempt_count": 1, "status": "open"}, event_id=f"evt_{n}")
    assert client.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).status_code == 200


def _touch(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    stamp = path.stat().st_mtime + bump
    os.utime(path, (stamp, stamp))


def test_a_broken_file_is_refused_and_the_running_rules_stay(make_hub, tmp_path: Path, caplog):
    from hub.web import create_app

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    _touch(rules_dir / "notify.yaml", NOTIFY.format(metric="First"), 0)
    hub = make_hub(HUB_RULES_PATH=str(rules_dir), HUB_KLAVIYO_API_KEY=None)  # Klaviyo runs dry
    client = create_app(hub).test_client()
    first = hub.rules
    hub._rules.check_every = 0  # look at the files on every use instead of once a second

    _touch(rules_dir / "broken.yaml", BROKEN, 5)
    with caplog.at_level(logging.ERROR, logger="hub.rules.registry"):
        _post_failure(client, 1)
        drain(hub)
        hub._rules.wait_reloaded()  # reloads run off the request and worker threads
    assert hub.rules is first
    refused = [r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage()]
    assert refused and f"{rules_dir / 'broken.yaml'}:4:11: condition does not compile" in refused[0]
    assert f"{rules_dir / 'broken.yaml'}:6:30: klaviyo.track_event: metric: missing required parameter" in refused[0]

    (rules_dir / "broken.yaml").unlink()
    _touch(rules_dir / "notify.yaml", NOTIFY.format(metric="Second"), 10)
    hub.rules  # notices the change and starts the reload...
    hub._rules.wait_reloaded()  # ...which the test waits for, so event 2 meets the new rules
    _post_failure(client, 2)
    drain(hub)
    with hub.store.session() as s:
        planned = s.execute(select(Action.params, Action.rules_hash, Action.status).order_by(Action.id)).all()
    assert [(p["metric"], status) for p, _, status in planned] == [("First", "dry_run"), ("Second", "dry_run")]
    assert planned[0].rules_hash == first.hash and planned[1].rules_hash == hub.rules.hash != first.hash


def test_explain_says_why_an_action_exists_and_who_cancelled_it(hub):
    now = utcnow()
    renews = rfc3339(now + timedelta(days=60))
    created = event("subscription.created", rfc3339(now - timedelta(minutes=1)), customer="cus_x",
                    subscription=subscription("sub_x", period_end=renews))
    paused = event("subscription.paused", rfc3339(now), customer="cus_x",
                   subscription=subscription("sub_x", status="paused", period_end=renews))
    with hub.store.session() as s:
        record_events(hub, s, [created], origin="import")
    with hub.store.session() as s:
        record_events(hub, s, [paused], origin="import")
        action_id, key = s.execute(select(Action.id, Action.key).where(
            Action.rule_id == "renewal-reminder", Action.step == "7d")).one()

    result = CliRunner().invoke(explain, [str(action_id)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"action {action_id}  klaviyo.track_event  status=cancelled" in text
    assert f"  key        {key}" in text
    assert "rule renewal-reminder  at " in text and "rules/renewals.yaml:" in text
    assert f"because of event {created.id}  subscription.created" in text
    assert "  subscription.status = 'active'" in text
    assert "  subscription.plan.interval = 'year'" in text
    assert "'days_left': 7" in text
    assert f"cancelled by event {paused.id} subscription.paused" in text

    info = json.loads(CliRunner().invoke(explain, [str(action_id), "--json"]).output)
    assert info["rule"]["id"] == "renewal-reminder" and info["rule"]["changed_since"] is False
    assert info["event"]["id"] == created.id and info["cancelled"]["by_event"]["id"] == paused.id
    assert info["action"]["params"]["properties"]["renews_at"] == renews
    assert CliRunner().invoke(explain, ["999999"]).exit_code == 1


def test_explain_shows_the_inputs_as_planned_not_todays_profile(hub):
    created = event("subscription.created", rfc3339(utcnow()), customer="cus_y", email="old@example.com",
                    subscription=subscription("sub_y", period_end=rfc3339(utcnow() + timedelta(days=90))))
    with hub.store.session() as s:
        record_events(hub, s, [created], origin="import")
        [action_id] = s.execute(select(Action.id).where(Action.rule_id == "crm-subscription-hubspot")).scalars()
        s.execute(update(Subscriber).where(Subscriber.email == "old@example.com")
                  .values(email="new@example.com"))  # the profile changes later

    info = json.loads(CliRunner().invoke(explain, [str(action_id), "--json"]).output)
    condition = info["condition"]
    assert condition["source"] == "vars.crm == 'hubspot' and subscriber.email and subscription.status"
    assert condition["inputs"] == {"vars.crm": "hubspot", "subscription.status": "active"}
    assert condition["not_recorded"] == ["subscriber.email"] and condition["holds"] is True
    assert info["action"]["params"]["email"] == "old@example.com"  # the rendered params, as planned
    text = CliRunner().invoke(explain, [str(action_id)]).output
    assert "new@example.com" not in text
    assert "  not recorded when planned: subscriber.email" in text


def test_explain_shows_the_provider_a_billing_action_was_routed_to_and_why_a_step_was_suppressed(hub):
    failed = event("payment.failed", rfc3339(utcnow()), customer="cus_z",
                   invoice={"id": "in_z", "status": "open"}, subscription={"id": "sub_z"},
                   payment={"amount": {"minor": 2900, "currency": "USD"}, "attempt": 1})
    old = event("payment.failed", rfc3339(utcnow() - timedelta(days=90)), customer="cus_z",
                invoice={"id": "in_old", "status": "open"}, subscription={"id": "sub_z"},
                payment={"amount": {"minor": 2900, "currency": "USD"}, "attempt": 1})
    with hub.store.session() as s:
        record_events(hub, s, [failed, old], origin="import")
        retry_id = s.execute(select(Action.id).where(Action.rule_id == "dunning-retry", Action.step == "3d",
                                                     Action.occurrence == "in_z")).scalar_one()
        old_id = s.execute(select(Action.id).where(Action.rule_id == "payment-failed-notify",
                                                   Action.occurrence == "in_old")).scalar_one()

    text = CliRunner().invoke(explain, [str(retry_id)]).output
    assert f"action {retry_id}  stripe.retry_payment  status=scheduled" in text
    assert "  routed     billing.retry_payment -> stripe.retry_payment" in text
    assert "  why        routed to stripe.retry_payment (the subscription's provider is stripe)" in text
    info = json.loads(CliRunner().invoke(explain, [str(retry_id), "--json"]).output)
    assert info["action"]["routed_from"] == "billing.retry_payment" and info["action"]["throttle_key"] == "in_z"

    text = CliRunner().invoke(explain, [str(old_id)]).output
    assert f"action {old_id}  klaviyo.track_event  status=suppressed" in text
    assert "  suppressed skipped-historic: never sent" in text
    assert "more than missed_horizon (1d) before it was planned" in text
