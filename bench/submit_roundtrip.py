"""End-to-end time of `dstackctl submit` for a one-line task, through the real programs:
submit -> placement -> assignment over the agent's stream -> container create/start ->
log line back -> exit code back. Uses this machine's Docker engine (started if none answers).

    .venv/bin/python bench/submit_roundtrip.py [--tasks 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test harness drives the real programs

from tests.support.cluster import AgentProcess, ControllerProcess, write_task
from tests.support.dockerd import ensure_docker
from tests.support.images import build_busybox_images


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=10)
    args = p.parse_args()
    engine = ensure_docker()
    os.environ["DOCKER_HOST"] = engine.host
    build_busybox_images(engine)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        controller = ControllerProcess(root / "controller")
        controller.start()
        agent = AgentProcess(controller, root / "agent", controller.token(), "bench")
        try:
            agent.start_and_wait_online()
            task = write_task(root / "t.yaml", "type: task\nimage: dstack-test/busybox:amd64\ncommands: [echo hi]\n")
            times = []
            for i in range(args.tasks):
                t0 = time.perf_counter()
                out = controller.ctl("submit", "-f", str(task), "--name", f"bench-{i}")
                times.append(time.perf_counter() - t0)
                assert out.returncode == 0 and out.stdout == "hi\n", out.stderr
            print(
                f"submit round trip over {args.tasks} tasks: median {statistics.median(times) * 1000:.0f} ms, "
                f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
            )
        finally:
            agent.stop()
            controller.stop()
            engine.stop()


if __name__ == "__main__":
    main()
