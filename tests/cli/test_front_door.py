"""The command line as a newcomer meets it: light to start, consistent help and --json, bad input
answered in one line with exit code 2, and commands that act on a hub reaching the running one."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import timedelta

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import update
from werkzeug.serving import make_server

from hub.cli import COMMANDS, cli, load_command
from tests.conftest import FIXTURES
from tests.helpers import drain, recent, stripe_headers

BODY = recent((FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes(), "created")  # live, not history


def _all_commands() -> list[tuple[str, click.Command]]:
    out = []

    def walk(prefix: str, command: click.Command) -> None:
        out.append((prefix, command))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(f"{prefix} {name}", sub)

    for name in COMMANDS:
        walk(name, load_command(name))
    return out


HEAVY = {"sqlalchemy", "flask", "rq", "redis", "connectors", "hub.runtime"}


def test_hub_help_and_version_load_no_command_because_commands_load_when_they_run():
    """What makes them cheap (benchmarks/cli.py prints the CPU figure): nothing heavy is imported."""
    listed = subprocess.run([sys.executable, "-c", "import sys; from hub.cli import main\n"
                             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                             "print(' '.join(sorted(sys.modules)))"], capture_output=True, text=True, timeout=60)
    *help_text, loaded = listed.stdout.splitlines()
    assert "replay" in "\n".join(help_text) and not HEAVY & set(loaded.split())
    modules = subprocess.run([sys.executable, "-c", "import sys; from hub.cli import main\n"
                              "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
                              "print(' '.join(sorted(sys.modules)))"], capture_output=True, text=True, timeout=60)
    loaded = set(modules.stdout.split())
    assert "hub 0.1.0" in modules.stdout
    assert not HEAVY & loaded


def test_every_listed_command_loads_under_its_name():
    for name in COMMANDS:
        assert load_command(name).name == name


def test_every_option_has_help_text():
    missing = [f"hub {path} {param.opts[0]}" for path, command in _all_commands() for param in command.params
               if isinstance(param, click.Option) and not param.help]
    assert missing == []


def _first_paragraph(text: str) -> str:
    return " ".join(text.split("\n\n")[0].split())


def test_each_command_is_listed_with_the_first_line_of_its_own_help_never_cut_short():
    """`hub --help` and `hub GROUP --help` list a command with exactly the line its own --help opens with."""
    listed = {path: command.get_short_help_str(limit=62) for path, command in _all_commands()}
    opens = {path: _first_paragraph(command.help or "") for path, command in _all_commands()}
    assert {p: line for p, line in listed.items() if line != opens[p]} == {}
    assert [p for p, line in listed.items() if line.endswith("...") or not line.endswith(".")] == []
    for name in [n for n, c in _all_commands() if isinstance(c, click.Group)]:
        shown = CliRunner().invoke(cli, [*name.split(), "--help"], terminal_width=80).stdout
        commands = shown.partition("Commands:")[2]
        assert "..." not in commands, name


def test_option_help_is_a_capitalised_sentence_and_times_have_a_telling_metavar():
    sloppy = [f"hub {path} {param.opts[0]}: {param.help}" for path, command in _all_commands()
              for param in command.params if isinstance(param, click.Option) and param.help
              and not (param.help[0].isupper() or param.help[0] in "`-") or
              isinstance(param, click.Option) and param.help and not param.help.rstrip().endswith((".", ")"))]
    assert sloppy == []
    ctx = click.Context(cli)
    times = [f"hub {path} {param.opts[0]}" for path, command in _all_commands() for param in command.params
             if isinstance(param, click.Option) and param.name in ("since", "until", "start", "end", "from_", "now_text")
             and param.make_metavar(ctx) == "TEXT"]
    assert times == []


def test_every_listing_command_has_json():
    listing = ["events", "deliveries", "actions", "connectors", "connectors health", "segments list",
               "segments reconcile", "subscribers conflicts", "subscribers show", "metrics", "metrics cohorts",
               "privacy redactions", "rules status", "rules report", "replay", "explain", "import", "backfill",
               "changes apply", "alerts check"]
    by_path = dict(_all_commands())
    assert [p for p in listing if "--json" not in {o for param in by_path[p].params for o in param.opts}] == []


@pytest.mark.parametrize("args, says", [
    (["rules", "simulate", "--events", "missing.jsonl", "--table"], "'missing.jsonl' does not exist"),
    (["replay", "actions", "--status", "bogus"], "'bogus' is not one of"),
    (["replay", "deliveries", "--status", "dead"], "deliveries replay failed, not 'dead'"),
    (["actions", "--since", "last tuesday"], "neither an age"),
    (["actions", "--status", "sent"], "'sent' is not one of"),
    (["--log-level", "LOUD", "events"], "'LOUD' is not one of"),
])
def test_input_errors_are_one_line_with_exit_code_2(args, says, tmp_path):
    done = subprocess.run([sys.executable, "-c", "from hub.cli import main; main()", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0]


@pytest.mark.parametrize("env, named", [
    ({"HUB_LOG_LEVEL": "LOUD"}, ["HUB_LOG_LEVEL"]),
    ({"HUB_FX_RATES": "EUR=abc", "HUB_REDIS_URL": "http://cache"}, ["HUB_FX_RATES", "HUB_REDIS_URL"]),
    ({"HUB_ENV": "production", "HUB_ADMIN_TOKEN": "change-me", "HUB_DATABASE_URL": "sqlite:///x.db",
      "HUB_REDIS_URL": "redis://127.0.0.1:1/0"}, ["HUB_ADMIN_TOKEN"]),
    ({"HUB_ENV": "production", "HUB_ADMIN_TOKEN": "a" * 31, "HUB_DATABASE_URL": "sqlite:///x.db",
      "HUB_REDIS_URL": "redis://127.0.0.1:1/0"}, ["HUB_ADMIN_TOKEN"]),
])
def test_bad_settings_are_refused_at_start_in_one_error_naming_each(env, named, tmp_path):
    clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith("HUB_")}
    done = subprocess.run([sys.executable, "-c", "from hub.cli import main; main()", "config"], cwd=tmp_path,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"hub: invalid configuration ({len(named)} problem(s))")
    assert [line.split(":")[0].strip(" -") for line in done.stderr.splitlines()[1:]] == named
    assert "change-me" not in done.stderr


def test_a_strong_admin_token_is_accepted_in_production():
    from hub.config import load_settings

    settings = load_settings({"HUB_ENV": "production", "HUB_ADMIN_TOKEN": "k3" * 16, "HUB_DATABASE_URL": "sqlite://",
                              "HUB_REDIS_URL": "redis://127.0.0.1:1/0", "HUB_FX_RATES": "EUR=1.08"}, dotenv_path=None)
    assert settings["HUB_ADMIN_TOKEN"] == "k3" * 16


@pytest.fixture()
def running(make_hub):
    """A started hub in embedded mode (no HUB_REDIS_URL: its queue lives in its own memory)."""
    from hub.web import create_app

    hub = make_hub()
    server = make_server("127.0.0.1", 0, create_app(hub), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield hub, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_replay_in_embedded_mode_is_done_by_the_running_hub(running, monkeypatch):
    from hub.store import Action
    from hub.store.models import ActionStatus

    hub, url = running
    client = __import__("hub.web", fromlist=["create_app"]).create_app(hub).test_client()
    client.post("/webhooks/stripe", data=BODY, headers=stripe_headers(BODY))
    drain(hub)
    with hub.store.session() as s:
        s.execute(update(Action).values(status=ActionStatus.DEAD))
    monkeypatch.setattr("hub.cli.remote.embedded", lambda: True)
    monkeypatch.setenv("HUB_ADMIN_TOKEN", hub.settings["HUB_ADMIN_TOKEN"])
    result = CliRunner().invoke(cli, ["replay", "actions", "--status", "dead", "--url", url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["replayed"] >= 1 and report["skipped"] == 0
    with hub.store.session() as s:  # re-queued by the running hub itself, on its own queue
        assert {a.status for a in s.query(Action)} == {ActionStatus.QUEUED}
    assert hub.redis.keys("rq:queue:deliver-*")


def test_connectors_in_embedded_mode_shows_the_running_hubs_configuration(running, monkeypatch):
    hub, url = running  # the running hub has the Stripe secret (tests' settings) ...
    monkeypatch.delenv("HUB_STRIPE_WEBHOOK_SECRET", raising=False)  # ... this terminal does not
    monkeypatch.setattr("hub.cli.remote.embedded", lambda: True)
    monkeypatch.setenv("HUB_ADMIN_TOKEN", hub.settings["HUB_ADMIN_TOKEN"])
    result = CliRunner().invoke(cli, ["connectors", "--json", "--url", url])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["stripe"]["inbound"] == "configured"


def test_commands_that_act_on_the_hub_say_clearly_when_none_is_running(monkeypatch, tmp_path):
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    url = f"http://127.0.0.1:{port}"
    for args in (["replay", "actions", "1"], ["connectors"], ["rules", "status"]):
        done = subprocess.run([sys.executable, "-c", "from hub.cli import main; main()", *args, "--url", url],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env={k: v for k, v in __import__("os").environ.items() if not k.startswith("HUB_")})
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.strip() == f"Error: no hub is running at {url} (start it with `hub run`, or give --url)"


def test_since_and_until_select_rows_by_time(make_hub):
    from hub.store import Delivery, utcnow

    hub = make_hub(HUB_KLAVIYO_API_KEY=None)  # Klaviyo runs dry
    client = __import__("hub.web", fromlist=["create_app"]).create_app(hub).test_client()
    client.post("/webhooks/stripe", data=BODY, headers=stripe_headers(BODY))
    drain(hub)
    with hub.store.session() as s:
        s.execute(update(Delivery).values(received_at=utcnow() - timedelta(days=3)))
    runner = CliRunner()
    assert json.loads(runner.invoke(cli, ["deliveries", "--json", "--since", "4d"]).output)["connector"] == "stripe"
    assert runner.invoke(cli, ["deliveries", "--json", "--since", "2d"]).output == ""
    assert runner.invoke(cli, ["deliveries", "--json", "--until", "2d"]).output != ""
    assert runner.invoke(cli, ["actions", "--json", "--until", "2000-01-01T00:00:00Z"]).output == ""
    assert runner.invoke(cli, ["actions", "--json", "--status", "dry_run"]).output != ""


def test_json_lists_are_one_object_per_line_and_single_items_one_object(hub):
    runner = CliRunner()
    listed = runner.invoke(cli, ["segments", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) > 1 and all(isinstance(r, dict) and "id" in r for r in rows)
    single = runner.invoke(cli, ["metrics", "--json"])
    assert single.exit_code == 0, single.output
    assert len(single.stdout.splitlines()) == 1 and isinstance(json.loads(single.stdout), dict)


def test_redactions_and_conflicts_take_since_and_until_too(hub):
    from hub.store import Subscriber, utcnow
    from hub.store.privacy_models import Redaction
    from hub.store.subscriber_models import IdentityConflict

    long_ago = utcnow() - timedelta(days=30)
    with hub.store.session() as s:
        a, b = (Subscriber(email=f"{n}@example.com", created_at=long_ago, updated_at=long_ago) for n in "ab")
        s.add_all([a, b])
        s.flush()
        s.add(IdentityConflict(subscriber_id=a.id, other_id=b.id, reason="same e-mail", created_at=long_ago))
        s.add(Redaction(identifiers_hash="0" * 64, identifier_hashes=[], subscriber_ids=[], counts={},
                        provider="operator", requested_at=long_ago, completed_at=long_ago))
    runner = CliRunner()
    for listing in (["subscribers", "conflicts"], ["privacy", "redactions"]):
        assert len(runner.invoke(cli, [*listing, "--json", "--since", "40d"]).stdout.splitlines()) == 1, listing
        assert runner.invoke(cli, [*listing, "--json", "--since", "20d"]).stdout == "", listing
        assert len(runner.invoke(cli, [*listing, "--json", "--until", "20d"]).stdout.splitlines()) == 1, listing


def test_alerts_check_lists_readings_as_json(hub):
    result = CliRunner().invoke(cli, ["alerts", "check", "--all", "--json"])
    assert result.exit_code == 0, result.output
    readings = [json.loads(line) for line in result.stdout.splitlines()]
    assert readings and all({"key", "firing", "summary"} <= set(r) or {"event", "key"} <= set(r) for r in readings)
