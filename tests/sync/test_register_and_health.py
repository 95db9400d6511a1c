"""hub connectors register / health: one Stripe endpoint, its secret stored, repairs and gap repair."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connectors.stripe.backfill import mapped_types
from hub import jobs, sync
from hub.cli import cli
from hub.config import load_settings
from hub.runtime import Hub
from hub.store import Action, Event
from hub.store.sync_models import WebhookRegistration
from hub.web import create_app
from tests.fakeproviders import FakeStripe
from tests.helpers import count, drain, rows, stripe_headers
from tests.sync.stripe_history import customer, event, failed_invoice


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    yield fake
    fake.close()


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    return tmp_path / "secrets.env"


@pytest.fixture
def stripe_hub(make_hub: Callable[..., Hub], stripe: FakeStripe, secrets_file: Path) -> Hub:
    return make_hub(HUB_STRIPE_API_KEY="sk_test_register", HUB_STRIPE_API_URL=stripe.url,
                    HUB_SECRETS_FILE=str(secrets_file))


def register(url: str = "https://hub.example.com") -> Any:
    return CliRunner().invoke(cli, ["connectors", "register", "stripe", "--url", url])


def test_register_creates_one_endpoint_with_the_mapped_topics_and_stores_its_secret_unprinted(
        stripe_hub: Hub, stripe: FakeStripe, secrets_file: Path) -> None:
    first = register()
    assert first.exit_code == 0, first.output
    assert "we_1 created -> https://hub.example.com/webhooks/stripe" in first.output
    [endpoint] = stripe.endpoints.values()
    assert endpoint["url"] == "https://hub.example.com/webhooks/stripe"
    assert sorted(endpoint["enabled_events"]) == mapped_types()
    assert "whsec_created_we_1" not in first.output
    assert stat.S_IMODE(os.stat(secrets_file).st_mode) == 0o600
    # the stored secret is what settings read as the connector's secret, unless the environment sets one
    settings = load_settings(environ={"HUB_SECRETS_FILE": str(secrets_file)})
    assert settings["HUB_STRIPE_WEBHOOK_SECRET"] == ["whsec_created_we_1"]
    assert load_settings(environ={"HUB_SECRETS_FILE": str(secrets_file), "HUB_STRIPE_WEBHOOK_SECRET": "whsec_env"}
                         )["HUB_STRIPE_WEBHOOK_SECRET"] == ["whsec_env"]
    # registering again never makes a second endpoint
    again = register()
    assert again.exit_code == 0 and "we_1 unchanged" in again.output
    moved = register("https://new-hub.example.com")
    assert "we_1 updated -> https://new-hub.example.com/webhooks/stripe" in moved.output
    assert list(stripe.endpoints) == ["we_1"]


def test_register_adopts_an_endpoint_already_pointing_at_the_hub(stripe_hub: Hub, stripe: FakeStripe) -> None:
    stripe.endpoints["we_7"] = {"id": "we_7", "url": "https://hub.example.com/webhooks/stripe",
                                "enabled_events": ["invoice.paid"], "status": "enabled"}
    result = register()
    assert "we_7 updated" in result.output and list(stripe.endpoints) == ["we_7"]
    assert sorted(stripe.endpoints["we_7"]["enabled_events"]) == mapped_types()


def test_providers_without_a_registration_api_get_the_manual_steps(stripe_hub: Hub) -> None:
    result = CliRunner().invoke(cli, ["connectors", "register", "chargebee", "--url", "https://hub.example.com"])
    assert result.exit_code == 0
    assert "Webhook URL: https://hub.example.com/webhooks/chargebee" in result.output


def test_register_without_a_url_names_the_parameter(stripe_hub: Hub) -> None:
    result = CliRunner().invoke(cli, ["connectors", "register", "stripe"])
    assert result.exit_code == 2 and "--url" in result.output


@pytest.mark.parametrize("damage, status", [
    (lambda eps: eps["we_1"].update(status="disabled"), "disabled"),
    (lambda eps: eps["we_1"].update(url="https://elsewhere.example.com/hook"), "enabled"),
    (lambda eps: eps.clear(), "missing"),
])
def test_health_finds_a_removed_or_disabled_subscription_alerts_and_re_registers_it(
        stripe_hub: Hub, stripe: FakeStripe, caplog: pytest.LogCaptureFixture,
        damage: Callable[[dict[str, Any]], None], status: str) -> None:
    sync.register(stripe_hub, "stripe", "https://hub.example.com")  # (the CLI would reset the log capture)
    damage(stripe.endpoints)
    with caplog.at_level(logging.ERROR, logger="hub.sync"):
        [report] = sync.health(stripe_hub)
    assert report["subscription"]["status"] == status
    assert any("operational alert: stripe webhook subscription we_1" in r.getMessage() for r in caplog.records)
    [endpoint] = stripe.endpoints.values()
    assert endpoint["status"] == "enabled" and endpoint["url"] == "https://hub.example.com/webhooks/stripe"
    assert rows(stripe_hub, WebhookRegistration)[0].remote_id == endpoint["id"]
    [healthy] = sync.health(stripe_hub)
    assert healthy["subscription"] == {"id": endpoint["id"], "status": "enabled", "url_ok": True}


def test_health_records_exactly_the_events_whose_webhooks_were_dropped_and_the_rules_act_once(
        stripe_hub: Hub, stripe: FakeStripe) -> None:
    now = int(time.time())
    for n in range(1, 6):
        stripe.events.append(event(f"evt_fail_{n}", "invoice.payment_failed",
                                   failed_invoice(f"in_{n}", n, f"ch_{n}", now - 600 * n), now - 600 * n))
    stripe.events.append(event("evt_cus_9", "customer.created", customer(9, now - 60), now - 60))
    web = create_app(stripe_hub).test_client()
    dropped = {"evt_fail_2", "evt_fail_4", "evt_cus_9"}
    for e in stripe.events:
        if e["id"] not in dropped:
            body = json.dumps(e).encode()
            assert web.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).status_code == 200
    drain(stripe_hub)
    notified_before = count(stripe_hub, Action, Action.rule_id == "payment-failed-notify")
    assert notified_before == 3
    result = CliRunner().invoke(cli, ["connectors", "health", "--json"])
    assert result.exit_code == 0, result.output
    report = next(json.loads(line) for line in result.output.splitlines() if '"connector": "stripe"' in line)
    assert report["gaps"]["checked"] == 6 and report["gaps"]["missing"] == 3
    recorded = {e.provider_event_id for e in rows(stripe_hub, Event, Event.provider == "stripe")}
    assert {"ch_2", "ch_4", "cus_9"} <= recorded
    drain(stripe_hub)
    # the rules acted on the repaired failures like on the others: one notice per failure, once
    with stripe_hub.store.session() as s:
        notices = s.execute(select(Action.event_id).where(Action.rule_id == "payment-failed-notify")).scalars().all()
    assert len(notices) == len(set(notices)) == 5
    again = sync.health(stripe_hub)
    assert again[0]["gaps"]["missing"] == 0
    assert count(stripe_hub, Action, Action.rule_id == "payment-failed-notify") == 5


def test_the_scheduler_queues_one_health_check_per_interval(stripe_hub: Hub) -> None:
    assert sync.health_if_due(stripe_hub) is True
    assert sync.health_if_due(stripe_hub) is False  # the interval's lock is taken
    assert jobs.queue(stripe_hub.redis, "ingest").count == 1
