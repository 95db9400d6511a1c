"""Splits and goals: each recipient gets one variant deterministically, recorded on every action;
a goal event in the window converts the sent step; `hub rules report RULE` shows sends, conversions
and the conversion rate per variant. On a running hub (PostgreSQL, Redis, dry-run delivery)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from hub.cli.rules import report, rules
from hub.ingest.pipeline import record_events
from hub.kernel.values import rfc3339
from hub.rules import load_rules
from hub.store import Action, utcnow
from tests.helpers import drain
from tests.rules.events import event, subscription

SPLIT = """\
rules:
  - id: renewal-nudge
    on: [subscription.created]
    split: {short: 50, long: 50}
    goal: subscription.renewed within 14d
    actions:
      - klaviyo.track_event:
          metric: "Renewal Nudge {{ variant }}"
"""


def test_a_split_assigns_each_subscriber_one_variant_and_the_report_counts_goal_conversions(make_hub, tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "split.yaml").write_text(SPLIT)
    hub = make_hub(HUB_RULES_PATH=str(tmp_path / "rules"), HUB_KLAVIYO_API_KEY=None)  # Klaviyo runs dry
    start = utcnow() - timedelta(minutes=5)
    people = [f"p{n}" for n in range(12)]
    created = [event("subscription.created", rfc3339(start), customer=f"cus_{p}", email=f"{p}@example.com",
                     subscription=subscription(f"sub_{p}")) for p in people]
    with hub.store.session() as s:
        record_events(hub, s, created)
    drain(hub)  # dry-run delivery: every nudge is sent (status done)
    with hub.store.session() as s:
        sent = {row.subject: (row.variant, row.params["metric"], row.status, row.subscriber_id)
                for row in s.execute(select(Action)).scalars()}
    ruleset = load_rules([tmp_path / "rules"], environ={})
    rule = ruleset.by_id("renewal-nudge")
    for p in people:  # the documented, deterministic choice, recorded on the action and seen by templates
        variant, metric, status, subscriber_id = sent[f"sub_{p}"]
        assert variant == rule.variant_for(str(subscriber_id)) and metric == f"Renewal Nudge {variant}"
        assert status == "dry_run"  # Klaviyo has no key here: recorded, not sent
    assert {v for v, *_ in sent.values()} == {"short", "long"}

    # renewals: the first half within 14 days of the nudge, one of them twice; the last one after 14 days
    renewed = [event("subscription.renewed", rfc3339(start + timedelta(days=3)), customer=f"cus_{p}",
                     email=f"{p}@example.com", subscription=subscription(f"sub_{p}")) for p in people[:6]]
    renewed.append(event("subscription.renewed", rfc3339(start + timedelta(days=4)), customer="cus_p0",
                         email="p0@example.com", subscription=subscription("sub_p0")))
    renewed.append(event("subscription.renewed", rfc3339(start + timedelta(days=15)), customer="cus_p11",
                         email="p11@example.com", subscription=subscription("sub_p11")))
    with hub.store.session() as s:
        record_events(hub, s, renewed)
    expected = {}
    for n, p in enumerate(people):
        variant = sent[f"sub_{p}"][0]
        v = expected.setdefault(variant, {"variant": variant, "planned": 0, "sent": 0, "converted": 0})
        v["planned"] += 1
        v["sent"] += 1
        v["converted"] += 1 if n < 6 else 0
    for v in expected.values():
        v["conversion_rate"] = round(v["converted"] / v["sent"], 4)
    result = CliRunner().invoke(report, ["renewal-nudge", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"rule": "renewal-nudge", "goal": "subscription.renewed",
                                         "variants": [expected["long"], expected["short"]]}
    table = CliRunner().invoke(report, ["renewal-nudge"]).output.splitlines()
    assert table[0] == "rule renewal-nudge  goal: subscription.renewed"
    assert table[1].split() == ["variant", "planned", "sent", "converted", "rate"]
    assert CliRunner().invoke(report, ["nope"]).exit_code == 1


def test_a_split_or_goal_that_cannot_work_is_refused_with_its_line(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text(SPLIT.replace("{short: 50, long: 50}", "{short: 50}")
                                       .replace("subscription.renewed within 14d", "subscription.renew within 2 weeks"))
    result = CliRunner().invoke(rules, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[:2] == [
        f"{tmp_path / 'bad.yaml'}:4:12: 'split' names two or more variants with positive whole weights, "
        "e.g. {a: 50, b: 50} (got {'short': 50})",
        f"{tmp_path / 'bad.yaml'}:5:11: 'goal' is '<event type> within <duration>', e.g. subscription.renewed "
        "within 14d (got 'subscription.renew within 2 weeks')"]
