"""Segment sync by difference: entering and leaving a segment makes exactly the list and tag changes
expected, each member's outcome recorded; a second sync with nothing changed sends nothing;
reconcile finds what failed and repairs it."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import responses
from click.testing import CliRunner

from hub.cli import cli
from hub.kernel.values import rfc3339
from hub.segments.sweep import recompute_all
from hub.store import Action, Attempt, utcnow
from tests.helpers import drain, rows
from tests.subscribers.support import ev, feed, rules_dir, sub, who

KLAVIYO = "https://klaviyo.test"
LIST_CALLS = re.compile(r"/api/lists/KL1/relationships/profiles$")


@pytest.fixture
def hub(make_hub, tmp_path):
    return make_hub(HUB_RULES_PATH=rules_dir(tmp_path))


def ago(**delta) -> str:
    return rfc3339(utcnow() - timedelta(**delta))


def klaviyo_api(list_status: int = 204) -> None:
    responses.get(f"{KLAVIYO}/api/profiles", json={"data": [{"id": "01PROFILE"}]})
    responses.post(f"{KLAVIYO}/api/profile-import", json={"data": {"id": "01PROFILE"}}, status=201)
    responses.post(f"{KLAVIYO}/api/lists/KL1/relationships/profiles", status=list_status)
    responses.delete(f"{KLAVIYO}/api/lists/KL1/relationships/profiles", status=204)


def list_calls() -> list[tuple[str, list[str]]]:
    return [(c.request.method, [d["id"] for d in json.loads(c.request.body)["data"]])
            for c in responses.calls if LIST_CALLS.search(c.request.url)]


def sync_actions(hub) -> list[tuple[str, str, dict]]:
    return [(a.connector, a.name, a.params) for a in rows(hub, Action, Action.rule_id == "segment-sync")]


@responses.activate
def test_entering_and_leaving_a_segment_sends_exactly_the_changes(hub):
    klaviyo_api()
    vip = who("stripe", "cus_V", "vi@x.com")
    feed(hub, ev("subscription.created", ago(days=3), subscriber=vip, subscription=sub("sub_V", "active", 12000)))
    assert sorted(sync_actions(hub)) == sorted([
        ("klaviyo", "add_to_list", {"list_id": "KL1"}),
        ("activecampaign", "add_tag", {"tag": "hub-vip"}),
        ("klaviyo", "upsert_profile", {"properties": {"hub_vip": True, "hub_tier": "bronze"}}),
    ])
    drain(hub)
    assert list_calls() == [("POST", ["01PROFILE"])]
    imports = [json.loads(c.request.body) for c in responses.calls if c.request.url.endswith("/profile-import")]
    assert imports[-1]["data"]["attributes"]["properties"] == {"hub_vip": True, "hub_tier": "bronze"}
    assert imports[-1]["data"]["attributes"]["email"] == "vi@x.com"
    # ActiveCampaign has no token here: its action ran dry and recorded the request it would send
    (ac,) = [a for a in rows(hub, Action, Action.rule_id == "segment-sync") if a.connector == "activecampaign"]
    assert ac.status == "dry_run" and ac.dry_run
    assert {a.status for a in rows(hub, Action, Action.rule_id == "segment-sync")} == {"done", "dry_run"}  # Klaviyo sent, ActiveCampaign dry

    # nothing changed: another event and a full recompute send nothing
    calls = len(responses.calls)
    feed(hub, ev("message.delivered", ago(days=1), "klaviyo", subscriber={"email": "vi@x.com"}))
    assert recompute_all(hub)["actions"] == 0
    drain(hub)
    assert len(responses.calls) == calls and len(sync_actions(hub)) == 3

    # a downgrade takes the subscriber out of the segment: removed from the list, untagged
    feed(hub, ev("subscription.changed", ago(hours=1), subscriber=vip, subscription=sub("sub_V", "active", 5000)))
    new = sync_actions(hub)[3:]
    assert sorted(new, key=str) == sorted([
        ("klaviyo", "remove_from_list", {"list_id": "KL1"}),
        ("activecampaign", "remove_tag", {"tag": "hub-vip"}),
        ("klaviyo", "upsert_profile", {"properties": {"hub_vip": False}}),
    ], key=str)
    drain(hub)
    assert list_calls() == [("POST", ["01PROFILE"]), ("DELETE", ["01PROFILE"])]


@responses.activate
def test_each_member_has_its_own_outcome_and_reconcile_repairs_failures(hub):
    klaviyo_api(list_status=400)  # Klaviyo refuses the list update: a permanent failure
    feed(hub, ev("subscription.created", ago(days=3), subscriber=who("stripe", "cus_1", "one@x.com"),
                 subscription=sub("sub_1", "active", 20000)),
         ev("subscription.created", ago(days=3), subscriber=who("stripe", "cus_2", "two@x.com"),
            subscription=sub("sub_2", "active", 30000)))
    drain(hub)
    adds = [a for a in rows(hub, Action, Action.name == "add_to_list", Action.connector == "klaviyo")]
    assert len(adds) == 2 and {a.status for a in adds} == {"failed"}
    assert all(len(rows(hub, Attempt, Attempt.action_id == a.id)) == 1 for a in adds)

    # reconcile reads the list from Klaviyo: nobody is on it
    members = responses.get(f"{KLAVIYO}/api/lists/KL1/profiles", json={"data": [], "links": {"next": None}})
    report = CliRunner().invoke(cli, ["segments", "reconcile", "--json"])
    assert report.exit_code == 1
    drift = json.loads(report.stdout)["drift"]
    assert sorted((d["email"], d["target"], d["kind"]) for d in drift) == [
        ("one@x.com", "klaviyo:list:KL1", "missing"), ("two@x.com", "klaviyo:list:KL1", "missing")]

    responses.replace(responses.POST, f"{KLAVIYO}/api/lists/KL1/relationships/profiles", status=204)
    repaired = CliRunner().invoke(cli, ["segments", "reconcile", "--repair"])
    assert repaired.exit_code == 0 and "2 actions planned" in repaired.output
    drain(hub)
    responses.replace(responses.GET, members.url, json={"data": [
        {"type": "profile", "id": "01A", "attributes": {"email": "one@x.com"}},
        {"type": "profile", "id": "01B", "attributes": {"email": "two@x.com"}}], "links": {"next": None}})
    clean = json.loads(CliRunner().invoke(cli, ["segments", "reconcile", "--json"]).stdout)
    assert clean["drift"] == [] and clean["in_sync"] == clean["checked"]
