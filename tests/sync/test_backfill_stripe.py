"""hub backfill stripe, end to end against a Stripe list API served on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import connectors
from connectors.stripe import backfill as stripe_backfill
from hub import backfill
from hub.cli import cli
from hub.kernel.errors import PermanentError
from hub.kernel.events import event_id
from hub.runtime import Hub
from hub.store import Action, Attempt, Delivery, Event, Subscriber, Subscription, utcnow
from hub.store.models import ActionStatus
from hub.store.sync_models import BackfillRun
from hub.web import create_app
from tests.fakeproviders import FakeStripe
from tests.helpers import count, drain, rows, stripe_event, stripe_headers
from tests.sync.stripe_history import DAY, paid_invoice, seed


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    yield fake
    fake.close()


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe_backfill, "PAGE_SIZE", 2)  # many pages from a little data


@pytest.fixture
def stripe_hub(make_hub: Callable[..., Hub], stripe: FakeStripe, small_pages: None) -> Hub:
    return make_hub(HUB_STRIPE_API_KEY="sk_test_backfill", HUB_STRIPE_API_URL=stripe.url)


def run(hub: Hub, **kwargs: Any) -> backfill.Counts:
    return backfill.Run(hub, connectors.get("stripe"), **kwargs).start(utcnow() - timedelta(days=90))


def pages_read(fake: FakeStripe) -> list[tuple[str, str | None]]:
    out = []
    for seen in fake.api.requests:
        parts = urlsplit(seen.path)
        out.append((parts.path, parse_qs(parts.query).get("starting_after", [None])[0]))
    return out


def historic_actions_unsent(hub: Hub) -> None:
    """Every action planned for an event older than the horizon is recorded as history (the planner's
    skipped-historic, or cancelled as historic by the backfill), never sent."""
    horizon = backfill.horizon_start(hub)
    with hub.store.session() as s:
        old = s.execute(select(Action.status, Action.cancelled_by, Action.id).join(Event, Event.id == Action.event_id)
                        .where(Event.time < horizon)).all()
        sent = s.execute(select(Attempt.id).join(Action).join(Event, Event.id == Action.event_id)
                         .where(Event.time < horizon)).all()
    assert old, "the playbook plans something for this history"
    assert {(status, by) for status, by, _ in old} <= {(ActionStatus.CANCELLED, backfill.HISTORIC),
                                                        (ActionStatus.SUPPRESSED, None)}
    assert sent == []


def test_a_backfill_records_the_history_as_events_and_profiles_and_sends_nothing_older_than_the_horizon(
        stripe_hub: Hub, stripe: FakeStripe) -> None:
    expected = seed(stripe)
    counts = run(stripe_hub)
    assert counts.fetched == expected["records"]
    assert counts.recorded == expected["records"] and counts.present == 0 and counts.failed == 0
    assert counts.skipped > 0 and counts.actions > 0
    assert count(stripe_hub, Subscriber) == expected["subscribers"]
    assert {s.email for s in rows(stripe_hub, Subscriber)} == {f"person{n}@example.com" for n in range(1, 7)}
    subs = {s.external_id: s.status for s in rows(stripe_hub, Subscription)}
    assert len(subs) == expected["subscriptions"] and subs["sub_5"] == "cancelled" and subs["sub_1"] == "active"
    # facts from the event log keep the webhook's event id; list objects keep the object's where it is the key
    types = {(e.provider_event_id, e.type) for e in rows(stripe_hub, Event, Event.origin == "backfill")}
    assert ("evt_paid_1b", "payment.succeeded") not in types and ("in_1b", "payment.succeeded") in types
    assert {("cus_1", "subscriber.created"), ("in_1", "payment.succeeded"), ("sub_5", "subscription.cancelled"),
            ("ch_old", "payment.failed"), ("ch_recent", "payment.failed")} <= types
    assert not any(t == "provider.unmapped" for _, t in types)  # only the mapped types are asked for
    # the recent failure's actions run; everything older is recorded as skipped
    drain(stripe_hub)
    historic_actions_unsent(stripe_hub)
    recent = event_id("stripe", "ch_recent", "payment.failed")
    assert count(stripe_hub, Action, Action.event_id == recent, Action.status != ActionStatus.CANCELLED) > 0
    assert count(stripe_hub, Attempt, Attempt.action_id.in_(select(Action.id).where(Action.event_id == recent))) > 0


def test_a_second_backfill_adds_nothing(stripe_hub: Hub, stripe: FakeStripe) -> None:
    seed(stripe)
    run(stripe_hub)
    before = (count(stripe_hub, Event), count(stripe_hub, Action), count(stripe_hub, Delivery))
    again = run(stripe_hub)
    assert again.recorded == 0 and again.events == 0 and again.present == again.fetched > 0
    assert (count(stripe_hub, Event), count(stripe_hub, Action), count(stripe_hub, Delivery)) == before


def test_a_webhook_of_a_backfilled_fact_records_nothing_new(stripe_hub: Hub, stripe: FakeStripe) -> None:
    seed(stripe)
    now = int(utcnow().timestamp())
    run(stripe_hub)
    client = create_app(stripe_hub).test_client()
    events, actions = count(stripe_hub, Event), count(stripe_hub, Action)
    # the same event id as the log's (Stripe redelivering it) ...
    logged = next(e for e in stripe.events if e["id"] == "evt_fail_2")
    body = json.dumps(logged).encode()
    assert client.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).status_code == 200
    # ... and another event announcing a payment the list endpoint already told (keyed on the invoice)
    late = stripe_event("invoice.payment_succeeded", paid_invoice("in_3", 3, now - 59 * DAY), event_id="evt_late")
    assert client.post("/webhooks/stripe", data=late, headers=stripe_headers(late)).status_code == 200
    drain(stripe_hub)
    assert (count(stripe_hub, Event), count(stripe_hub, Action)) == (events, actions)


def test_an_interrupted_backfill_resumes_after_the_last_recorded_page(stripe_hub: Hub, stripe: FakeStripe) -> None:
    expected = seed(stripe)
    first = run(stripe_hub, max_pages=4)  # the process dies after four pages
    stored = rows(stripe_hub, BackfillRun)[0]
    assert stored.status == "running" and stored.pages == 4 and first.fetched < expected["records"]
    resumed = backfill.Run(stripe_hub, connectors.get("stripe")).resume()
    assert resumed.fetched == expected["records"] and resumed.recorded == expected["records"]
    assert rows(stripe_hub, BackfillRun)[0].status == "done"
    read = pages_read(stripe)
    assert len(read) == len(set(read)), "no page is read twice"
    assert count(stripe_hub, Subscriber) == expected["subscribers"]
    with pytest.raises(backfill.BackfillError, match="no unfinished stripe backfill"):
        backfill.Run(stripe_hub, connectors.get("stripe")).resume()


def test_a_page_the_provider_refuses_stops_the_run_after_the_pages_read_before_it_are_recorded(
        stripe_hub: Hub, stripe: FakeStripe) -> None:
    expected = seed(stripe)
    serve = stripe.api.script
    stripe.api.script = lambda seen, n: (400, {}, b'{"error":{}}', 0.0) if n == 4 else serve(seen, n)
    with pytest.raises(PermanentError, match="400"):  # read ahead of the recording, raised by the run
        run(stripe_hub)
    stored = rows(stripe_hub, BackfillRun)[0]
    assert stored.status == "running" and stored.pages == 4  # the four pages before it are recorded
    stripe.api.script = serve
    resumed = backfill.Run(stripe_hub, connectors.get("stripe")).resume()
    assert resumed.fetched == expected["records"] and resumed.recorded == expected["records"]
    assert count(stripe_hub, Subscriber) == expected["subscribers"]


def test_a_dry_run_counts_and_records_nothing(stripe_hub: Hub, stripe: FakeStripe) -> None:
    expected = seed(stripe)
    counts = run(stripe_hub, dry_run=True)
    assert counts.fetched == counts.recorded == expected["records"]
    assert count(stripe_hub, Event) == count(stripe_hub, Delivery) == count(stripe_hub, BackfillRun) == 0


def test_the_command_prints_plain_progress_lines_and_the_totals(stripe_hub: Hub, stripe: FakeStripe) -> None:
    expected = seed(stripe)
    result = CliRunner().invoke(cli, ["backfill", "stripe", "--since", "90d"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("stripe backfill: ") and "events (1/5) page 1:" in line and line.endswith(" s left")
               for line in lines)  # the first update at once, then one line every few seconds
    assert any(line.startswith("stripe backfill: 100%, done (5/5)") for line in lines)
    assert lines[-1].startswith(f"stripe: read {expected['records']}, recorded {expected['records']} new")
    again = CliRunner().invoke(cli, ["backfill", "stripe", "--since", "90d", "--json"])
    assert json.loads(again.output.splitlines()[-1])["present"] == expected["records"]


@pytest.mark.parametrize("args, message", [
    (["backfill", "webhook"], "no backfill for 'webhook'"),
    (["backfill", "stripe", "--since", "soon"], "cannot parse duration"),
    (["backfill", "stripe", "--from", "yesterday"], "--from"),
    (["backfill", "stripe", "--since", "9d", "--from", "2025-01-01"], "not both"),
    (["backfill", "stripe", "--resume"], "no unfinished stripe backfill"),
])
def test_bad_arguments_get_a_clear_answer(stripe_hub: Hub, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and message in result.output


def test_without_an_api_key_the_backfill_says_which_setting_to_set(make_hub: Callable[..., Hub]) -> None:
    make_hub()
    result = CliRunner().invoke(cli, ["backfill", "stripe"])
    assert result.exit_code == 1 and "set HUB_STRIPE_API_KEY" in result.output
