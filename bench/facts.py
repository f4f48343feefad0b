"""How long fact detection takes on this machine (on-prem: no metadata service is asked).

    .venv/bin/python bench/facts.py [--runs 20]

Prints the median wall time of `dstack-agent facts --json` as a command (interpreter start
included) and of the detection function in-process; the README records the figures.
Targets: under 150 ms for the command, under 20 ms in-process."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from agent.facts.collect import collect
from agent.facts.sources import FactSources

AGENT = Path(sys.executable).parent / "dstack-agent"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    sources = FactSources.from_env()
    collect(sources)  # warm the imports and the page cache once
    inproc = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        collect(sources)
        inproc.append(time.perf_counter() - t0)
    command = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run([str(AGENT), "facts", "--json"], check=True, capture_output=True)
        command.append(time.perf_counter() - t0)
    print(f"detection in-process:        median {median_ms(inproc):6.1f} ms over {args.runs} runs (target < 20)")
    print(f"`dstack-agent facts --json`: median {median_ms(command):6.1f} ms over {args.runs} runs (target < 150)")


if __name__ == "__main__":
    main()
