"""docker-compose's web tier without Docker: two ``hub serve`` replicas behind HAProxy configured as
docs/deploy/haproxy.cfg (its defaults and backend settings; the servers named statically instead of
found by Docker's DNS). A rolling restart (stop one replica, start it again, then the other) while
two clients post without pause: every post answered 200 and stored. Skipped without ``haproxy``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from typing import Any

import pytest

from hub.store import Delivery
from tests.conftest import ROOT
from tests.helpers import rows, spawn
from tests.web.test_restart import PATIENCE, SECRET, Poster, _free_port, _get_health, _until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")]


def _config(front: int, replicas: list[int]) -> str:
    """docs/deploy/haproxy.cfg with a loopback front port and the replicas' ports as servers."""
    text = (ROOT / "docs" / "deploy" / "haproxy.cfg").read_text()
    text = re.sub(r"resolvers docker\n(    .*\n)+", "", text)
    text = text.replace("bind :8080", f"bind 127.0.0.1:{front}")
    text = text.replace(" resolvers docker init-addr libc,none", "")
    servers = "".join(f"    server web{n} 127.0.0.1:{port}\n" for n, port in enumerate(replicas, 1))
    text = re.sub(r"    server-template .*\n", servers, text)
    assert "server-template" not in text and "resolvers" not in text
    return text.replace("log stdout format raw local0", "log stderr format raw local0")


def test_a_rolling_restart_behind_haproxy_loses_and_refuses_nothing(make_hub, tmp_path):
    hub = make_hub(HUB_STRIPE_WEBHOOK_SECRET=SECRET)
    front, ports = _free_port(), [_free_port(), _free_port()]
    config = tmp_path / "haproxy.cfg"
    config.write_text(_config(front, ports))
    replicas: dict[int, Any] = {}

    def start(port: int) -> None:
        replicas[port] = spawn(hub, "serve", "--port", str(port), "--workers", "2", "--threads", "4")
        _until(lambda: _get_health(port), f"replica {port} answering")

    for port in ports:
        start(port)
    edge = subprocess.Popen(["haproxy", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    posters: list[Poster] = []
    try:
        _until(lambda: _get_health(front), "haproxy answering")
        posters = [Poster(front, "fresh", keep_alive=False), Poster(front, "kept", keep_alive=True)]

        def progress(more: int) -> None:
            target = sum(len(p.answered) for p in posters) + more
            _until(lambda: sum(len(p.answered) for p in posters) >= target, f"{more} more answers")

        progress(20)
        for port in ports:  # one replica at a time: stopped (it drains), started again, healthy
            os.kill(replicas[port].pid, signal.SIGTERM)
            replicas[port].wait(PATIENCE)
            progress(20)  # the other replica answers meanwhile
            start(port)
            progress(20)
    finally:
        for poster in posters:
            poster.finish()
        edge.terminate()
        edge.wait(30)
        for proc in replicas.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(PATIENCE)
    failed = [f for p in posters for f in p.failed]
    assert failed == []
    answered = {e for p in posters for e in p.answered}
    stored = [d.dedup_key for d in rows(hub, Delivery, Delivery.connector == "stripe")]
    assert len(answered) >= 100
    assert answered <= set(stored) and len(stored) == len(set(stored))
