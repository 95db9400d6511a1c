"""Invoice lifecycle events from Stripe and Chargebee -> canonical invoice events carrying the facts the
invoice reminders need (collection method, due date, amount due, hosted URL, status), and the default
playbook planning reminders 3 days before the due date, on it and 3 days after, at 09:00 local."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from click.testing import CliRunner

import connectors
from connectors.base import RawDelivery
from hub.cli import cli
from hub.kernel.events import CanonicalEvent
from hub.rules import load_rules
from hub.simulate import simulate
from tests.conftest import FIXTURES, ROOT
from tests.rules.events import by_rule

RECEIVED = datetime(2026, 3, 1, tzinfo=timezone.utc)


def normalize(provider: str, name: str) -> CanonicalEvent:
    body = (FIXTURES / provider / f"{name}.json").read_bytes()
    [event] = connectors.get(provider).normalize(RawDelivery(1, provider, {}, body, RECEIVED))
    return event


BEN_INVOICE = {
    "id": "in_1QBenMar", "number": "BEN-0007", "collection_method": "send_invoice", "billing_reason": "subscription_cycle",
    "due_at": "2026-03-08T00:00:00Z", "period_start": "2026-02-01T00:00:00Z", "period_end": "2026-03-01T00:00:00Z",
    "hosted_url": "https://invoice.stripe.com/i/acct_1/test_in_1QBenMar",
    "pdf_url": "https://pay.stripe.com/invoice/acct_1/test_in_1QBenMar/pdf", "subscription_id": "sub_Ben",
    "customer_id": "cus_Ben",
}


def eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


@pytest.mark.parametrize("name, type_, status, due", [
    ("invoice.created", "invoice.created", "draft", 12000),
    ("invoice.finalized", "invoice.created", "open", 12000),
    ("invoice.updated", "invoice.updated", "open", 11000),
    ("invoice.will_be_due", "invoice.updated", "open", 11000),
    ("invoice.overdue", "invoice.updated", "open", 11000),
    ("invoice.voided", "invoice.updated", "void", 11000),
    ("invoice.marked_uncollectible", "invoice.updated", "uncollectible", 11000),
])
def test_stripe_invoice_lifecycle_events_carry_what_reminders_need(name: str, type_: str, status: str,
                                                                   due: int) -> None:
    event = normalize("stripe", name)
    assert (event.type, event.providertype, event.subject) == (type_, name, "cus_Ben")
    expected = {**BEN_INVOICE, "status": status, "total": eur(due), "amount_due": eur(due), "amount_paid": eur(0)}
    if name == "invoice.created":  # a draft has no number and no hosted page yet
        for key in ("number", "hosted_url", "pdf_url"):
            expected.pop(key)
    assert event.data["invoice"] == expected
    assert event.data["subscription"] == {"id": "sub_Ben"}
    assert event.data["subscriber"] == {"email": "ben@example.com", "name": "Ben Ode",
                                        "external_ids": {"stripe": "cus_Ben"}}


def test_hub_normalize_prints_the_stripe_invoice_events() -> None:
    for name in ("invoice.finalized", "invoice.voided"):
        result = CliRunner().invoke(cli, ["normalize", "stripe", str(FIXTURES / "stripe" / f"{name}.json")])
        assert result.exit_code == 0, result.output
        [line] = result.output.strip().splitlines()
        printed = json.loads(line)
        assert printed == normalize("stripe", name).to_dict()


@pytest.fixture(scope="module")
def playbook():
    return load_rules([ROOT / "rules"], environ={})


def test_the_playbook_reminds_of_a_stripe_invoice_paid_by_hand_and_stops_when_it_is_voided(playbook) -> None:
    events = [normalize("stripe", n) for n in ("invoice.created", "invoice.finalized", "invoice.updated",
                                                "invoice.will_be_due", "invoice.voided")]
    results = simulate(events, playbook)
    # due 2026-03-08: 3 days before, on the day, 3 days after, at 09:00 (UTC: no zone known)
    assert by_rule(results, "invoice-reminder") == [
        ("3d", "2026-03-05T09:00:00Z", "due"),
        ("0d", "2026-03-08T09:00:00Z", "due"),
        ("-3d", "2026-03-11T09:00:00Z", "cancelled"),   # voided on 2026-03-10
    ]
    reminder = next(r for r in results if r.rule == "invoice-reminder")
    assert reminder.params["properties"]["invoice_url"] == BEN_INVOICE["hosted_url"]
    assert reminder.params["value"] == eur(12000)  # the amount when the invoice was issued


def test_reminders_go_out_at_nine_in_the_subscribers_zone(playbook) -> None:
    finalized = normalize("stripe", "invoice.finalized")
    finalized.data["subscriber"]["timezone"] = "America/New_York"
    assert by_rule(simulate([finalized], playbook), "invoice-reminder") == [
        # the due moment (08 March 00:00Z) is 7 March in New York; summer time starts there on 8 March
        ("3d", "2026-03-04T14:00:00Z", "scheduled"),
        ("0d", "2026-03-07T14:00:00Z", "scheduled"),
        ("-3d", "2026-03-10T13:00:00Z", "scheduled"),
    ]


def test_an_invoice_charged_automatically_gets_no_reminders(playbook) -> None:
    finalized = normalize("stripe", "invoice.finalized")
    finalized.data["invoice"]["collection_method"] = "charge_automatically"
    assert by_rule(simulate([finalized], playbook), "invoice-reminder") == []


# -- Chargebee through a running hub ---------------------------------------------------------------
def test_chargebee_invoice_collected_by_hand_gets_reminders_at_nine_in_the_merchants_zone(make_hub, tmp_path) -> None:
    """``invoice_generated`` carries the invoice alone: the stored subscription (auto_collection off)
    says it is paid by hand. No zone is known for the subscriber: HUB_DEFAULT_TIMEZONE is used."""
    from datetime import timedelta

    from sqlalchemy import select

    from hub.store import Action
    from hub.web import create_app
    from tests.connectors.stripe.test_pipeline import basic_header
    from tests.helpers import drain

    hub = make_hub(HUB_CHARGEBEE_WEBHOOK_USERNAME="cb", HUB_CHARGEBEE_WEBHOOK_PASSWORD="pw",
                   HUB_DEFAULT_TIMEZONE="Europe/Paris")
    client = create_app(hub).test_client()

    def post(payload: dict[str, Any]) -> None:
        answer = client.post("/webhooks/chargebee", data=json.dumps(payload).encode(), headers={
            "Authorization": basic_header("cb", "pw"), "Content-Type": "application/json"})
        assert answer.status_code == 200
        drain(hub)

    def load(name: str) -> dict[str, Any]:
        return json.loads((FIXTURES / "chargebee" / f"{name}.json").read_text())

    post(load("subscription_created@offline"))
    # the invoice is issued now and falls due in 20 days (planning skips steps already past)
    issued = datetime.now(timezone.utc).replace(microsecond=0)
    due = (issued + timedelta(days=20)).replace(hour=0, minute=0, second=0)
    invoice = load("invoice_generated@offline")
    invoice["occurred_at"] = int(issued.timestamp())
    invoice["content"]["invoice"].update(date=int(issued.timestamp()), due_date=int(due.timestamp()))
    post(invoice)

    from zoneinfo import ZoneInfo
    paris = ZoneInfo("Europe/Paris")

    def nine_in_paris(days: int) -> datetime:
        local = (due + timedelta(days=days)).astimezone(paris).replace(hour=9, minute=0)
        return local.astimezone(timezone.utc)

    with hub.store.session() as s:
        planned = s.execute(select(Action.step, Action.due_at, Action.status, Action.params)
                            .where(Action.rule_id == "invoice-reminder").order_by(Action.due_at)).all()
    assert [(p.step, p.due_at, p.status) for p in planned] == [
        ("3d", nine_in_paris(-3), "scheduled"), ("0d", nine_in_paris(0), "scheduled"),
        ("-3d", nine_in_paris(3), "scheduled")]
    assert planned[0].params["properties"]["invoice_id"] == "cb_inv_9"
    # voided in Chargebee: what is pending is cancelled
    voided = load("invoice_updated@offline")
    voided["occurred_at"] = int(issued.timestamp()) + 60
    voided["content"]["invoice"].update(date=int(issued.timestamp()), due_date=int(due.timestamp()))
    post(voided)
    with hub.store.session() as s:
        assert set(s.execute(select(Action.status).where(Action.rule_id == "invoice-reminder")).scalars()) == {
            "cancelled"}


def test_hub_normalize_prints_the_chargebee_invoice_facts() -> None:
    path = FIXTURES / "chargebee" / "subscription_created@offline.json"
    result = CliRunner().invoke(cli, ["normalize", "chargebee", str(path)])
    assert result.exit_code == 0, result.output
    [created] = [json.loads(line) for line in result.output.strip().splitlines()]
    assert created["data"]["subscription"]["collection_method"] == "send_invoice"   # auto_collection off
    voided = normalize("chargebee", "invoice_updated@offline")
    assert voided.type == "invoice.updated"
    assert voided.data["invoice"] == {
        "id": "cb_inv_9", "provider_status": "voided", "status": "void", "recurring": True,
        "total": eur(12000), "amount_due": eur(0), "amount_paid": eur(0), "issued_at": "2026-03-01T00:00:00Z",
        "due_at": "2026-03-08T00:00:00Z", "first_invoice": False, "subscription_id": "cb_sub_Cy",
        "customer_id": "cb_cus_Cy"}


def test_stripe_invoice_events_through_a_running_hub_plan_and_cancel_reminders(make_hub) -> None:
    """invoice.finalized then invoice.voided posted to /webhooks/stripe: reminders at 09:00 in
    HUB_DEFAULT_TIMEZONE (no zone known for the subscriber), then cancelled."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from hub.store import Action
    from hub.web import create_app
    from tests.helpers import drain, stripe_headers

    hub = make_hub(HUB_STRIPE_WEBHOOK_SECRET="whsec_test_secret", HUB_DEFAULT_TIMEZONE="America/New_York")
    client = create_app(hub).test_client()
    issued = datetime.now(timezone.utc).replace(microsecond=0)
    due = (issued + timedelta(days=20)).replace(hour=12, minute=0, second=0)

    def post(name: str, created: int) -> None:
        payload = json.loads((FIXTURES / "stripe" / f"{name}.json").read_text())
        payload["created"] = created
        payload["data"]["object"]["due_date"] = int(due.timestamp())
        body = json.dumps(payload).encode()
        assert client.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).status_code == 200
        drain(hub)

    post("invoice.finalized", int(issued.timestamp()))
    new_york = ZoneInfo("America/New_York")
    expected = [((due + timedelta(days=d)).astimezone(new_york).replace(hour=9, minute=0)).astimezone(timezone.utc)
                for d in (-3, 0, 3)]
    with hub.store.session() as s:
        planned = s.execute(select(Action.step, Action.due_at, Action.status, Action.params)
                            .where(Action.rule_id == "invoice-reminder").order_by(Action.due_at)).all()
    assert [(p.step, p.due_at, p.status) for p in planned] == [
        ("3d", expected[0], "scheduled"), ("0d", expected[1], "scheduled"), ("-3d", expected[2], "scheduled")]
    assert planned[0].params["properties"]["invoice_url"] == BEN_INVOICE["hosted_url"]
    assert planned[0].params["value"] == eur(12000)
    post("invoice.voided", int(issued.timestamp()) + 60)
    with hub.store.session() as s:
        assert set(s.execute(select(Action.status).where(Action.rule_id == "invoice-reminder")).scalars()) == {
            "cancelled"}
