"""Business alerts from YAML: a segment's share with hysteresis, its week-over-week change, and a KPI."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from hub import alerts
from hub.store import Event, utcnow
from hub.store.models import Subscriber
from hub.store.subscriber_models import SegmentMembership
from tests.conftest import ROOT

SHARE = """
alerts:
  business:
    - id: at-risk-high
      segment_share: at-risk
      above: 0.5
      clear_at: 0.3
    - id: at-risk-rising
      segment_share: at-risk
      change: 7d
      above: 0.2
      clear_at: 0.05
"""


@pytest.fixture
def rules(tmp_path):
    (tmp_path / "alerts.yaml").write_text(SHARE)
    return tmp_path


def people(hub, total: int, at_risk: int) -> None:
    now = utcnow()
    with hub.store.session() as s:
        s.execute(delete(SegmentMembership))
        s.execute(delete(Subscriber))
        s.flush()
        subs = [Subscriber(email=f"p{i}@example.com", created_at=now, updated_at=now) for i in range(total)]
        s.add_all(subs)
        s.flush()
        s.add_all(SegmentMembership(subscriber_id=sub.id, segment="at-risk", entered_at=now) for sub in subs[:at_risk])


def states(hub, key: str) -> list[str]:
    with hub.store.session() as s:
        return list(s.execute(select(Event.type).where(Event.subject == key).order_by(Event.recorded_at)).scalars())


def test_a_segment_share_alert_raises_above_its_threshold_and_clears_only_below_the_clear_threshold(make_hub, rules):
    hub = make_hub(HUB_RULES_PATH=str(rules))
    now = utcnow()
    people(hub, 10, 6)
    alerts.evaluate(hub, now)
    assert states(hub, "at-risk-high/at-risk") == ["alert.raised"]
    people(hub, 10, 4)  # 40%: below the threshold, not yet below the clear threshold
    alerts.evaluate(hub, now + timedelta(minutes=1))
    assert states(hub, "at-risk-high/at-risk") == ["alert.raised"]
    people(hub, 10, 2)
    alerts.evaluate(hub, now + timedelta(minutes=2))
    alerts.evaluate(hub, now + timedelta(minutes=3))
    assert states(hub, "at-risk-high/at-risk") == ["alert.raised", "alert.resolved"]


def test_a_week_over_week_rise_raises_once_the_hub_has_a_week_of_history(make_hub, rules):
    hub = make_hub(HUB_RULES_PATH=str(rules))
    start = utcnow() - timedelta(days=8)
    people(hub, 10, 2)
    alerts.evaluate(hub, start)
    people(hub, 10, 3)  # +50% but nothing a week old to compare with yet
    alerts.evaluate(hub, start + timedelta(days=1))
    assert states(hub, "at-risk-rising/at-risk") == []
    alerts.evaluate(hub, start + timedelta(days=7))  # 30% against 20% a week ago: +50%
    [raised] = _events(hub, "at-risk-rising/at-risk")
    assert raised["value"] == pytest.approx(0.5) and raised["kind"] == "business"


def test_the_default_playbook_alerts_load(make_hub):
    config = alerts.load_config([ROOT / "rules"])
    assert {b["id"] for b in config.business} >= {"at-risk-share-up", "dunning-recovery-low"}
    assert config.operational["backlog_age"] == {"raise_at": 900.0, "clear_at": 300.0}


def test_a_kpi_alert_reads_the_current_period_per_currency(make_hub, tmp_path, monkeypatch):
    (tmp_path / "alerts.yaml").write_text("alerts:\n  business:\n    - {id: mrr-low, kpi: mrr, below: 100}\n")
    hub = make_hub(HUB_RULES_PATH=str(tmp_path))
    report = {"from": "x", "to": "y", "interval": "month",
              "per_currency": {"USD": [{"mrr": 50}], "EUR": [{"mrr": 500}]}}
    monkeypatch.setattr("hub.kpis.report", lambda *a, **k: report)
    alerts.evaluate(hub)
    assert states(hub, "mrr-low/USD") == ["alert.raised"] and states(hub, "mrr-low/EUR") == []


def _events(hub, key: str) -> list[dict]:
    with hub.store.session() as s:
        return [e.data["alert"] for e in s.execute(select(Event).where(Event.subject == key)).scalars()]
