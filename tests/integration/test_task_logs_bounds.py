"""Task logs through real processes: the per-task cap (a small --log-cap), --tail/--since/--timestamps,
binary output round-tripping byte-exact with --raw while the default view escapes control sequences,
and the controller's memory and responsiveness while four clients read a big log at once."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from controller.cli.channel import open_channel
from tests.integration.conftest import Cluster, stop_cluster
from tests.support.cluster import BIN, AgentProcess, ControllerProcess, wait_for, write_task
from tests.support.dockerd import DockerEngine
from tests.support.registry import Registry

pytestmark = pytest.mark.docker

CAP = 64 * 1024


def start(root: Path, registry: Registry, *extra: str) -> Cluster:
    controller = ControllerProcess(root / "controller", registry_mirror=f"http://{registry.addr}", extra=list(extra))
    controller.start()
    agent = AgentProcess(controller, root / "agent", controller.token(), "local")
    agent.start_and_wait_online()
    return Cluster(controller, agent, root)


@pytest.fixture(scope="module")
def capped(
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: DockerEngine,
    busybox_images: dict[str, str],
    registry: Registry,
) -> Iterator[Cluster]:
    c = start(tmp_path_factory.mktemp("capped"), registry, "--log-cap", "64KiB")
    yield c
    stop_cluster(c)


def ctl_bytes(controller: ControllerProcess, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(
        os.environ,
        DSTACK_CONTROLLER=controller.address,
        DSTACK_TOKEN=controller.admin_token,
        DSTACK_CA_FILE=str(controller.ca_file),
        HOME=str(controller.data_dir.parent),
    )
    return subprocess.run([str(BIN / "dstackctl"), *args], capture_output=True, env=env, timeout=300)


def run_task(c: Cluster, path: Path, name: str, commands: list[str], volumes: list[str] | None = None) -> None:
    text = f"type: task\nname: {name}\nimage: dstack-test/busybox:amd64\ncommands:\n"
    text += "".join(f"  - {c!r}\n" for c in commands)
    if volumes:
        text += "volumes:\n" + "".join(f"  - {v}\n" for v in volumes)
    out = c.controller.ctl("submit", "-d", "-f", str(write_task(path, text)))
    assert out.returncode == 0, out.stderr
    c.controller.wait_status(name, "done", timeout=240)


def test_binary_output_round_trips_exactly_with_raw(capped: Cluster, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    os.chmod(out_dir, 0o777)
    run_task(capped, tmp_path / "t.yaml", "binary", ["head -c 4096 /dev/urandom | tee /out/b"], [f"{out_dir}:/out"])
    written = (out_dir / "b").read_bytes()
    assert len(written) == 4096
    # `done` can come a moment before the last lines are stored (the agent reports the exit and
    # its log pump separately): wait for the whole length, then compare every byte.
    raw = wait_for(
        "the whole log", lambda: (r := ctl_bytes(capped.controller, "logs", "--raw", "binary")).stdout[4095:] and r
    )
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == written
    shown = ctl_bytes(capped.controller, "logs", "binary")
    assert shown.returncode == 0
    text = shown.stdout.decode("utf-8")  # not-UTF-8 bytes are shown as \xNN
    assert not [ch for ch in text if (ord(ch) < 0x20 and ch not in "\n\t\r") or 0x7F <= ord(ch) <= 0x9F]


def test_the_terminal_view_escapes_control_sequences(capped: Cluster, tmp_path: Path) -> None:
    run_task(capped, tmp_path / "t.yaml", "hostile", ["printf 'a\\033]0;pwned\\007b\\033[2Jc\\n'"])
    shown = ctl_bytes(capped.controller, "logs", "hostile")
    assert shown.stdout == b"a\\x1b]0;pwned\\x07b\\x1b[2Jc\n"
    raw = ctl_bytes(capped.controller, "logs", "--raw", "hostile")
    assert raw.stdout == b"a\x1b]0;pwned\x07b\x1b[2Jc\n"


def test_the_cap_keeps_the_newest_lines_and_says_how_many_were_dropped(capped: Cluster, tmp_path: Path) -> None:
    db = capped.controller.data_dir / "controller.db"
    run_task(capped, tmp_path / "t.yaml", "chatty", ["seq 1 30000"])  # 169 KB through a 64 KiB cap
    out = capped.controller.logs("chatty")
    assert out.returncode == 0, out.stderr
    numbers = [int(n) for n in out.stdout.split()]
    assert len(out.stdout.encode()) <= CAP
    assert numbers == list(range(numbers[0], 30001))  # the newest lines, none missing between
    dropped = numbers[0] - 1
    assert out.stderr == f"dstackctl: {dropped} lines dropped (log cap 64 KiB)\n"
    # The database does not grow with what the task writes: a second, bigger log fits the same pages.
    size_after_first = db.stat().st_size
    # 8 MB without a newline: Docker hands it over in 16 KiB pieces.
    run_task(capped, tmp_path / "t2.yaml", "chattier", ["head -c 8000000 /dev/zero | tr '\\0' x"])
    assert len(capped.controller.logs("chattier").stdout) <= CAP
    grown = db.stat().st_size - size_after_first
    print(f"controller.db: {size_after_first} bytes after 169 KB of log, +{grown} after another 8 MB (cap 64 KiB)")
    assert grown < 2 * CAP


def test_tail_since_and_timestamps(capped: Cluster, tmp_path: Path) -> None:
    run_task(capped, tmp_path / "t.yaml", "paced", ["echo early; echo early2 >&2; sleep 2; echo late; echo last"])
    tail = capped.controller.ctl("logs", "--tail", "2", "paced")
    assert (tail.returncode, tail.stdout, tail.stderr) == (0, "late\nlast\n", "")
    assert capped.controller.ctl("logs", "--tail", "0", "paced").stdout == ""
    stamped = capped.controller.ctl("logs", "--timestamps", "paced")
    stamps = re.findall(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (\w+)$", stamped.stdout, re.M)
    assert [w for _, w in stamps] == ["early", "late", "last"]
    since = capped.controller.ctl("logs", "--since", stamps[1][0], "paced")
    assert (since.stdout, since.stderr) == ("late\nlast\n", "")
    assert capped.controller.ctl("logs", "--since", "1h", "paced").stdout == "early\nlate\nlast\n"
    bad = capped.controller.ctl("logs", "--since", "yesterday", "paced")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--since" in bad.stderr
    negative = capped.controller.ctl("logs", "--tail", "-1", "paced")
    assert negative.returncode == 2 and "--tail" in negative.stderr


def rss_bytes(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_four_readers_of_a_big_log_keep_memory_flat_and_calls_answering(
    tmp_path: Path, docker_engine: DockerEngine, busybox_images: dict[str, str], registry: Registry
) -> None:
    c = start(tmp_path, registry)  # the default cap, 100 MiB
    try:
        # 300 MB in Docker's 16 KiB pieces; the controller keeps the last 100 MiB.
        began = time.monotonic()
        run_task(c, tmp_path / "t.yaml", "big", ["head -c 300000000 /dev/zero | tr '\\0' x"])
        db = c.controller.data_dir / "controller.db"
        print(
            f"300 MB task log stored in {time.monotonic() - began:.0f} s; "
            f"controller.db {db.stat().st_size / 2**20:.0f} MiB"
        )
        pid = c.controller.proc.pid  # type: ignore[union-attr]
        before = rss_bytes(pid)
        peak, latencies = before, []
        readers = [
            subprocess.Popen(
                [str(BIN / "dstackctl"), "logs", "--raw", "big"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=dict(
                    os.environ,
                    DSTACK_CONTROLLER=c.controller.address,
                    DSTACK_TOKEN=c.controller.admin_token,
                    DSTACK_CA_FILE=str(c.controller.ca_file),
                    HOME=str(tmp_path),
                ),
            )
            for _ in range(4)
        ]
        counts = [0] * 4

        def drain(i: int) -> None:
            assert readers[i].stdout is not None
            while chunk := readers[i].stdout.read(1 << 20):
                counts[i] += len(chunk)

        drains = [threading.Thread(target=drain, args=(i,)) for i in range(4)]
        for t in drains:
            t.start()
        channel = open_channel(c.controller.address, c.controller.ca_file.read_bytes())
        stub = pb_grpc.ClientServiceStub(channel)
        metadata = (("authorization", f"Bearer {c.controller.admin_token}"),)
        try:
            while any(r.poll() is None for r in readers):
                peak = max(peak, rss_bytes(pid))
                started = time.monotonic()
                stub.ListHosts(pb.ListHostsRequest(), metadata=metadata, timeout=10)
                latencies.append(time.monotonic() - started)
                time.sleep(0.2)
        except grpc.RpcError as exc:
            raise AssertionError(f"ListHosts failed during the reads: {exc}") from None
        finally:
            channel.close()
        for t in drains:
            t.join()
        assert all(r.wait() == 0 for r in readers)
        print(
            f"controller RSS {before / 2**20:.0f} MiB before, peak {peak / 2**20:.0f} MiB during four reads of "
            f"{counts[0] / 1e6:.0f} MB each; ListHosts max {max(latencies) * 1000:.0f} ms over {len(latencies)} calls"
        )
        assert all(n == counts[0] for n in counts) and 100 * 1024**2 - 2**20 <= counts[0] <= 100 * 1024**2
        assert peak - before < 150 * 2**20  # each reader holds a page (1 MiB) and grpc's buffers, not the log
        assert max(latencies) < 0.5
    finally:
        stop_cluster(c)


def test_retention_deletes_a_finished_tasks_log(
    tmp_path: Path, docker_engine: DockerEngine, busybox_images: dict[str, str], registry: Registry
) -> None:
    c = start(tmp_path, registry, "--log-retention", "3s")
    try:
        run_task(c, tmp_path / "t.yaml", "brief", ["echo kept for a while"])
        assert c.controller.logs("brief").stdout == "kept for a while\n"
        wait_for("the log to be purged", lambda: c.controller.logs("brief").stdout == "", timeout=30)
        assert c.controller.task("brief")["status"] == "done"  # the task itself stays
        assert "deleted the logs of 1 task(s)" in c.controller.log()
    finally:
        stop_cluster(c)


def test_bad_log_settings_are_one_sentence_and_exit_2(tmp_path: Path) -> None:
    for flag, value in (("--log-cap", "lots"), ("--log-retention", "forever")):
        out = subprocess.run(
            [str(BIN / "dstack-controller"), "serve", "--data-dir", str(tmp_path / "d"), flag, value],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2 and flag.lstrip("-").replace("-", "_") in out.stderr.replace("-", "_")
        assert "Traceback" not in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr
