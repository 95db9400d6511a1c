"""Long commands report progress through one helper (hub/cli/progress.py): a bar with counts and ETA
on a terminal, plain periodic lines with counts otherwise, always on stderr (stdout stays the result)."""

from __future__ import annotations

import io
import json

from click.testing import CliRunner
from sqlalchemy import update

from hub.cli import cli
from hub.cli.progress import progress
from hub.kernel.events import CanonicalEvent
from tests.conftest import FIXTURES
from tests.helpers import count, drain, recent, stripe_headers


def test_progress_off_a_terminal_prints_plain_lines_with_counts(capsys):
    with progress("replay", 3, every=0) as step:
        for done in (1, 2, 3):
            step(done)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("replay: 1/3, about ") and lines[0].endswith(" s left")
    assert lines[-1].startswith("replay: 3/3 in ")
    assert all("\r" not in line and "\x1b" not in line for line in lines)


def test_progress_lines_come_first_at_once_then_periodically_not_per_item(capsys):
    with progress("import", 1000, every=3600) as step:
        for done in range(1, 1001):
            step(done, f"{done} new")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2  # the first update, then (an hour later) nothing until the last line
    assert lines[0].startswith("import: 1/1000, 1 new, about ")
    assert lines[1].startswith("import: 1000/1000, 1000 new in ")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_draws_a_bar_with_counts_and_eta(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress("replay actions", 0) as step:
        for done in (1, 2):
            step(done, total=4)  # the total learnt once the rows are found
        step(4, "4 replayed")
    drawn = terminal.getvalue()
    assert "\r" in drawn and "2/4" in drawn and "4/4" in drawn and "replay actions 4 replayed" in drawn
    assert "100%" in drawn


def test_a_share_of_the_work_shows_as_a_percentage(capsys):
    with progress("stripe backfill", 1.0, percent=True, every=0) as step:
        step(0.25, "events (1/5) page 1: 10 read")
        step(1.0, "done (5/5) page 9: 40 read")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("stripe backfill: 25%, events (1/5) page 1: 10 read, about ")
    assert lines[-1].startswith("stripe backfill: 100%, done (5/5) page 9: 40 read in ")


def test_segments_recompute_reports_its_progress_and_its_counts(hub):
    result = CliRunner().invoke(cli, ["segments", "recompute", "--no-sync"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["subscribers"] == 0
    assert "segments recompute: 0/0 in " in result.stderr


def test_segments_reconcile_reports_its_progress_apart_from_its_json(hub):
    result = CliRunner().invoke(cli, ["segments", "reconcile", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["drift"] == []
    assert "segments reconcile: 0/0 in " in result.stderr


def _events(n: int) -> str:
    return "".join(json.dumps(CanonicalEvent(
        type="subscriber.created", time="2026-01-01T00:00:00Z", provider="stripe", providereventid=f"evt_p{i}",
        providertype="customer.created", data={"subscriber": {"email": f"p{i}@example.com"}}).to_dict()) + "\n"
        for i in range(n))


def test_import_records_in_batches_reporting_progress_and_counts(hub, tmp_path, monkeypatch):
    from hub.store import Event

    monkeypatch.setattr("hub.cli.inspect.IMPORT_BATCH", 2)
    file = tmp_path / "events.jsonl"
    file.write_text(_events(5))
    result = CliRunner().invoke(cli, ["import", str(file), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"imported": 5, "present": 0, "planned": 0, "skipped": 0, "skipped_by": {}}
    lines = result.stderr.splitlines()
    assert lines[0].startswith("import: 2/5, 2 new, 0 already present, about ")
    assert lines[-1].startswith("import: 5/5, 5 new, 0 already present in ")
    assert count(hub, Event) == 5
    again = CliRunner().invoke(cli, ["import", str(file), "--json"])
    assert json.loads(again.stdout)["present"] == 5 and count(hub, Event) == 5


def test_replay_by_status_works_in_batches_and_reports_progress(hub, monkeypatch):
    from hub.store import Action
    from hub.store.models import ActionStatus

    body = recent((FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes(), "created")
    client = __import__("hub.web", fromlist=["create_app"]).create_app(hub).test_client()
    client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    drain(hub)
    with hub.store.session() as s:
        s.execute(update(Action).values(status=ActionStatus.DEAD))
    dead = count(hub, Action)
    assert dead >= 3
    monkeypatch.setattr("hub.queries.REPLAY_BATCH", 2)
    result = CliRunner().invoke(cli, ["replay", "actions", "--status", "dead", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"replayed": dead, "already_pending": 0, "skipped": 0}
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"replay actions: 2/{dead}, about ")
    assert lines[-1].startswith(f"replay actions: {dead}/{dead} in ")
    assert count(hub, Action, Action.status == ActionStatus.DEAD) == 0
