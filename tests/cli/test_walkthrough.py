"""The README's "A first webhook in five minutes", run exactly as printed against a started hub.

The section's two shell blocks are terminal 1 and terminal 2. Terminal 1's ``make run`` is the
Makefile's ``run`` recipe (checked here), started on a free port; ``HUB_URL`` points terminal 2's
commands at that port (the only difference from a reader's terminal, where 8080 is the default).
Terminal 2 starts from a clean environment: nothing exported in terminal 1 reaches it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## A first webhook in five minutes"

# What a reader sees, per terminal-2 command (checked as the command's output, after the comment).
EXPECTED = {
    "post": [r"^200 "],
    "deliveries": [r"stripe\s+processed"],
    "events": [r"payment\.failed"],
    "actions": [r"klaviyo\.track_event\s+dry_run"],
    "actions --json": [r'"status": "dry_run"', r'"request"'],
    "explain 1": [r"rule payment-failed-notify", r"dunning\.yaml:\d+"],
    "connectors": [r"^stripe\s+configured", r"^klaviyo\b.*\bdry-run"],
    "rules status": [r"^version \w+: \d+ rules", r"no change refused"],
}


def walkthrough_blocks() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}


def _exports(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            name, _, value = words[1].partition("=")
            found[name] = value
    return found


def test_the_readme_walkthrough_has_two_terminals_and_make_run_is_hub_run():
    terminal1, terminal2 = walkthrough_blocks()
    assert [shlex.split(line, comments=True)[0] for line in terminal1] == ["export", "make"]
    assert "make run" in terminal1[-1]
    recipe = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "$(BIN)/hub db upgrade" in recipe and "$(BIN)/hub run --host 127.0.0.1 --port $(RUN_PORT)" in recipe
    assert all(line.startswith(("export ", ".venv/bin/hub ")) for line in terminal2)


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "hub").exists(), reason="needs the checkout's .venv (make install)")
def test_the_readme_walkthrough_works_exactly_as_printed(tmp_path):
    terminal1, terminal2 = walkthrough_blocks()
    # A fresh folder that looks like the checkout to the commands (./.venv, ./tests): a new ./var/hub.db.
    for name in (".venv", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    port = _free_port()
    hub_env = {**_clean_env(), **_exports(terminal1)}
    log = (tmp_path / "hub.log").open("w")
    subprocess.run([".venv/bin/hub", "db", "upgrade"], cwd=tmp_path, env=hub_env, check=True, capture_output=True)
    server = subprocess.Popen([".venv/bin/hub", "run", "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path,
                              env=hub_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(tmp_path / "hub.log", server)
        env = {**_clean_env(), "HUB_URL": f"http://127.0.0.1:{port}"}
        for line in terminal2:
            command = shlex.split(line, comments=True)
            if command[0] == "export":
                env.update(_exports([line]))
                continue
            key = " ".join(command[1:]) if command[1] != "post" else "post"
            _run_until_expected(command, key, tmp_path, env)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def _wait_listening(log: Path, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while "listening on" not in log.read_text():
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    with socket.socket() as s:  # the line is printed just before the socket is bound
        for _ in range(100):
            if s.connect_ex(("127.0.0.1", int(re.search(r"127\.0\.0\.1:(\d+)", log.read_text())[1]))) == 0:
                return
            time.sleep(0.1)


def _run_until_expected(command: list[str], key: str, cwd: Path, env: dict[str, str]) -> None:
    """Run the command as printed; listing commands are retried for a while, as a reader would
    look again while the hub's worker threads finish (nothing in the walkthrough waits on a clock)."""
    patterns = EXPECTED[key]
    deadline = time.monotonic() + (0 if key == "post" else 30)
    while True:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
        if all(re.search(p, done.stdout, re.M) for p in patterns):
            return
        assert time.monotonic() < deadline, f"{' '.join(command)} printed:\n{done.stdout}\nexpected {patterns}"
        time.sleep(0.5)


if __name__ == "__main__":  # print the blocks the test runs
    for block in walkthrough_blocks():
        print("\n".join(block), end="\n\n", file=sys.stdout)
