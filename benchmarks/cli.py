"""CPU cost of starting the ``hub`` command: ``hub --help`` and ``hub --version``.

Each sample runs the command in a fresh interpreter and reads the CPU time (user + system) the
child used from ``resource.getrusage(RUSAGE_CHILDREN)``: CPU rather than wall time, because the
machine is shared. Printed per command: the median and the best of N runs, and, measured in the
same run, two baselines:

- a bare interpreter (``python -c pass``): the floor no CLI can go under;
- every command imported up front (what ``hub --help`` cost before the commands loaded lazily).

Goal: ``hub --help`` and ``hub --version`` well under 0.3 s of CPU.

    .venv/bin/python benchmarks/cli.py [--runs 10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys

EAGER = ("import hub.cli as c\n"
         "for name in c.COMMANDS: c.load_command(name)\n"
         "c.main(['--help'])")


def cpu_of(args: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="Runs per command.")
    runs = parser.parse_args().runs
    cases = {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "hub --help": [sys.executable, "-c", "from hub.cli import main; main(['--help'])"],
        "hub --version": [sys.executable, "-c", "from hub.cli import main; main(['--version'])"],
        "every command imported, then --help (before)": [sys.executable, "-c", EAGER],
    }
    results = {}
    for name, args in cases.items():
        cpu_of(args)  # warm the file cache
        samples = [cpu_of(args) for _ in range(runs)]
        results[name] = (statistics.median(samples), min(samples))
    eager = results["every command imported, then --help (before)"][0]
    print(f"CPU seconds per start, {runs} runs each (median / best; ratio to the eager import, median)")
    for name, (median, best) in results.items():
        print(f"  {name:<48} {median:6.3f} / {best:6.3f}   x{median / eager:.2f}")


if __name__ == "__main__":
    main()
