"""Golden simulations of the default playbook in rules/: exact due times (month ends, leap years,
time zones, DST), cancellation and re-planning, through state and rules as `hub rules simulate`
runs them. Dunning, invoice reminders, caps, quiet hours and history: test_playbook_promises.py."""

from __future__ import annotations

import pytest

from hub.rules import load_rules
from hub.simulate import simulate
from tests.conftest import ROOT
from tests.rules.events import by_rule, event, subscription


@pytest.fixture(scope="module")
def playbook():
    return load_rules([ROOT / "rules"], environ={})


def test_renewal_reminders_before_a_leap_day_at_nine_utc(playbook):
    created = event("subscription.created", "2027-03-01T15:00:00Z",
                    subscription=subscription(period_end="2028-02-29T15:00:00Z"))
    results = simulate([created], playbook)
    assert by_rule(results, "renewal-reminder") == [
        ("30d", "2028-01-30T09:00:00Z", "scheduled"),
        ("14d", "2028-02-15T09:00:00Z", "scheduled"),
        ("7d", "2028-02-22T09:00:00Z", "scheduled"),
        ("1d", "2028-02-28T09:00:00Z", "scheduled"),
    ]
    [first] = [r for r in results if r.rule == "renewal-reminder" and r.step == "30d"]
    assert first.params == {"metric": "Renewal Reminder", "properties": {
        "days_left": 30, "renews_at": "2028-02-29T15:00:00Z", "plan": "Pro",
        "amount": {"minor": 29000, "currency": "USD"}, "subscription_id": "sub_1"}}


def test_renewal_reminders_in_the_subscribers_time_zone_across_dst_and_cancelled_by_a_pause(playbook):
    # renews at midnight New York time on March 31; US clocks move forward on March 8, 2026
    created = event("subscription.created", "2025-03-31T04:00:00Z", timezone="America/New_York",
                    subscription=subscription(period_end="2026-03-31T04:00:00Z"))
    paused = event("subscription.paused", "2026-03-20T12:00:00Z",
                   subscription=subscription(status="paused", period_end="2026-03-31T04:00:00Z"))
    results = simulate([paused, created], playbook)  # input order does not matter: replayed by time
    assert by_rule(results, "renewal-reminder") == [
        ("30d", "2026-02-28T14:00:00Z", "due"),        # Feb 28, 09:00 EST: the month before has 28 days
        ("14d", "2026-03-17T13:00:00Z", "due"),        # 09:00 EDT
        ("7d", "2026-03-24T13:00:00Z", "cancelled"),
        ("1d", "2026-03-30T13:00:00Z", "cancelled"),
    ]
    assert {r.cancelled_by for r in results if r.status == "cancelled" and r.rule == "renewal-reminder"} == {
        paused.id}


def test_a_moved_renewal_date_replans_pending_reminders_instead_of_adding(playbook):
    created = event("subscription.created", "2026-01-10T10:00:00Z",
                    subscription=subscription(period_end="2027-01-10T10:00:00Z"))
    changed = event("subscription.changed", "2026-06-01T10:00:00Z",
                    subscription=subscription(period_end="2027-06-01T10:00:00Z"))
    results = simulate([created, changed], playbook)
    reminders = by_rule(results, "renewal-reminder")
    assert [r for r in reminders if r[2] == "scheduled"] == [
        ("30d", "2027-05-02T09:00:00Z", "scheduled"), ("14d", "2027-05-18T09:00:00Z", "scheduled"),
        ("7d", "2027-05-25T09:00:00Z", "scheduled"), ("1d", "2027-05-31T09:00:00Z", "scheduled")]
    replaced = [r for r in results if r.rule == "renewal-reminder" and r.status == "replanned"]
    assert len(replaced) == 4 and {r.cancelled_by for r in replaced} == {changed.id}


def test_monthly_subscribers_get_no_renewal_reminders_by_default(playbook):
    created = event("subscription.created", "2026-01-10T10:00:00Z",
                    subscription=subscription(period_end="2026-02-10T10:00:00Z", interval="month"))
    assert by_rule(simulate([created], playbook), "renewal-reminder") == []


def test_welcome_sequence_day_0_2_5_stops_at_cancellation(playbook):
    created = event("subscription.created", "2026-02-27T18:30:00Z", subscription=subscription(
        period_end="2027-02-27T18:30:00Z"))
    cancelled = event("subscription.cancelled", "2026-03-02T08:00:00Z", subscription=subscription(
        status="cancelled", period_end="2027-02-27T18:30:00Z"))
    results = simulate([created, cancelled], playbook)
    assert by_rule(results, "welcome-sequence") == [
        ("welcome-1", "2026-02-27T18:30:00Z", "due"),  # after the 09:00 send hour: at once
        ("welcome-2", "2026-03-01T09:00:00Z", "due"),
        ("welcome-3", "2026-03-04T09:00:00Z", "cancelled"),
    ]
    metrics = [r.params["metric"] for r in results if r.rule == "welcome-sequence"]
    assert metrics == ["Welcome 1", "Welcome 2", "Welcome 3"]


def test_trial_ending_reminder_once_even_with_the_providers_own_notice(playbook):
    trial = subscription(status="trialing", trial_end="2026-03-15T00:00:00Z", period_end="2026-03-15T00:00:00Z")
    created = event("subscription.created", "2026-03-01T00:00:00Z", subscription=trial)
    notice = event("subscription.trial_ending", "2026-03-12T00:00:05Z", subscription=trial)
    results = simulate([created, notice], playbook)
    assert by_rule(results, "trial-ending-reminder") == [("3d", "2026-03-12T00:00:00Z", "due")]


def test_upsell_above_70_percent_at_most_once_in_30_days(playbook):
    def usage(time: str, quantity: int):
        return event("usage.recorded", time, usage={"metric": "api_calls", "quantity": quantity, "limit": 10000},
                     subscription={"id": "sub_1"})

    results = simulate([usage("2026-03-01T10:00:00Z", 6000), usage("2026-03-05T10:00:00Z", 7500),
                        usage("2026-03-10T10:00:00Z", 8000), usage("2026-04-10T10:00:00Z", 9000)], playbook)
    upsells = [r for r in results if r.rule == "upsell-usage" and r.status != "throttled"]
    assert [r.due_at for r in upsells] == ["2026-03-05T10:00:00Z", "2026-04-10T10:00:00Z"]
    [throttled] = [r for r in results if r.status == "throttled"]  # recorded with its reason, never sent
    assert (throttled.due_at, throttled.reason) == (
        "2026-03-10T10:00:00Z", "throttled: at most 1 step(s) of upsell-usage per 30d for subscriber already planned")
    assert upsells[0].params["properties"]["usage_ratio"] == 0.75


def test_upgrade_offer_the_day_after_a_renewal_valid_seven_days(playbook):
    renewed = event("subscription.renewed", "2026-05-10T06:00:00Z",
                    subscription=subscription(period_end="2027-05-10T06:00:00Z"))
    [offer] = [r for r in simulate([renewed], playbook) if r.rule == "upgrade-offer-after-renewal"]
    assert offer.due_at == "2026-05-11T09:00:00Z"
    assert offer.params["properties"]["offer_expires_at"] == "2026-05-17T06:00:00Z"


def test_win_back_7_and_30_days_after_cancellation_until_reactivation(playbook):
    cancelled = event("subscription.cancelled", "2026-01-25T20:00:00Z", subscription=subscription(
        status="cancelled", cancel_reason="too_expensive"))
    back = event("subscription.reactivated", "2026-02-10T10:00:00Z", subscription=subscription())
    results = simulate([cancelled, back], playbook)
    assert by_rule(results, "win-back") == [("7d", "2026-02-01T09:00:00Z", "due"),
                                            ("30d", "2026-02-24T09:00:00Z", "cancelled")]
    first = next(r for r in results if r.rule == "win-back")
    assert first.params["properties"] == {"days_since_cancel": 7, "plan": "Pro", "cancel_reason": "too_expensive"}


def test_tier_change_updates_the_profile_and_sends_a_tier_event(playbook):
    changed = event("tier.changed", "2026-04-01T12:00:00Z", tier={"from": "bronze", "to": "silver", "points": 1200})
    results = [r for r in simulate([changed], playbook) if r.event == changed.id]
    by_action = {(r.rule, r.action): r.params for r in results}
    assert by_action[("loyalty-tier-klaviyo", "klaviyo.upsert_profile")] == {
        "email": "ann@example.com", "properties": {"loyalty_tier": "silver", "loyalty_points": 1200}}
    assert by_action[("loyalty-tier-event", "klaviyo.track_event")]["properties"] == {
        "tier": "silver", "previous_tier": "bronze", "points": 1200}
    assert by_action[("loyalty-tier-hubspot", "hubspot.set_properties")]["properties"] == {
        "hub_loyalty_tier": "silver", "hub_loyalty_points": 1200}


def test_one_var_moves_the_mirror_from_hubspot_to_activecampaign():
    created = event("subscription.created", "2026-01-10T10:00:00Z",
                    subscription=subscription(period_end="2027-01-10T10:00:00Z"))
    hubspot = simulate([created], load_rules([ROOT / "rules"], environ={}))
    assert [r.action for r in hubspot if r.rule.startswith("crm-")] == ["hubspot.set_properties"]
    ac = simulate([created], load_rules([ROOT / "rules"], environ={"HUB_PLAYBOOK_CRM": "activecampaign"}))
    mirrored = [(r.action, r.params) for r in ac if r.rule.startswith("crm-")]
    assert mirrored == [
        ("activecampaign.set_field", {"email": "ann@example.com", "field": "SUBSCRIPTION_STATUS", "value": "active"}),
        ("activecampaign.set_field", {"email": "ann@example.com", "field": "RENEWAL_DATE",
                                      "value": "2027-01-10T10:00:00Z"}),
        ("activecampaign.add_tag", {"email": "ann@example.com", "tag": "hub-active"}),
    ]
