"""One subscriber per person across providers: provider ids first, then e-mail; merges are
recorded and undoable; conflicting identities are listed, never merged."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub.cli import cli
from hub.store import Event, ExternalId, Subscriber, Subscription
from hub.store.subscriber_models import IdentityConflict, Merge
from hub.subscribers import profile
from tests.helpers import count, rows
from tests.subscribers.support import ev, feed, money, rules_dir, sub, who


@pytest.fixture
def hub(make_hub, tmp_path):
    return make_hub(HUB_RULES_PATH=rules_dir(tmp_path))


def live(hub) -> list[Subscriber]:
    return rows(hub, Subscriber, Subscriber.merged_into_id.is_(None))


def test_same_email_at_two_providers_is_one_subscriber(hub):
    feed(hub, ev("subscriber.created", "2026-01-01T00:00:00Z", "stripe", subscriber=who("stripe", "cus_A", "Ann@X.com")),
         ev("subscriber.created", "2026-01-02T00:00:00Z", "chargebee",
            subscriber=who("chargebee", "cb_A", "ann@x.com", first_name="Ann")))
    (ann,) = live(hub)
    assert ann.email == "ann@x.com" and ann.first_name == "Ann"
    assert {(e.provider, e.external_id) for e in rows(hub, ExternalId)} == {("stripe", "cus_A"), ("chargebee", "cb_A")}
    assert count(hub, Merge) == 0  # attached by e-mail, nothing to merge


def test_provider_id_wins_over_email(hub):
    feed(hub, ev("subscriber.created", "2026-01-01T00:00:00Z", subscriber=who("stripe", "cus_A", "ann@x.com")))
    # the same Stripe customer later shows a new address: still the same person, the address is updated
    feed(hub, ev("subscriber.updated", "2026-01-05T00:00:00Z", subscriber=who("stripe", "cus_A", "ann@new.com")))
    (ann,) = live(hub)
    assert ann.email == "ann@new.com"
    with hub.store.session() as s:
        assert profile.show(s, "ann@new.com")["emails"] == ["ann@x.com", "ann@new.com"]


def test_records_proven_one_person_are_merged_and_can_be_unmerged(hub):
    # Chargebee first tells us only a customer id (a subscription event), Stripe knows the e-mail
    feed(hub, ev("subscription.created", "2026-01-01T00:00:00Z", "chargebee",
                 subscriber=who("chargebee", "cb_B"), subscription=sub("cb_sub", "active", 1000)),
         ev("payment.succeeded", "2026-01-01T00:00:00Z", "chargebee", subscriber=who("chargebee", "cb_B"),
            payment={"amount": money(1000), "subscription_id": "cb_sub"}),
         ev("subscriber.created", "2026-01-02T00:00:00Z", "stripe", subscriber=who("stripe", "cus_B", "bo@x.com")),
         ev("subscription.created", "2026-01-02T00:00:00Z", "stripe",
            subscriber=who("stripe", "cus_B"), subscription=sub("sub_B", "active", 2000)))
    assert len(live(hub)) == 2
    # then Chargebee's customer record carries the e-mail: the two records are one person
    feed(hub, ev("subscriber.updated", "2026-01-03T00:00:00Z", "chargebee",
                 subscriber=who("chargebee", "cb_B", "BO@x.com")))
    (bo,) = live(hub)
    (merge,) = rows(hub, Merge)
    assert merge.reason == "same e-mail bo@x.com" and merge.winner_id == bo.id
    assert bo.mrr_minor == 3000 and bo.total_paid_minor == 1000
    assert {s.subscriber_id for s in rows(hub, Subscription)} == {bo.id}
    assert {e.subscriber_id for e in rows(hub, Event, Event.origin == "provider")} == {bo.id}

    result = CliRunner().invoke(cli, ["subscribers", "unmerge", str(merge.id)])
    assert result.exit_code == 0, result.output
    assert len(live(hub)) == 2
    with hub.store.session() as s:
        both = [profile.show(s, merge.winner_id), profile.show(s, merge.loser_id)]
    by_provider = {tuple(p["external_ids"]): p for p in both}
    assert set(by_provider) == {("stripe",), ("chargebee",)}
    assert [p["email"] for p in both] == ["bo@x.com", "bo@x.com"]  # both providers said so; kept apart
    assert by_provider[("stripe",)]["mrr"]["minor"] == 2000
    assert by_provider[("chargebee",)]["mrr"]["minor"] == 1000
    assert by_provider[("chargebee",)]["total_paid"]["minor"] == 1000
    assert rows(hub, Merge)[0].undone_at is not None
    # kept apart from now on: the next Chargebee update with the same e-mail does not merge them again
    feed(hub, ev("subscriber.updated", "2026-01-04T00:00:00Z", "chargebee",
                 subscriber=who("chargebee", "cb_B", "bo@x.com")))
    assert len(live(hub)) == 2 and count(hub, Merge) == 1
    again = CliRunner().invoke(cli, ["subscribers", "unmerge", str(merge.id)])
    assert again.exit_code == 1 and "already undone" in again.output


def test_same_email_with_different_ids_at_one_provider_is_a_conflict(hub):
    feed(hub, ev("subscriber.created", "2026-01-01T00:00:00Z", subscriber=who("stripe", "cus_1", "cy@x.com")),
         ev("subscriber.created", "2026-01-02T00:00:00Z", subscriber=who("stripe", "cus_2", "cy@x.com")))
    assert len(live(hub)) == 2 and count(hub, Merge) == 0
    (conflict,) = rows(hub, IdentityConflict)
    assert "different stripe customer ids (cus_1 vs cus_2)" in conflict.reason
    result = CliRunner().invoke(cli, ["subscribers", "conflicts", "--json"])
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.stdout.splitlines()]  # one object per line
    assert [(c["subscriber_id"], c["other_id"]) for c in listed] == [(conflict.subscriber_id, conflict.other_id)]
    # each provider id keeps landing on its own record
    feed(hub, ev("payment.succeeded", "2026-01-03T00:00:00Z", subscriber=who("stripe", "cus_2"),
                 payment={"amount": money(500)}))
    with hub.store.session() as s:
        second = s.execute(select(ExternalId.subscriber_id).where(ExternalId.external_id == "cus_2")).scalar()
        assert s.get(Subscriber, second).total_paid_minor == 500


def test_show_by_id_or_email_and_api(hub, client):
    feed(hub, ev("subscriber.created", "2026-01-01T00:00:00Z", subscriber=who("stripe", "cus_D", "di@x.com")),
         ev("subscription.created", "2026-01-01T00:00:00Z", subscriber=who("stripe", "cus_D"),
            subscription=sub("sub_D", "active", 1500)),
         ev("subscriber.consent_changed", "2026-01-02T00:00:00Z", "klaviyo",
            subscriber={"email": "di@x.com"}, consent={"channel": "email", "state": "subscribed"}))
    result = CliRunner().invoke(cli, ["subscribers", "show", "DI@x.com", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["subscriptions"][0]["status"] == "active" and shown["mrr"] == {"minor": 1500, "currency": "USD"}
    assert shown["consent"] == {"email": "subscribed"}
    assert shown["lifecycle"] == "subscribers" and shown["segments"] == ["subscribers"]
    assert [t["type"] for t in shown["timeline"]][:1] == ["subscriber.consent_changed"]
    assert "mrr.changed" in {t["type"] for t in shown["timeline"]}

    assert client.get(f"/api/subscribers/{shown['id']}").status_code == 401
    auth = {"Authorization": "Bearer admin-test-token"}
    answer = client.get(f"/api/subscribers/{shown['id']}", headers=auth)
    assert answer.status_code == 200 and answer.get_json()["email"] == "di@x.com"
    assert client.get("/api/subscribers/999999", headers=auth).status_code == 404
