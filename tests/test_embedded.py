"""The embedded default: with nothing configured, `hub run` serves on SQLite with an in-process
queue, and connectors without API keys run dry (recording the exact request they would send)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import FIXTURES, ROOT
from tests.helpers import recent, stripe_headers
from tests.mockapi import wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(extra)
    return env


def _get(url: str):
    try:
        return requests.get(url, timeout=2)
    except requests.ConnectionError:
        return None


def test_hub_run_embedded_receives_and_runs_dry(tmp_path: Path):
    port = _free_port()
    hub_bin = str(Path(sys.executable).with_name("hub"))
    env = _clean_env(HUB_STRIPE_WEBHOOK_SECRET="whsec_test_secret",
                     HUB_RULES_PATH=str(FIXTURES / "rules" / "payment_failed_only.yaml"))
    log = open(tmp_path / "hub.log", "wb")
    proc = subprocess.Popen([hub_bin, "run", "--port", str(port)], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: (r := _get(f"{base}/healthz")) is not None and r.status_code == 200, timeout=30)
        assert (tmp_path / "var" / "hub.db").exists()
        body = recent((FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes(), "created")
        answer = requests.post(f"{base}/webhooks/stripe", data=body, headers=stripe_headers(body), timeout=5)
        assert answer.status_code == 200

        def dry_action():
            actions = requests.get(f"{base}/api/actions?attempts=1", timeout=5).json()
            return [a for a in actions if a["status"] == "dry_run"]

        try:
            [action] = wait_for(dry_action, timeout=20)
        except AssertionError:
            raise AssertionError((tmp_path / "hub.log").read_text()[-3000:]) from None
        assert action["dry_run"] is True
        recorded = action["attempt_log"][-1]
        assert recorded["outcome"] == "dry_run"
        assert recorded["request"]["method"] == "POST"
        assert recorded["request"]["url"] == "https://a.klaviyo.com/api/events"
        assert recorded["request"]["headers"]["Authorization"] == "***"
        assert recorded["request"]["body"]["data"]["attributes"]["metric"]["data"]["attributes"]["name"] == \
            "Payment Failed"
        assert requests.get(f"{base}/readyz", timeout=5).json()["ready"] is True
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_make_run_on_a_fresh_clone_answers_healthz(tmp_path: Path):
    """`make run` in a fresh clone of the committed tree creates its venv, installs and serves."""
    if not shutil.which("make") or not (ROOT / ".git").exists():
        pytest.skip("needs make and a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    port = _free_port()
    log = open(tmp_path / "make-run.log", "wb")
    # `make run` binds 8080; run its recipe on a free port so the test never collides with a dev hub
    proc = subprocess.Popen(["make", "run", f"RUN_PORT={port}"], cwd=clone, env=_clean_env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is None and (r := _get(f"http://127.0.0.1:{port}/healthz")) is not None
                 and r.status_code == 200, timeout=420, interval=1.0)
    except AssertionError:
        raise AssertionError((tmp_path / "make-run.log").read_text()[-3000:]) from None
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
