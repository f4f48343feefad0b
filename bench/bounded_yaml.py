"""How long the bounded loader takes to refuse each hostile input, and what its checks cost on a
normal task file against the plain loaders (same run, same file).

    .venv/bin/python bench/bounded_yaml.py [--runs 20]

The refusals are in-process (dstackctl's own start, about 0.6 s, comes on top). The baseline is
ruamel's round-trip loader without the checks, which is what reads task files (for line numbers),
and PyYAML's safe_load (C and pure) when PyYAML is importable; it is not a dependency.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the hostile inputs the tests use

from dstack_hybrid.shared.bounded_input import InputRefused, load_yaml, read_limited
from ruamel.yaml import YAML

from controller.configs.loader import parse_task_text
from tests.support.hostile_yaml import TASK_HEAD, alias_bomb, deep_list, deep_map

EXAMPLES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "dstack-examples"
NORMAL = EXAMPLES / "examples_single-node-training_axolotl_amd_.dstack.yml"


def median_ms(run: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def refusing(load: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            load()
        except InputRefused:
            return
        raise AssertionError("not refused")

    return run


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        huge = Path(tmp) / "huge.yaml"
        with huge.open("w") as out:
            out.write(TASK_HEAD + "commands:\n")
            for _ in range(50):
                out.write("  - echo hi\n" * (1024 * 1024 // 12))
        two_mib = TASK_HEAD + "commands:\n" + "  - echo hi\n" * (2 * 1024 * 1024 // 12)
        hostile = {
            "alias bomb (9**9 strings)": lambda: load_yaml(alias_bomb(), "t"),
            "list nested 3000 deep": lambda: load_yaml(deep_list(3000), "t"),
            "map nested 3000 deep": lambda: load_yaml(deep_map(3000), "t"),
            "2 MiB text": lambda: load_yaml(two_mib, "t"),
            "/dev/zero (read_limited)": lambda: read_limited(Path("/dev/zero"), "task"),
            "50 MB file (read_limited)": lambda: read_limited(huge, "task"),
        }
        print(f"refusing (median of {args.runs}, in-process):")
        for name, load in hostile.items():
            print(f"  {name:28} {median_ms(refusing(load), args.runs):8.2f} ms")

    text = NORMAL.read_text()
    task_text = "type: task\nimage: ubuntu:24.04\ncommands:\n" + "".join(f"  - echo step {i}\n" for i in range(40))
    bounded = median_ms(lambda: load_yaml(text, "t"), args.runs)
    plain_rt = median_ms(lambda: YAML(typ="rt").load(text), args.runs)
    print(f"\nnormal file ({NORMAL.name}, {len(text)} bytes), median of {args.runs}:")
    print(f"  bounded round-trip load       {bounded:8.2f} ms")
    print(f"  plain ruamel round-trip load  {plain_rt:8.2f} ms   bounded / plain = {bounded / plain_rt:.2f}")
    bounded_safe = median_ms(lambda: load_yaml(text, "t", round_trip=False), args.runs)
    print(f"  bounded safe load (agent.yaml) {bounded_safe:7.2f} ms")
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        print("  PyYAML is not installed: no yaml.safe_load baseline")
    else:
        safe = median_ms(lambda: yaml.safe_load(text), args.runs)
        print(f"  yaml.safe_load (pure Python)  {safe:8.2f} ms   bounded / safe_load = {bounded / safe:.2f}")
        if getattr(yaml, "CSafeLoader", None) is not None:
            c_safe = median_ms(lambda: yaml.load(text, Loader=yaml.CSafeLoader), args.runs)
            print(f"  yaml CSafeLoader              {c_safe:8.2f} ms   bounded / CSafeLoader = {bounded / c_safe:.2f}")
    whole = median_ms(lambda: parse_task_text(task_text, "task.yaml"), args.runs)
    print(f"  whole task file to model (40 commands): {whole:.2f} ms")
    # The most work accepted text can ask for: a file just under the size limit.
    largest = TASK_HEAD + "commands:\n" + "  - echo hi\n" * ((1024 * 1024 - 64) // 12)
    most = median_ms(lambda: load_yaml(largest, "t"), max(3, args.runs // 5))
    print(f"\nlargest accepted file ({len(largest)} bytes, {largest.count(chr(10))} lines): {most:.0f} ms to load")


if __name__ == "__main__":
    main()
