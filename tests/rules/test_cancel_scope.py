"""cancel_on cancels the rule's pending steps for the subscription the cancelling event concerns
(and the subscriber-level ones), not those of the subscriber's other subscriptions; an event about
the subscriber only cancels all of them. Golden simulations with two subscriptions, one paused."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.rules import load_rules
from hub.simulate import SimulatedAction, simulate
from tests.conftest import ROOT
from tests.rules.events import event, subscription


def _steps(results: list[SimulatedAction], rule: str, subject: str) -> list[tuple[str, str, str]]:
    return [(r.step or "", r.due_at, r.status) for r in results if r.rule == rule and r.subject == subject]


def test_pausing_one_subscription_keeps_the_other_subscriptions_renewal_reminders():
    playbook = load_rules([ROOT / "rules"], environ={})
    first = event("subscription.created", "2026-01-10T10:00:00Z",
                  subscription=subscription("sub_1", period_end="2027-01-10T10:00:00Z"))
    second = event("subscription.created", "2026-03-01T10:00:00Z",
                   subscription=subscription("sub_2", period_end="2027-03-01T10:00:00Z"))
    paused = event("subscription.paused", "2026-12-20T10:00:00Z",
                   subscription=subscription("sub_1", status="paused", period_end="2027-01-10T10:00:00Z"))
    results = simulate([first, second, paused], playbook)
    assert _steps(results, "renewal-reminder", "sub_1") == [
        ("30d", "2026-12-11T09:00:00Z", "due"),
        ("14d", "2026-12-27T09:00:00Z", "cancelled"),
        ("7d", "2027-01-03T09:00:00Z", "cancelled"),
        ("1d", "2027-01-09T09:00:00Z", "cancelled"),
    ]
    assert _steps(results, "renewal-reminder", "sub_2") == [
        ("30d", "2027-01-30T09:00:00Z", "scheduled"),
        ("14d", "2027-02-15T09:00:00Z", "scheduled"),
        ("7d", "2027-02-22T09:00:00Z", "scheduled"),
        ("1d", "2027-02-28T09:00:00Z", "scheduled"),
    ]
    assert {r.cancelled_by for r in results if r.status == "cancelled"} == {paused.id}


CHECK_IN = """
rules:
  - id: check-in
    description: Check in a week and a month after a subscription starts or the subscriber signs up.
    on: [subscription.created, subscriber.created]
    schedule: {after: event.time, offsets: [7d, 30d]}
    cancel_on: [subscription.paused, subscriber.consent_changed]
    actions:
      - klaviyo.track_event:
          metric: Check In
"""


@pytest.fixture
def check_in(tmp_path: Path):
    (tmp_path / "check_in.yaml").write_text(CHECK_IN)
    return load_rules([tmp_path], environ={})


def _planned(check_in) -> tuple[list, list[SimulatedAction]]:
    signed_up = event("subscriber.created", "2026-01-01T10:00:00Z")
    events = [signed_up,
              event("subscription.created", "2026-01-02T10:00:00Z", subscription=subscription("sub_1")),
              event("subscription.created", "2026-01-03T10:00:00Z", subscription=subscription("sub_2"))]
    results = simulate(events, check_in)
    subjects = sorted({r.subject for r in results})
    assert len(subjects) == 3 and subjects[:2] == ["sub_1", "sub_2"] and subjects[2].startswith("subscriber:")
    return events, results


def test_an_event_about_a_subscription_cancels_its_steps_and_the_subscribers_not_the_others(check_in):
    events, results = _planned(check_in)
    subscriber_level = next(r.subject for r in results if r.subject.startswith("subscriber:"))
    paused = event("subscription.paused", "2026-01-05T10:00:00Z", subscription=subscription("sub_1", "paused"))
    results = simulate([*events, paused], check_in)
    assert _steps(results, "check-in", "sub_1") == [
        ("7d", "2026-01-09T10:00:00Z", "cancelled"), ("30d", "2026-02-01T10:00:00Z", "cancelled")]
    assert _steps(results, "check-in", subscriber_level) == [
        ("7d", "2026-01-08T10:00:00Z", "cancelled"), ("30d", "2026-01-31T10:00:00Z", "cancelled")]
    assert _steps(results, "check-in", "sub_2") == [
        ("7d", "2026-01-10T10:00:00Z", "scheduled"), ("30d", "2026-02-02T10:00:00Z", "scheduled")]
    assert {r.cancelled_by for r in results if r.status == "cancelled"} == {paused.id}


def test_an_event_about_the_subscriber_only_cancels_all_of_the_subscribers_steps(check_in):
    events, _ = _planned(check_in)
    unsubscribed = event("subscriber.consent_changed", "2026-01-05T10:00:00Z",
                         consent={"channel": "email", "state": "unsubscribed"})
    results = simulate([*events, unsubscribed], check_in)
    assert len(results) == 6
    assert {(r.status, r.cancelled_by) for r in results} == {("cancelled", unsubscribed.id)}
