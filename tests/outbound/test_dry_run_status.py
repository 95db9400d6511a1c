"""A dry run (a connector with no credentials) is its own outcome, ``dry_run``, wherever actions
are listed, counted and charted: never ``done``, which means the provider was called."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from hub.cli import cli
from hub.store import Store
from hub.store.migrate import upgrade
from tests.conftest import FIXTURES
from tests.helpers import drain, recent, stripe_headers

BODY = recent((FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes(), "created")  # live, not history


def test_a_dry_run_is_listed_counted_and_charted_as_dry_run(make_hub):
    from hub.web import create_app

    hub = make_hub(HUB_KLAVIYO_API_KEY=None)  # Klaviyo runs dry
    client = create_app(hub).test_client()
    assert client.post("/webhooks/stripe", data=BODY, headers=stripe_headers(BODY)).status_code == 200
    drain(hub)

    table = CliRunner().invoke(cli, ["actions"]).stdout
    assert "klaviyo.track_event" in table and " dry_run " in table and " done " not in table
    assert CliRunner().invoke(cli, ["actions", "--status", "done", "--json"]).stdout == ""
    token = {"Authorization": f"Bearer {hub.settings['HUB_ADMIN_TOKEN']}"}
    [listed] = [a for a in client.get("/api/actions", headers=token).json
                if a["action"] == "klaviyo.track_event" and a["status"] != "scheduled"]  # the notice; reminders wait
    assert listed["status"] == "dry_run" and listed["dry_run"] is True
    chart = client.get("/metrics", headers=token).get_data(as_text=True)
    assert 'hub_actions{connector="klaviyo",status="dry_run"} 1.0' in chart


def test_the_migration_gives_earlier_dry_runs_their_status(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        upgrade(store, "0004_merge_heads")
        with store.engine.begin() as conn:
            for key, status, dry in (("a", "done", True), ("b", "done", False), ("c", "failed", True)):
                conn.execute(text(
                    "INSERT INTO actions (key, rule_id, connector, name, params, due_at, status, attempts, "
                    "dispatch_seq, dry_run, created_at, updated_at) VALUES (:key, 'r', 'klaviyo', 'track_event', "
                    "'{}', CURRENT_TIMESTAMP, :status, 1, 0, :dry, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                    {"key": key, "status": status, "dry": dry})
        upgrade(store)
        with store.engine.connect() as conn:
            statuses = dict(conn.execute(text("SELECT key, status FROM actions")).all())
        assert statuses == {"a": "dry_run", "b": "done", "c": "failed"}
    finally:
        store.dispose()
