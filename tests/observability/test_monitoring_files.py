"""The shipped Grafana dashboard and Prometheus alerting rules only use metrics /metrics exposes (a
renamed metric would otherwise leave an empty panel or an alert that can never fire)."""

from __future__ import annotations

import json
import re

import yaml

from tests.conftest import ROOT

MONITORING = ROOT / "docs" / "monitoring"


def _exposed(client) -> set[str]:
    text = client.get("/metrics").get_data(as_text=True)
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            names |= {name, f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def _referenced(exprs: list[str]) -> set[str]:
    return {m for e in exprs for m in re.findall(r"\bhub_[a-z_]+", e)}


def test_the_alerting_rules_use_only_exposed_metrics(client):
    rules = yaml.safe_load((MONITORING / "alerting-rules.yml").read_text())
    exprs = [r["expr"] for group in rules["groups"] for r in group["rules"]]
    assert len(exprs) >= 8 and all(r.get("annotations", {}).get("summary") for g in rules["groups"]
                                   for r in g["rules"])
    assert _referenced(exprs) - _exposed(client) == set()


def test_the_dashboard_uses_only_exposed_metrics(client):
    dashboard = json.loads((MONITORING / "grafana" / "hub-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = _referenced(exprs)
    assert {"hub_webhook_ack_seconds_bucket", "hub_actions_total", "hub_backlog_oldest_age_seconds",
            "hub_circuit_state"} <= used
    assert used - _exposed(client) == set()
