"""A rules edit is checked when it is saved (a watcher thread), not when the next event arrives;
``/readyz`` and ``hub rules status`` say which rules run and which change was refused."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from click.testing import CliRunner
from werkzeug.serving import make_server

from hub.cli import cli
from tests.mockapi import wait_for

GOOD = """\
rules:
  - id: notify
    on: [payment.failed]
    actions:
      - klaviyo.track_event: {metric: First}
"""
BROKEN = """\
rules:
  - id: other
    on: [payment.failed]
    when: "payment.attempt >"
    actions:
      - klaviyo.track_event: {metric: Second}
"""


def _write(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    stamp = path.stat().st_mtime + bump
    os.utime(path, (stamp, stamp))


def test_a_broken_edit_is_noticed_without_any_event_and_shown_by_readyz_and_rules_status(make_hub, tmp_path,
                                                                                          monkeypatch):
    from hub.web import create_app

    folder = tmp_path / "rules"
    folder.mkdir()
    _write(folder / "notify.yaml", GOOD, 0)
    hub = make_hub(HUB_RULES_PATH=str(folder))
    app = create_app(hub)
    client = app.test_client()
    running = client.get("/readyz").json["rules"]
    assert running["rules"] == 1 and running["last_refused"] is None and running["watching"]

    _write(folder / "broken.yaml", BROKEN, 5)  # no webhook, no request: only the watcher looks
    refused = wait_for(lambda: hub.rules_registry.last_refused, timeout=30)
    assert any(f"{folder / 'broken.yaml'}:4:11:" in e for e in refused["errors"])

    details = client.get("/readyz").json["rules"]
    assert details["version"] == running["version"]  # still the older rules
    assert details["last_refused"]["errors"] == refused["errors"]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HUB_ADMIN_TOKEN", hub.settings["HUB_ADMIN_TOKEN"])
        shown = CliRunner().invoke(cli, ["rules", "status", "--url", f"http://127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
    assert shown.exit_code == 0, shown.output
    assert f"version {running['version']}: 1 rules in 1 files" in shown.stdout
    assert "last change refused at" in shown.stdout and "broken.yaml:4:11:" in shown.stdout

    (folder / "broken.yaml").unlink()
    _write(folder / "notify.yaml", GOOD.replace("First", "Third"), 10)
    wait_for(lambda: hub.rules_registry.status()["version"] != running["version"], timeout=30)
