"""``hub normalize <connector> FILE`` shows a merchant what a payload becomes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hub.cli import cli
from tests.conftest import FIXTURES


@pytest.mark.parametrize("connector, fixture, expected", [
    ("stripe", "invoice.payment_failed", "payment.failed"),
    ("stripe", "customer.subscription.updated", "subscription.changed"),
    ("chargebee", "payment_failed", "payment.failed"),
    ("chargebee", "subscription_cancellation_scheduled", "subscription.cancellation_scheduled"),
    ("stripe", "invoice.overdue", "invoice.updated"),
    ("stripe", "invoice.finalized", "invoice.created"),
    ("chargebee", "invoice_updated@offline", "invoice.updated"),
])
def test_normalize_prints_canonical_events_as_json_lines(connector: str, fixture: str, expected: str) -> None:
    path = FIXTURES / connector / f"{fixture}.json"
    result = CliRunner().invoke(cli, ["normalize", connector, str(path)])
    assert result.exit_code == 0, result.output
    [line] = result.output.strip().splitlines()
    event = json.loads(line)
    assert event["type"] == expected
    assert event["provider"] == connector
    assert event["providertype"] == json.loads(path.read_text()).get("type", json.loads(path.read_text()).get("event_type"))
    assert event["specversion"] == "1.0"


def test_normalize_reads_stdin_and_reports_unreadable_payloads() -> None:
    result = CliRunner().invoke(cli, ["normalize", "chargebee", "-"], input='{"event_type": "payment_failed"}')
    assert result.exit_code == 1
    assert "cannot normalize" in result.output
