from __future__ import annotations

import pytest

from tests.mockapi import MockApi, always


@pytest.fixture
def api():
    """A real HTTP server on 127.0.0.1 standing in for a vendor's API (answers 202 unless scripted)."""
    server = MockApi(always())
    yield server
    server.close()
