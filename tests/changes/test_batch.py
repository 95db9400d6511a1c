"""``hub changes apply FILE.csv``: every bad row reported before anything runs; applied once per row;
a second run (or ``--resume``) applies only what is missing."""

from __future__ import annotations

from click.testing import CliRunner

from hub.cli import cli
from hub.store import Action
from tests.changes.support import subscription
from tests.helpers import rows


def _csv(tmp_path, text: str):
    path = tmp_path / "changes.csv"
    path.write_text(text)
    return path


def test_bad_rows_are_all_reported_and_nothing_runs(hub, tmp_path):
    subscription(hub, "stripe", "sub_1", plan="basic", amount=3000)
    path = _csv(tmp_path, "subscription,change,quantity\nsub_1,pause,\nsub_1,change_quantity,0\nsub_x,pause,\n"
                          "sub_1,explode,\n")
    result = CliRunner().invoke(cli, ["changes", "apply", str(path)])
    assert result.exit_code == 2
    assert f"{path}:3: quantity:" in result.output and f"{path}:4: no subscription 'sub_x'" in result.output
    assert f"{path}:5: change:" in result.output and f"{path}:2" not in result.output
    assert rows(hub, Action) == []


def test_rows_are_applied_once_and_a_rerun_adds_nothing(hub, tmp_path):
    for i in range(5):
        subscription(hub, "chargebee", f"cb_{i}", plan="basic-USD", amount=1000)
    path = _csv(tmp_path, "subscription,change,quantity\n" + "".join(f"cb_{i},change_quantity,{i + 2}\n"
                                                                     for i in range(5)))
    first = CliRunner().invoke(cli, ["changes", "apply", str(path)])
    assert first.exit_code == 0, first.output
    assert "applied 5 new change(s), 0 already present" in first.output
    assert sorted(a.params["quantity"] for a in rows(hub, Action)) == [2, 3, 4, 5, 6]
    results = (tmp_path / "changes.results.csv").read_text().splitlines()
    assert results[0] == "line,subscription,change,id,status,new,error" and len(results) == 6
    again = CliRunner().invoke(cli, ["changes", "apply", str(path), "--resume"])
    assert "applied 0 new change(s), 5 already present" in again.output and len(rows(hub, Action)) == 5


def test_a_dry_run_shows_each_rows_effect_and_applies_nothing(hub, tmp_path):
    subscription(hub, "stripe", "sub_1", plan="basic", amount=3000)
    path = _csv(tmp_path, "subscription,change,quantity\nsub_1,change_quantity,2\n")
    result = CliRunner().invoke(cli, ["changes", "apply", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0 and '"after": 6000' in result.output and rows(hub, Action) == []


def test_a_row_whose_subscription_went_away_after_the_check_is_reported_and_the_others_applied(hub, tmp_path):
    from hub.changes import batch

    subscription(hub, "stripe", "sub_1", plan="basic", amount=3000)
    rows_, errors = batch.read(_csv(tmp_path, "subscription,change\nsub_1,pause\nsub_gone,pause\n"))
    assert errors == []
    results = batch.run(hub, rows_)  # as if sub_gone had been erased between the check and the run
    assert [(r["line"], r["status"]) for r in results] == [(2, "queued"), (3, "error")]
    assert results[1]["error"] == "no subscription 'sub_gone'" and len(rows(hub, Action)) == 1


def test_a_batch_is_paced_at_the_providers_rate_limit_and_a_rerun_keeps_the_pace(make_hub, tmp_path):
    from datetime import timedelta

    from hub.changes import batch

    # Stripe with a key: 25 requests per second, so one change every 1/25 s (x 1.01, as the limiter counts)
    hub = make_hub(HUB_STRIPE_API_KEY="sk_test_x", HUB_STRIPE_API_URL="http://127.0.0.1:9")
    for i in range(6):
        subscription(hub, "stripe", f"sub_{i}", plan="price_basic", amount=3000)
    rows_, _ = batch.read(_csv(tmp_path, "subscription,change\n" + "".join(f"sub_{i},pause\n" for i in range(4))))
    batch.run(hub, rows_)
    more, _ = batch.read(_csv(tmp_path, "subscription,change\n" + "".join(f"sub_{i},pause\n" for i in range(6))))
    again = batch.run(hub, more)  # the same file with two more rows: those two after the four waiting
    assert [r["new"] for r in again] == [False] * 4 + [True] * 2
    due = sorted(a.due_at for a in rows(hub, Action))
    gaps = [round((b - a) / timedelta(milliseconds=1)) for a, b in zip(due, due[1:])]
    assert gaps == [40] * 5  # 1 s / 25 x 1.01 = 40.4 ms, rounded
