"""`hub post` signs like the provider and reaches a running hub; `hub config` documents and checks."""

from __future__ import annotations

import threading

from click.testing import CliRunner
from werkzeug.serving import make_server

from hub.cli import cli
from hub.store import Delivery
from tests.conftest import FIXTURES
from tests.helpers import count


def test_hub_post_sends_a_verified_webhook(hub, monkeypatch):
    from hub.web import create_app

    server = make_server("127.0.0.1", 0, create_app(hub), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HUB_STRIPE_WEBHOOK_SECRET", "whsec_test_secret")
        result = CliRunner().invoke(cli, ["post", "stripe", str(FIXTURES / "stripe" / "invoice.payment_failed.json"),
                                          "--url", f"http://127.0.0.1:{server.server_port}"])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1].startswith("200")
        assert count(hub, Delivery) == 1
        # signed with another secret than the hub's: refused, and the command says so
        monkeypatch.setenv("HUB_STRIPE_WEBHOOK_SECRET", "whsec_wrong")
        other = CliRunner().invoke(cli, ["post", "stripe", str(FIXTURES / "stripe" / "invoice.payment_failed.json"),
                                         "--url", f"http://127.0.0.1:{server.server_port}"])
        assert other.exit_code == 1 and other.output.splitlines()[-1].startswith("401")
    finally:
        server.shutdown()


def test_hub_post_without_the_secret_names_the_setting():
    result = CliRunner().invoke(cli, ["post", "stripe", str(FIXTURES / "stripe" / "invoice.payment_failed.json")])
    assert result.exit_code != 0
    assert "HUB_STRIPE_WEBHOOK_SECRET" in result.output


def test_hub_config_masks_secrets(monkeypatch):
    monkeypatch.setenv("HUB_STRIPE_WEBHOOK_SECRET", "whsec_supersecret")
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0
    assert "supersecret" not in result.output and '"HUB_STRIPE_WEBHOOK_SECRET": "***"' in result.output


def test_readme_configuration_table_is_current():
    from hub.config import markdown_table
    from tests.conftest import ROOT

    assert markdown_table() in (ROOT / "README.md").read_text()


def test_every_inbound_connector_can_sign_a_request_the_hub_accepts(make_hub):
    """`hub post` works for every connector: what sign_request produces passes verify."""
    import connectors
    from connectors.base import InboundRequest

    hub = make_hub(HUB_SHOPIFY_WEBHOOK_SECRET="shp", HUB_CHARGEBEE_WEBHOOK_USERNAME="u",
                   HUB_CHARGEBEE_WEBHOOK_PASSWORD="p", HUB_HUBSPOT_CLIENT_SECRET="hs",
                   HUB_KLAVIYO_WEBHOOK_SECRET="kl", HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN="tok")
    for name, connector in connectors.REGISTRY.items():
        if not connector.receives:
            continue
        body = b'{"id": "evt_1"}'
        url, headers = connector.sign_request(body, hub.settings, f"http://hub.test/webhooks/{name}")
        token = url.rsplit("/", 1)[1] if not url.endswith(f"/webhooks/{name}") else None
        request = InboundRequest("POST", url, {k.lower(): v for k, v in headers.items()}, body, token=token)
        connector.verify(request, hub.settings)  # raises VerificationError if the two disagree


def test_normalize_then_import_backfills_once(hub, tmp_path):
    """`hub normalize` output fed to `hub import` records the events and plans their actions; importing
    the same file again records nothing and plans nothing (a replay never sends twice)."""
    from hub.store import Action, Event

    normalized = CliRunner().invoke(
        cli, ["normalize", "stripe", str(FIXTURES / "stripe" / "invoice.payment_failed.json")])
    assert normalized.exit_code == 0, normalized.output
    events = tmp_path / "events.jsonl"
    events.write_text(normalized.stdout)
    first = CliRunner().invoke(cli, ["import", str(events)])
    assert first.exit_code == 0, first.output
    planned = count(hub, Action)
    assert count(hub, Event) == 1 and planned >= 1
    # the fixture's failure is from January 2026: history, so its steps are recorded, never sent
    assert first.stdout.startswith("imported 1 events, 0 already present; ")
    assert f"0 new actions planned, {planned} skipped ({planned} skipped-historic)" in first.output
    again = CliRunner().invoke(cli, ["import", str(events)])
    assert again.exit_code == 0, again.output
    assert again.stdout == "imported 0 events, 1 already present; 0 new actions planned, 0 skipped\n"
    assert count(hub, Event) == 1 and count(hub, Action) == planned


def test_import_names_the_line_that_is_not_an_event(hub, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "payment.failed"}\n')
    result = CliRunner().invoke(cli, ["import", str(bad)])
    assert result.exit_code != 0 and f"{bad}:1: not a canonical event" in result.output
