"""Shared rate limit against a real server: four worker threads deliver 200 ActiveCampaign actions to a
local API that allows 5 requests per second (429 beyond). Prints the rate achieved as a share of the
allowance, the busiest second and the 429 count.

    HUB_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \
    HUB_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
    .venv/bin/python benchmarks/ratelimit.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    # The measurement is the real-server test's run with its figures printed (-s): one code path for
    # the assertion on outcomes (in `make test`) and the figure (here).
    sys.exit(pytest.main([str(ROOT / "tests/outbound/test_real_server.py"), "-q", "-s", "-p", "no:cacheprovider",
                          "-k", "5_per_second_limit", "--rootdir", str(ROOT)]))
