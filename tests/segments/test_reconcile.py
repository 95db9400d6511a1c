"""`hub segments reconcile` reads list and tag members from Klaviyo, HubSpot and ActiveCampaign (every
page) and compares them with the segment: a member the tool lost is ``missing``, a known ex-member
the tool still holds is ``extra``, a stranger is left alone; --repair plans exactly the fixes.
A tool in dry run is compared with the hub's record of confirmed syncs instead."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Callable

import pytest
import responses
from click.testing import CliRunner
from responses import matchers
from sqlalchemy import update

from hub.cli import cli
from hub.kernel.values import rfc3339
from hub.store import Action, utcnow
from hub.store.models import ActionStatus
from tests.helpers import drain, rows
from tests.subscribers.support import ev, feed, rules_dir, sub, who

KLAVIYO = "https://klaviyo.test"
HUBSPOT = "https://hubspot.test"
AC = "https://ac.test"

RULES = """
segments:
  custom:
    - id: vip
      when: "mrr_minor >= 10000"
      sync:
        {tool}: {{{kind}: "{ref}"}}
"""


def ago(**delta) -> str:
    return rfc3339(utcnow() - timedelta(**delta))


def profile(email: str) -> dict:
    return {"type": "profile", "id": email.upper(), "attributes": {"email": email}}


def klaviyo_pages() -> None:
    """Two pages: the second only through links.next (page[cursor])."""
    base = f"{KLAVIYO}/api/lists/KL1/profiles"
    responses.get(base, match=[matchers.query_param_matcher({"fields[profile]": "email", "page[size]": "100"})],
                  json={"data": [profile("Kept@x.com")], "links": {"next": f"{base}?page%5Bcursor%5D=P2"}})
    responses.get(base, match=[matchers.query_param_matcher({"page[cursor]": "P2"})],
                  json={"data": [profile("ex@x.com"), profile("stranger@x.com")], "links": {"next": None}})


def hubspot_pages() -> None:
    """Memberships in two pages (paging.next.after), then record ids -> e-mails with batch/read."""
    base = f"{HUBSPOT}/crm/v3/lists/77/memberships"
    responses.get(base, match=[matchers.query_param_matcher({"limit": "250"})],
                  json={"results": [{"recordId": "1"}], "paging": {"next": {"after": "A1"}}})
    responses.get(base, match=[matchers.query_param_matcher({"limit": "250", "after": "A1"})],
                  json={"results": [{"recordId": "2"}, {"recordId": "3"}]})
    responses.post(f"{HUBSPOT}/crm/v3/objects/contacts/batch/read",
                   match=[matchers.json_params_matcher({"properties": ["email"],
                                                        "inputs": [{"id": "1"}, {"id": "2"}, {"id": "3"}]})],
                   json={"status": "COMPLETE", "results": [
                       {"id": "1", "properties": {"email": "kept@x.com"}},
                       {"id": "2", "properties": {"email": "ex@x.com"}},
                       {"id": "3", "properties": {"email": "stranger@x.com"}}]})


def ac_pages(filters: dict[str, str]) -> None:
    """Offset pages until meta.total (a string, as ActiveCampaign sends it)."""
    base = f"{AC}/api/3/contacts"
    responses.get(base, match=[matchers.query_param_matcher({**filters, "limit": "100", "offset": "0"})],
                  json={"contacts": [{"email": "kept@x.com"}, {"email": "ex@x.com"}], "meta": {"total": "3"}})
    responses.get(base, match=[matchers.query_param_matcher({**filters, "limit": "100", "offset": "2"})],
                  json={"contacts": [{"email": "stranger@x.com"}], "meta": {"total": "3"}})


def ac_tag_pages() -> None:
    responses.get(f"{AC}/api/3/tags", match=[matchers.query_param_matcher({"search": "hub-vip"})],
                  json={"tags": [{"id": "90", "tag": "hub-vip-old"}, {"id": "9", "tag": "hub-vip"}]})
    ac_pages({"tagid": "9"})


TOOLS: dict[str, tuple[str, str, str, Callable[[], None], tuple[str, str], dict]] = {
    # case: (tool, kind, ref, mocked reads, (add action, remove action), action params)
    "klaviyo-list": ("klaviyo", "list", "KL1", klaviyo_pages, ("add_to_list", "remove_from_list"),
                     {"list_id": "KL1"}),
    "hubspot-list": ("hubspot", "list", "77", hubspot_pages, ("add_to_list", "remove_from_list"), {"list_id": "77"}),
    "activecampaign-tag": ("activecampaign", "tag", "hub-vip", ac_tag_pages, ("add_tag", "remove_tag"),
                           {"tag": "hub-vip"}),
    "activecampaign-list": ("activecampaign", "list", "5", lambda: ac_pages({"listid": "5", "status": "1"}),
                            ("subscribe_list", "unsubscribe_list"), {"list": "5"}),
}

LIVE = {"HUB_HUBSPOT_ACCESS_TOKEN": "hs-token", "HUB_HUBSPOT_API_URL": HUBSPOT,
        "HUB_ACTIVECAMPAIGN_API_TOKEN": "ac-token", "HUB_ACTIVECAMPAIGN_API_URL": AC}


def populate(hub) -> None:
    """kept@ and lost@ are in the segment, ex@ left it; every sync the hub planned was confirmed."""
    feed(hub, *(ev("subscription.created", ago(days=3), subscriber=who("stripe", f"cus_{n}", f"{n}@x.com"),
                   subscription=sub(f"sub_{n}", "active", 12000)) for n in ("kept", "lost", "ex")))
    feed(hub, ev("subscription.changed", ago(hours=2), subscriber=who("stripe", "cus_ex", "ex@x.com"),
                 subscription=sub("sub_ex", "active", 5000)))
    with hub.store.session() as session:
        session.execute(update(Action).values(status=ActionStatus.DONE))


def sync_actions(hub) -> list[Action]:
    return rows(hub, Action, Action.rule_id == "segment-sync")


@pytest.mark.parametrize("case", list(TOOLS))
@responses.activate
def test_reconcile_reads_the_tool_and_repairs_exactly_the_drift(make_hub, tmp_path, case):
    tool, kind, ref, pages, (add, remove), params = TOOLS[case]
    hub = make_hub(HUB_RULES_PATH=rules_dir(tmp_path, RULES.format(tool=tool, kind=kind, ref=ref)), **LIVE)
    populate(hub)
    before = {a.id for a in sync_actions(hub)}
    pages()
    target = f"{tool}:{kind}:{ref}"

    result = CliRunner().invoke(cli, ["segments", "reconcile", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert sorted((d["email"], d["kind"], d["target"]) for d in report["drift"]) == [
        ("ex@x.com", "extra", target), ("lost@x.com", "missing", target)]
    (method,) = report["targets"]
    assert method == {"target": target, "segment": "vip", "method": "tool", "in_tool": 3, "missing": 1,
                      "extra": 1, "unknown": 1}
    assert report["checked"] == 3 and report["in_sync"] == 1

    text = CliRunner().invoke(cli, ["segments", "reconcile"]).output
    assert f"{target}" in text and "read from the tool: 3 held, 1 missing, 1 extra, 1 not known" in text

    repaired = CliRunner().invoke(cli, ["segments", "reconcile", "--repair"])
    assert repaired.exit_code == 0 and "2 actions planned" in repaired.output
    planned = [a for a in sync_actions(hub) if a.id not in before]
    by_name = sorted((a.connector, a.name, a.params) for a in planned)
    assert by_name == sorted([(tool, add, params), (tool, remove, params)])
    subscribers = {a.name: a.subscriber_id for a in planned}
    lost, ex = (next(d["subscriber_id"] for d in report["drift"] if d["email"] == e) for e in ("lost@x.com", "ex@x.com"))
    assert subscribers == {add: lost, remove: ex}


@responses.activate
def test_a_dry_run_tool_is_compared_with_the_sync_record(make_hub, tmp_path):
    # no Klaviyo key: its actions run dry, so its list cannot be read
    hub = make_hub(HUB_RULES_PATH=rules_dir(tmp_path, RULES.format(tool="klaviyo", kind="list", ref="KL1")),
                   HUB_KLAVIYO_API_KEY=None)
    feed(hub, *(ev("subscription.created", ago(days=3), subscriber=who("stripe", f"cus_{n}", f"{n}@x.com"),
                   subscription=sub(f"sub_{n}", "active", 12000)) for n in ("one", "two")))
    drain(hub)
    assert {a.status for a in sync_actions(hub)} == {"dry_run"}
    with hub.store.session() as session:  # one confirmation is lost
        session.execute(update(Action).where(Action.id == min(a.id for a in sync_actions(hub)))
                        .values(status=ActionStatus.FAILED))

    report = json.loads(CliRunner().invoke(cli, ["segments", "reconcile", "--json"]).stdout)
    assert report["targets"] == [{"target": "klaviyo:list:KL1", "segment": "vip", "method": "record",
                                  "reason": "dry run"}]
    assert [(d["kind"], d["method"]) for d in report["drift"]] == [("failed", "record")]
    assert len(responses.calls) == 0  # nothing was read or sent
