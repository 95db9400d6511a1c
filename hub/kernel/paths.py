"""Where the shipped defaults live: the playbook (`rules/`) and the provider mapping tables (`mappings/`).

In a source checkout they are the top-level folders; an installed wheel carries them as the package
data `hub/defaults/rules` and `hub/defaults/mappings` (see `pyproject.toml`).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def shipped(name: str) -> Path:
    bundled = _PACKAGE / "defaults" / name
    return bundled if bundled.is_dir() else _PACKAGE.parent / name


DEFAULT_RULES_PATH = shipped("rules")
DEFAULT_MAPPINGS_PATH = shipped("mappings")
