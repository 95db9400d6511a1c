"""Validation: `hub rules check` reports every problem as path:line:col, all at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli.rules import rules
from hub.rules import LocatedError, load_rules
from tests.conftest import ROOT

BROKEN = """\
vars:
  days: [3d, 7d]
rules:
  - id: one
    on: [payment.faild]
    when: "payment.attempt >"
    actions:
      - klaviyo.track_event: {properties: {a: 1}}
  - id: one
    on: [subscription.created]
    schedule: {after: event.time, offsets: [3d, soon]}
    actions:
      - klaviyo.track_evnt: {metric: X}
  - id: three
    on: [subscription.created]
    when: "subscripton.status == 'active' and vars.dayz"
    throttel: 30d
    actions:
      - stripe.retry_payment: {invoice_id: 42}
extra: true
"""


def test_check_prints_every_error_with_its_line(tmp_path: Path):
    (tmp_path / "broken.yaml").write_text(BROKEN)
    result = CliRunner().invoke(rules, ["check", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    path = str(tmp_path / "broken.yaml")
    expected = [
        f"{path}:5:10: unknown event type 'payment.faild' (did you mean 'payment.failed'?)",
        f"{path}:6:11: condition does not compile",
        f"{path}:8:30: klaviyo.track_event: metric: missing required parameter",
        f"{path}:11:49: cannot parse duration 'soon'",
        f"{path}:13:9: unknown action 'klaviyo.track_evnt' (did you mean 'klaviyo.track_event'?)",
        f"{path}:9:5: duplicate rule id 'one'",
        f"{path}:16:11: unknown name 'subscripton' (did you mean 'subscription'?)",
        f"{path}:16:11: undefined var 'dayz' (did you mean 'days'?)",
        f"{path}:17:15: unknown key 'throttel' (did you mean 'throttle'?)",
        f"{path}:19:44: stripe.retry_payment: invoice_id: Not a valid string.",
        f"{path}:20:8: unknown top-level key 'extra'",
    ]
    for message in expected:
        assert any(line.startswith(message) for line in lines), (message, lines)
    assert lines[-1] == f"{len(lines) - 1} errors"


def test_check_passes_the_default_playbook_and_accepts_segment_definitions():
    result = CliRunner().invoke(rules, ["check", str(ROOT / "rules")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_segments_and_tiers_keys_belong_to_the_profiles_engine(tmp_path: Path):
    (tmp_path / "segments.yaml").write_text("segments: {custom: []}\ntiers: {gold: 1000}\nloyalty: {points: 1}\n")
    assert load_rules([tmp_path]).rules == []


def test_vars_come_from_the_environment_with_defaults(tmp_path: Path):
    (tmp_path / "vars.yaml").write_text("vars:\n  on: ${HUB_RULES_X:-true}\n  list: ${HUB_LIST}\n"
                                        "  text: 'id-${HUB_RULES_X:-1}'\n")
    loaded = load_rules([tmp_path], environ={"HUB_LIST": "[a, b]", "HUB_RULES_ENV": "HUB_LIST"})
    assert loaded.vars == {"on": True, "list": ["a", "b"], "text": "id-1"}
    with pytest.raises(LocatedError) as caught:
        load_rules([tmp_path], environ={"HUB_RULES_ENV": "HUB_LIST"})
    assert caught.value.errors == [f"{tmp_path / 'vars.yaml'}:3:9: environment variable HUB_LIST is not set "
                                   "(write ${HUB_LIST:-default} to give a default)"]


def test_simulate_prints_one_json_object_per_action(tmp_path: Path):
    from tests.rules.events import event, subscription

    created = event("subscription.created", "2026-02-27T18:30:00Z",
                    subscription=subscription(period_end="2027-02-27T18:30:00Z"))
    (tmp_path / "events.jsonl").write_text(json.dumps(created.to_dict()) + "\n")
    result = CliRunner().invoke(rules, ["simulate", "--events", str(tmp_path / "events.jsonl"),
                                        "--rules", str(ROOT / "rules" / "welcome.yaml"),
                                        "--rules", str(ROOT / "rules" / "vars.yaml")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["rule"], r["step"], r["due_at"]) for r in rows] == [
        ("welcome-sequence", "welcome-1", "2026-02-27T18:30:00Z"),
        ("welcome-sequence", "welcome-2", "2026-03-01T09:00:00Z"),
        ("welcome-sequence", "welcome-3", "2026-03-04T09:00:00Z")]
    assert rows[0]["action"] == "klaviyo.track_event" and rows[0]["cancelled_by"] is None
    assert rows[0]["subject"] == "sub_1" and rows[0]["params"]["metric"] == "Welcome 1"
    # --now plans every event at that moment: the event is then more than missed_horizon (1d) old, and
    # the first two steps are history - shown with the reason, never sent
    late = CliRunner().invoke(rules, ["simulate", "--events", str(tmp_path / "events.jsonl"),
                                      "--rules", str(ROOT / "rules"), "--now", "2026-03-02T00:00:00Z", "--table"])
    assert late.exit_code == 0, late.output
    welcome = [line.split() for line in late.output.splitlines() if "welcome-sequence" in line]
    assert [(w[2], w[5]) for w in welcome] == [("welcome-1", "skipped-historic"), ("welcome-2", "skipped-historic"),
                                               ("welcome-3", "scheduled")]
    assert "more than missed_horizon (1d)" in late.output
    assert "1 events, 8 actions: 3 skipped-historic, 5 scheduled" in late.output  # + the CRM mirror, the reminders


SEGMENTS = """\
segments:
  custom:
    - id: big-spenders
      when: "mrr_minor >= 10000 and tenur_days > 30"
      sync:
        mailchimp: {list: "1"}
    - id: broken
      when: "points >"
    - id: vip
      when: "tier == 'gold'"
      sync:
        klaviyo: {lists: "X"}
tiers:
  - {name: gold}
rules:
  - id: typo
    on: [subscription.created]
    when: "subscription.stauts == 'active' and 'vpi' in subscriber.segments"
    per: invoices
    actions:
      - billing.retry_payment: {invoice_id: "{{ invoice.id }}"}
"""


def test_check_validates_segments_tiers_and_names_in_every_file_with_did_you_mean(tmp_path: Path):
    (tmp_path / "segments.yaml").write_text(SEGMENTS)
    result = CliRunner().invoke(rules, ["check", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    path = str(tmp_path / "segments.yaml")
    assert lines == [
        f"{path}:18:11: unknown field subscription.stauts (did you mean 'status'?) (known fields of subscription "
        "that an event lacks read as empty; see rules/README.md)",
        f"{path}:19:10: a key is subscriber, subscription, invoice or an expression such as \"{{{{ invoice.id }}}}\" "
        "(got 'invoices') (did you mean 'invoice'?)",
        f"{path}:6:20: unknown key 'mailchimp'",                       # a sync target that does not exist
        f"{path}:12:26: unknown key 'lists': Must be one of: list, properties.",
        f"{path}:4:13: segment 'big-spenders': unknown name 'tenur_days' (did you mean 'tenure_days'?)",
        f"{path}:8:13: segment 'broken': unexpected 'end of template'",  # a condition that does not compile
        f"{path}:14:5: min_points: Missing data for required field.",
        "7 errors",
    ]


def test_a_misspelled_segment_name_in_a_rule_is_an_error(tmp_path: Path):
    (tmp_path / "segments.yaml").write_text(SEGMENTS.split("rules:")[0].replace("tenur_days", "tenure_days")
                                            .replace("mailchimp", "klaviyo").replace("lists", "list")
                                            .replace('"points >"', '"points > 1"').replace("{name: gold}",
                                                                                         "{name: gold, min_points: 9}"))
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - id: vip-thanks\n    on: [segment.entered]\n    when: \"'vpi' in subscriber.segments\"\n"
        "    actions:\n      - klaviyo.track_event: {metric: VIP}\n")
    result = CliRunner().invoke(rules, ["check", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[0] == (
        f"{tmp_path / 'rules.yaml'}:2:5: rule vip-thanks: unknown segment 'vpi' (did you mean 'vip'?) "
        "(segments: big-spenders, broken, vip)")
