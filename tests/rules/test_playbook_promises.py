"""Golden simulations of the default playbook's promises per payment, per invoice and per person:
dunning owned by the hub per failed invoice (whichever provider bills, whoever retries the card),
invoice reminders per invoice, the marketing cap, quiet hours across DST, the day-0 step after the
send hour and an import of old history. Every suppression is shown with its reason."""

from __future__ import annotations

import pytest

from hub.rules import load_rules
from hub.simulate import SimulatedAction, simulate
from tests.conftest import ROOT
from tests.rules.events import event, subscription


@pytest.fixture(scope="module")
def playbook():
    return load_rules([ROOT / "rules"], environ={})


def _playbook(**vars_) -> object:
    rules = load_rules([ROOT / "rules"], environ={})
    rules.vars.update(vars_)  # what editing vars.yaml does
    return rules


def _failed(time: str, invoice: str = "in_1", sub: str = "sub_1", provider: str = "stripe",
            timezone: str | None = None, **payment) -> object:
    return event("payment.failed", time, provider=provider, timezone=timezone,
                 invoice={"id": invoice, "status": "open", "hosted_url": f"https://pay/{invoice}"},
                 subscription={"id": sub}, payment={"amount": {"minor": 2900, "currency": "USD"}, **payment})


def _paid(time: str, invoice: str = "in_1", sub: str = "sub_1", provider: str = "stripe") -> object:
    return event("payment.succeeded", time, provider=provider, invoice={"id": invoice, "status": "paid"},
                 subscription={"id": sub}, payment={"amount": {"minor": 2900, "currency": "USD"}})


def _rows(results: list[SimulatedAction], subject: str | None = None) -> list[tuple[str, str, str, str, str]]:
    """(rule, step, action, due_at, status) of the dunning and invoice rules, in due order."""
    return [(r.rule, r.step or "", r.action, r.due_at, r.status) for r in results
            if r.rule.startswith(("dunning", "payment-", "card-", "invoice-"))
            and (subject is None or r.subject == subject)]


def _cadence(sub: str, day0: str, days: dict[str, str], *, retries: bool = True, notice: str = "payment-failed-notify",
             status: str = "scheduled", suspend: str = "dunning-suspend") -> list[tuple[str, str, str, str, str]]:
    """The promised cadence: notice at once; reminder (and retry) at 3, 7, 14 days; final notice and
    suspension at 21 days."""
    out = [(notice, "now", "klaviyo.track_event", day0, "due")]
    for step in ("3d", "7d", "14d"):
        out.append(("dunning-reminder", step, "klaviyo.track_event", days[step], status))
        if retries:
            out.append(("dunning-retry", step, "stripe.retry_payment", days[step], status))
    out.append(("dunning-final-notice", "21d", "klaviyo.track_event", days["21d"], status))
    out.append((suspend, "21d", "stripe.pause_subscription", days["21d"], status))
    return sorted(out, key=lambda r: (r[3], r[0]))


def _sorted(rows):
    return sorted(rows, key=lambda r: (r[3], r[0]))


JAN31 = {"3d": "2026-02-03T10:00:00Z", "7d": "2026-02-07T10:00:00Z", "14d": "2026-02-14T10:00:00Z",
         "21d": "2026-02-21T10:00:00Z"}


def test_dunning_cadence_of_one_invoice_routes_billing_actions_to_stripe_and_stops_at_payment(playbook):
    failed = _failed("2026-01-31T10:00:00Z")  # month end: day 3 is in February
    paid = _paid("2026-02-05T08:00:00Z")
    results = simulate([failed, paid], playbook)
    expected = _cadence("sub_1", "2026-01-31T10:00:00Z", JAN31, status="cancelled")
    expected = [r if r[1] != "3d" else r[:4] + ("due",) for r in expected]
    expected = _sorted(expected + [("payment-recovered-thanks", "now", "klaviyo.track_event",
                                    "2026-02-05T08:00:00Z", "due")])
    assert _sorted(_rows(results)) == expected
    assert {r.cancelled_by for r in results if r.status == "cancelled"} == {paid.id}
    [retry] = [r for r in results if r.rule == "dunning-retry" and r.step == "3d"]
    assert retry.params == {"invoice_id": "in_1"} and retry.via == "billing.retry_payment"
    assert retry.reason == "routed to stripe.retry_payment (the subscription's provider is stripe)"
    [suspend] = [r for r in results if r.rule == "dunning-suspend"]
    assert suspend.params == {"subscription_id": "sub_1", "behavior": "void"}


def test_two_subscriptions_failing_for_one_person_each_get_their_own_cadence_and_retries(playbook):
    first = _failed("2026-01-31T10:00:00Z", "in_1", "sub_1")
    second = _failed("2026-02-02T12:00:00Z", "in_2", "sub_2")
    results = simulate([first, second], playbook)
    feb2 = {"3d": "2026-02-05T12:00:00Z", "7d": "2026-02-09T12:00:00Z", "14d": "2026-02-16T12:00:00Z",
            "21d": "2026-02-23T12:00:00Z"}

    def pending(rows):  # what is still to come when the replay ends (day 3 of the first has passed)
        return [r[:4] + (("due",) if r[3] <= "2026-02-02T12:00:00Z" else ("scheduled",)) for r in rows]

    assert _sorted(_rows(results, "sub_1")) == pending(_cadence("sub_1", "2026-01-31T10:00:00Z", JAN31))
    assert _sorted(_rows(results, "sub_2")) == pending(_cadence("sub_2", "2026-02-02T12:00:00Z", feb2))
    assert not [r for r in results if r.status == "throttled"]  # 3 retries per invoice, not per person


def test_a_re_failure_of_the_same_invoice_neither_restarts_nor_duplicates_the_cadence_on_chargebee(playbook):
    # Chargebee sends no attempt number: the second failure (after the day-3 retry) looks like the first
    first = _failed("2026-03-02T09:30:00Z", provider="chargebee")
    again = _failed("2026-03-05T09:31:00Z", provider="chargebee")
    results = simulate([first, again], playbook)
    rows = _rows(results)
    assert [r for r in rows if r[0] == "payment-failed-notify"] == [
        ("payment-failed-notify", "now", "klaviyo.track_event", "2026-03-02T09:30:00Z", "due")]  # one notice
    assert [(r[0], r[2], r[3]) for r in rows if r[1] == "21d"] == [
        ("dunning-final-notice", "klaviyo.track_event", "2026-03-23T09:30:00Z"),  # 21 days after the FIRST
        ("dunning-suspend", "chargebee.pause_subscription", "2026-03-23T09:30:00Z")]
    assert [(r[1], r[2], r[3]) for r in rows if r[0] == "dunning-retry"] == [
        ("3d", "chargebee.collect_payment", "2026-03-05T09:30:00Z"),
        ("7d", "chargebee.collect_payment", "2026-03-09T09:30:00Z"),
        ("14d", "chargebee.collect_payment", "2026-03-16T09:30:00Z")]
    assert all(r.event == first.id for r in results if r.rule.startswith(("dunning", "payment-")))
    [pause] = [r for r in results if r.rule == "dunning-suspend"]
    assert pause.params == {"subscription_id": "sub_1", "pause_option": "immediately"}
    # another invoice of the same subscription has its own cadence
    other = _failed("2026-04-02T09:30:00Z", "in_2", provider="chargebee")
    both = simulate([first, again, other], playbook)
    assert [(r.params["properties"]["invoice_id"], r.due_at) for r in both if r.rule == "dunning-reminder"] == [
        ("in_1", "2026-03-05T09:30:00Z"), ("in_1", "2026-03-09T09:30:00Z"), ("in_1", "2026-03-16T09:30:00Z"),
        ("in_2", "2026-04-05T09:30:00Z"), ("in_2", "2026-04-09T09:30:00Z"), ("in_2", "2026-04-16T09:30:00Z")]


@pytest.mark.parametrize("mode, next_retry_at, retried", [
    ("hub", "2026-03-04T10:00:00Z", True),      # the hub retries even though Stripe would
    ("auto", None, True),                       # Stripe scheduled no retry of its own
    ("auto", "2026-03-04T10:00:00Z", False),    # Stripe Smart Retries run: the hub leaves the card alone
    ("provider", None, False),
    ("off", None, False),
])
def test_provider_retries_on_or_off_only_decide_the_retries_the_messages_run_in_every_case(mode, next_retry_at,
                                                                                           retried):
    failed = _failed("2026-03-01T10:00:00Z", **({"next_retry_at": next_retry_at} if next_retry_at else {}))
    results = simulate([failed], _playbook(dunning_retries=mode))
    days = {"3d": "2026-03-04T10:00:00Z", "7d": "2026-03-08T10:00:00Z", "14d": "2026-03-15T10:00:00Z",
            "21d": "2026-03-22T10:00:00Z"}
    assert _sorted(_rows(results)) == _cadence("sub_1", "2026-03-01T10:00:00Z", days, retries=retried)


def test_a_hard_decline_skips_retries_and_asks_for_another_card_at_once(playbook):
    stolen = _failed("2026-03-01T10:00:00Z", failure_code="card_declined", decline_code="stolen_card")
    results = simulate([stolen], playbook)
    days = {"3d": "2026-03-04T10:00:00Z", "7d": "2026-03-08T10:00:00Z", "14d": "2026-03-15T10:00:00Z",
            "21d": "2026-03-22T10:00:00Z"}
    assert _sorted(_rows(results)) == _cadence("sub_1", "2026-03-01T10:00:00Z", days, retries=False,
                                               notice="card-update-request")
    [ask] = [r for r in results if r.rule == "card-update-request"]
    assert ask.params["metric"] == "Update Your Card" and ask.params["properties"]["reason"] == "stolen_card"


def test_suspension_is_a_var_and_cancels_on_a_leap_day():
    results = simulate([_failed("2028-02-08T10:00:00Z")], _playbook(dunning_suspend="cancel"))
    assert [r[1:] for r in _rows(results) if r[0] in ("dunning-cancel", "dunning-suspend")] == [
        ("21d", "stripe.cancel_subscription", "2028-02-29T10:00:00Z", "scheduled")]
    [cancel] = [r for r in results if r.rule == "dunning-cancel"]
    assert cancel.params == {"subscription_id": "sub_1", "comment": "unpaid after dunning"}


def test_a_void_invoice_stops_its_dunning_and_a_cancelled_subscription_stops_all_of_its_invoices(playbook):
    voided = event("invoice.created", "2026-03-03T10:00:00Z", invoice={"id": "in_1", "status": "void"},
                   subscription={"id": "sub_1"})
    one, two = _failed("2026-03-01T10:00:00Z"), _failed("2026-03-01T11:00:00Z", "in_2")
    results = simulate([one, two, voided], playbook)
    assert {r.event for r in results if r.status == "cancelled"} == {one.id}
    assert len([r for r in results if r.status == "cancelled"]) == 8  # in_1: 3 reminders, 3 retries, final, suspend
    assert {r.status for r in results if r.event == two.id and r.due_at > "2026-03-03"} == {"scheduled"}
    gone = event("subscription.cancelled", "2026-03-05T10:00:00Z", subscription=subscription(status="cancelled"))
    results = simulate([_failed("2026-03-01T10:00:00Z"), _failed("2026-03-01T11:00:00Z", "in_2"), gone], playbook)
    assert {r.status for r in results if r.rule.startswith("dunning") and r.due_at > "2026-03-05"} == {"cancelled"}


def test_billing_actions_of_a_provider_without_them_are_recorded_with_the_reason_then_routed_once_installed(
        playbook, monkeypatch):
    from connectors import REGISTRY

    shopify = REGISTRY["shopify"]
    installed = shopify.actions
    failed = _failed("2026-03-01T10:00:00Z", provider="shopify")
    # without the Shopify billing actions (an older hub): recorded, with the reason, never sent
    monkeypatch.setattr(type(shopify), "actions", {k: v for k, v in installed.items() if k != "retry_payment"})
    retries = [r for r in simulate([failed], playbook) if r.rule == "dunning-retry"]
    assert {r.status for r in retries} == {"no-route"} and len(retries) == 3
    assert retries[0].reason == "billing.retry_payment: shopify.retry_payment is not installed"
    # with them registered, the same playbook routes to them
    monkeypatch.setattr(type(shopify), "actions", installed)
    routed = [r for r in simulate([failed], playbook) if r.rule == "dunning-retry"]
    assert [(r.action, r.status, r.via) for r in routed] == [
        ("shopify.retry_payment", "scheduled", "billing.retry_payment")] * 3


INVOICE = {"status": "open", "collection_method": "send_invoice", "amount_due": {"minor": 12000, "currency": "EUR"}}


def test_two_open_invoices_paid_in_the_other_order_keep_each_others_reminders(playbook):
    a = event("invoice.created", "2026-02-20T12:00:00Z", subscription={"id": "sub_9"},
              invoice={**INVOICE, "id": "in_a", "due_at": "2026-03-10T00:00:00Z"})
    b = event("invoice.created", "2026-02-25T12:00:00Z", subscription={"id": "sub_9"},
              invoice={**INVOICE, "id": "in_b", "due_at": "2026-03-20T00:00:00Z"})
    b_paid = event("payment.succeeded", "2026-03-05T16:00:00Z", subscription={"id": "sub_9"},
                   invoice={**INVOICE, "id": "in_b", "status": "paid"})
    a_paid = event("payment.succeeded", "2026-03-12T16:00:00Z", subscription={"id": "sub_9"},
                   invoice={**INVOICE, "id": "in_a", "status": "paid"})
    results = simulate([a, b, b_paid, a_paid], playbook)
    reminders = [(r.params["properties"]["invoice_id"], r.step, r.due_at, r.status, r.cancelled_by)
                 for r in results if r.rule == "invoice-reminder"]
    assert reminders == [
        ("in_a", "3d", "2026-03-07T09:00:00Z", "due", None),
        ("in_a", "0d", "2026-03-10T09:00:00Z", "due", None),
        ("in_a", "-3d", "2026-03-13T09:00:00Z", "cancelled", a_paid.id),
        ("in_b", "3d", "2026-03-17T09:00:00Z", "cancelled", b_paid.id),
        ("in_b", "0d", "2026-03-20T09:00:00Z", "cancelled", b_paid.id),
        ("in_b", "-3d", "2026-03-23T09:00:00Z", "cancelled", b_paid.id),
    ]
    automatic = event("invoice.created", "2026-02-20T12:00:00Z",
                      invoice={**INVOICE, "id": "in_c", "due_at": "2026-03-10T00:00:00Z",
                               "collection_method": "charge_automatically"})
    assert [r for r in simulate([automatic], playbook) if r.rule == "invoice-reminder"] == []


def test_an_invoice_issued_two_days_before_due_skips_the_passed_reminder_with_the_reason(playbook):
    late = event("invoice.created", "2026-03-08T12:00:00Z", subscription={"id": "sub_9"},
                 invoice={**INVOICE, "id": "in_a", "due_at": "2026-03-10T00:00:00Z"})
    rows = [(r.step, r.due_at, r.status, r.reason) for r in simulate([late], playbook) if r.rule == "invoice-reminder"]
    assert rows == [
        ("3d", "2026-03-07T09:00:00Z", "skipped-missed",
         "due 2026-03-07T09:00:00Z, before the event happened at 2026-03-08T12:00:00Z (missed: skip)"),
        ("0d", "2026-03-10T09:00:00Z", "scheduled", None),
        ("-3d", "2026-03-13T09:00:00Z", "scheduled", None)]


def test_a_sign_up_after_the_send_hour_gets_its_day_0_welcome_at_once(playbook):
    # 19:30 in New York (00:30 UTC the next day): the 09:00 send hour has passed that day
    late = event("subscription.created", "2026-03-03T00:30:00Z", timezone="America/New_York",
                 subscription=subscription(period_end="2027-03-03T00:30:00Z"))
    early = event("subscription.created", "2026-03-02T12:00:00Z", customer="cus_2", email="bo@example.com",
                  timezone="America/New_York", subscription=subscription("sub_2", period_end="2027-03-02T12:00:00Z"))
    results = simulate([late, early], playbook)
    welcome = [(r.subject, r.step, r.due_at, r.reason) for r in results if r.rule == "welcome-sequence"]
    assert welcome == [
        ("sub_2", "welcome-1", "2026-03-02T14:00:00Z", None),  # 07:00 local: at 09:00 EST that day
        ("sub_1", "welcome-1", "2026-03-03T00:30:00Z",
         "send time 2026-03-02T14:00:00Z had passed when the event happened: sent at once"),
        ("sub_2", "welcome-2", "2026-03-04T14:00:00Z", None),
        ("sub_1", "welcome-2", "2026-03-04T14:00:00Z", None),   # day 2 counts from the local day of sign-up
        ("sub_2", "welcome-3", "2026-03-07T14:00:00Z", None),
        ("sub_1", "welcome-3", "2026-03-07T14:00:00Z", None),
    ]


def test_importing_six_months_of_history_in_november_sends_nothing_and_says_why(playbook):
    history = [
        event("subscription.created", "2026-01-05T10:00:00Z", subscription=subscription(
            period_end="2027-01-05T10:00:00Z", interval="year")),
        _failed("2026-02-05T10:00:00Z"),
        _paid("2026-02-09T10:00:00Z"),
        _failed("2026-04-05T10:00:00Z", "in_2"),
        _paid("2026-04-06T10:00:00Z", "in_2"),
        event("subscription.changed", "2026-06-20T10:00:00Z", subscription=subscription(
            period_end="2027-01-05T10:00:00Z", interval="year", quantity=2)),
    ]
    results = simulate(history, playbook, now=_time("2026-11-15T08:00:00Z"))
    sent_now = [r for r in results if r.status == "due"]
    assert sent_now == []  # no stale "Payment Failed" / "Payment Recovered"
    historic = [r for r in results if r.status == "skipped-historic"]
    assert {r.rule for r in historic} >= {"payment-failed-notify", "payment-recovered-thanks", "welcome-sequence"}
    assert historic[0].reason.startswith("the event is from 2026-01-05T10:00:00Z, more than missed_horizon (1d) "
                                         "before it was planned at 2026-11-15T08:00:00Z")
    # what is still ahead is planned as usual: the renewal reminders of January 2027
    assert [(r.step, r.due_at) for r in results if r.rule == "renewal-reminder" and r.status == "scheduled"] == [
        ("30d", "2026-12-06T09:00:00Z"), ("14d", "2026-12-22T09:00:00Z"), ("7d", "2026-12-29T09:00:00Z"),
        ("1d", "2027-01-04T09:00:00Z")]


def _time(text: str):
    from hub.kernel.values import parse_time

    return parse_time(text)


def test_the_marketing_cap_suppresses_a_second_message_within_16_hours_transactional_exempt(playbook):
    created = event("subscription.created", "2026-03-02T10:00:00Z", subscription=subscription(
        period_end="2027-03-02T10:00:00Z"))
    usage = event("usage.recorded", "2026-03-02T20:00:00Z", subscription={"id": "sub_1"},
                  usage={"metric": "api_calls", "quantity": 8000, "limit": 10000})
    failed = _failed("2026-03-02T20:30:00Z")
    results = simulate([created, usage, failed], playbook)
    [upsell] = [r for r in results if r.rule == "upsell-usage"]
    assert (upsell.due_at, upsell.status, upsell.reason) == (
        "2026-03-02T20:00:00Z", "capped",
        "capped: at most one marketing message per 16h; welcome-sequence due 2026-03-02T10:00:00Z is within it")
    [notice] = [r for r in results if r.rule == "payment-failed-notify"]
    assert notice.status == "due"  # transactional: not capped
    later = event("usage.recorded", "2026-03-03T02:01:00Z", subscription={"id": "sub_1"},
                  usage={"metric": "api_calls", "quantity": 8000, "limit": 10000})
    [upsell] = [r for r in simulate([created, later], playbook) if r.rule == "upsell-usage"]
    assert upsell.status == "scheduled" and upsell.due_at == "2026-03-03T08:00:00Z"  # 16h passed; quiet hours in UTC


@pytest.mark.parametrize("at, delayed_to, local", [
    ("2026-03-08T04:30:00Z", "2026-03-08T12:00:00Z", "23:30"),   # 23:30 EST on Mar 7 -> 08:00 EDT on Mar 8
    ("2026-11-01T03:30:00Z", "2026-11-01T13:00:00Z", "23:30"),   # 23:30 EDT on Oct 31 -> 08:00 EST on Nov 1
    ("2026-03-08T06:30:00Z", "2026-03-08T12:00:00Z", "01:30"),   # 01:30 EST, the night the clocks move forward
])
def test_quiet_hours_in_the_subscribers_zone_across_dst(playbook, at, delayed_to, local):
    usage = event("usage.recorded", at, timezone="America/New_York", subscription={"id": "sub_1"},
                  usage={"metric": "api_calls", "quantity": 8000, "limit": 10000})
    [upsell] = [r for r in simulate([usage], playbook) if r.rule == "upsell-usage"]
    assert upsell.due_at == delayed_to and upsell.delayed
    assert upsell.reason == (f"quiet-hours-delayed: {local} America/New_York is within quiet hours 21:00-08:00; "
                             f"moved from {at}")
    failed = _failed(at, timezone="America/New_York")
    [notice] = [r for r in simulate([failed], playbook) if r.rule == "payment-failed-notify"]
    assert notice.due_at == at  # quiet hours cover vars.quiet_hours.channels (marketing) only
