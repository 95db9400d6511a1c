"""Every action test starts with an empty shared id cache (see common.run)."""

from __future__ import annotations

import pytest

from tests.connectors import actions as common


@pytest.fixture(autouse=True)
def _fresh_id_cache() -> None:
    common.ID_CACHE = common.DictCache()
