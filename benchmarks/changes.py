"""A batch of 1,000 subscription changes (Stripe pauses) against a local server enforcing Stripe's
allowance of 25 requests per second (429 beyond it), delivered by two `hub worker` processes and the
scheduler, with `hub changes apply` interrupted (SIGINT) after 400 rows and run again with
`--resume`: prints the time to plan every row, the sending rate as a share of the allowance (the
goal is at least 90%), the busiest second, the 429 count and the machine's load. Then the baseline,
in the same run: the same rows (resumes) through the same workers with no limit, and the batch's rate
as a share of min(allowance, baseline). The run fails if a row reached the provider twice or not at
all, or if the resumed run applied more than the rest.

    HUB_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \
    HUB_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
    .venv/bin/python benchmarks/changes.py [--rows 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="hub worker processes")
    parser.add_argument("--seconds", action="store_true", help="print the requests answered in every second")
    args = parser.parse_args()
    os.environ.update(HUB_BENCH_CHANGE_ROWS=str(args.rows), HUB_BENCH_CHANGE_WORKERS=str(args.workers),
                      HUB_BENCH_CHANGE_BASELINE="1")
    if args.seconds:
        os.environ["HUB_BENCH_CHANGE_SECONDS"] = "1"
    # The measurement is the batch test's run with its figures printed (-s): one code path for the
    # assertions on outcomes (in the test suite, with fewer rows) and the figure (here).
    sys.exit(pytest.main([str(ROOT / "tests/changes/test_batch_rate_limit.py"), "-q", "-s", "-p", "no:cacheprovider",
                          "-o", "addopts=", "--rootdir", str(ROOT)]))
