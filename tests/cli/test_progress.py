"""Long commands report progress: plain periodic lines with counts when stderr is not a terminal."""

from __future__ import annotations

import json

from click.testing import CliRunner

from hub.cli import cli
from hub.cli.progress import progress


def test_progress_off_a_terminal_prints_plain_lines_with_counts(capsys):
    with progress("replay", 3, every=0) as step:
        for done in (1, 2, 3):
            step(done)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("replay: 1/3, about ") and lines[0].endswith(" s left")
    assert lines[-1].startswith("replay: 3/3 in ")
    assert all("\r" not in line and "\x1b" not in line for line in lines)


def test_segments_recompute_reports_its_progress_and_its_counts(hub):
    result = CliRunner().invoke(cli, ["segments", "recompute", "--no-sync"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["subscribers"] == 0
    assert "segments recompute: 0/0 in " in result.stderr
