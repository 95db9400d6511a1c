"""The hub installs and runs from anywhere: the wheel carries the default playbook and mapping tables,
and an installed hub, started from an empty folder, receives, processes and plans as the checkout does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import requests

from tests.conftest import FIXTURES, ROOT
from tests.helpers import stripe_headers
from tests.mockapi import wait_for
from tests.test_embedded import _clean_env, _free_port, _get

SOURCES = ("pyproject.toml", "README.md", "hub", "connectors", "rules", "mappings")


def test_the_package_list_names_every_package_folder():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {str(p.parent.relative_to(ROOT)).replace("/", ".")
               for top in ("hub", "connectors") for p in (ROOT / top).rglob("__init__.py")}
    assert declared == on_disk | {"hub.defaults.rules", "hub.defaults.mappings"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the hub installed from its wheel (built offline)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:  # a copy, so the build leaves nothing in the checkout
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                           if (ROOT / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(work / "dist"), str(source)], check=True, capture_output=True)
    [wheel] = list((work / "dist").glob("*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # the dependencies come from this environment's site-packages (no network): a path line in a .pth
    # adds the folder without running that folder's own .pth files (so not the editable checkout)
    fresh_site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                check=True, capture_output=True, text=True).stdout.strip()
    Path(fresh_site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    return venv


def test_the_installed_hub_is_the_wheel_not_the_checkout(installed: Path, tmp_path: Path):
    found = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import hub, hub.kernel.paths as p; print(hub.__file__); print(p.DEFAULT_RULES_PATH); "
                            "print(p.DEFAULT_MAPPINGS_PATH)"],
                           cwd=tmp_path, check=True, capture_output=True, text=True).stdout.split()
    module, rules, mappings = (Path(x) for x in found)
    assert ROOT not in module.parents and str(installed) in str(module)
    assert rules.parts[-3:] == ("hub", "defaults", "rules") and (rules / "dunning.yaml").is_file()
    assert mappings.parts[-3:] == ("hub", "defaults", "mappings") and (mappings / "stripe.yaml").is_file()


@pytest.mark.slow
def test_an_installed_hub_started_in_an_empty_folder_receives_and_plans(installed: Path, tmp_path: Path):
    hub_bin = str(installed / "bin" / "hub")
    env = _clean_env(HUB_STRIPE_WEBHOOK_SECRET="whsec_test_secret")  # no rules or mappings path: the shipped ones
    subprocess.run([hub_bin, "db", "upgrade"], cwd=tmp_path, env=env, check=True, capture_output=True)
    port = _free_port()
    log = open(tmp_path / "hub.log", "wb")
    proc = subprocess.Popen([hub_bin, "run", "--port", str(port)], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: (r := _get(f"{base}/healthz")) is not None and r.status_code == 200, timeout=60)
        body = (FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes()
        answer = requests.post(f"{base}/webhooks/stripe", data=body, headers=stripe_headers(body), timeout=5)
        assert answer.status_code == 200

        def processed():
            return [d for d in requests.get(f"{base}/api/deliveries", timeout=5).json() if d["status"] != "received"]

        try:
            [delivery] = wait_for(processed, timeout=30)
        except AssertionError:
            raise AssertionError((tmp_path / "hub.log").read_text()[-3000:]) from None
        assert delivery["status"] == "processed", delivery  # the shipped stripe mapping was found
        names = {a["action"] for a in requests.get(f"{base}/api/actions", timeout=5).json()}
        assert "klaviyo.track_event" in names  # the shipped dunning playbook planned its notice
    finally:
        proc.terminate()
        proc.wait(10)
    assert not (tmp_path / "rules").exists() and not (tmp_path / "mappings").exists()
    assert os.listdir(tmp_path) and (tmp_path / "var" / "hub.db").exists()
