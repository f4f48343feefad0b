"""A third of 1,000 simulated hosts gone under 200 running tasks (issue 14): every task of theirs
is retried elsewhere (retry on interruption) or failed with the host-lost reason, none stays
running, none runs twice. Gone twice over: killed with -9 (never back), and frozen with SIGSTOP
until declared lost, then woken (its old attempts come back to life and must be fenced at once).
What ran where is read from the simulators' own attempt logs (`--attempts-log`), not from the
controller that is under test. About 50 s each on a 2-core machine."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import grpc
import pytest
from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from tests.support.cluster import BIN, ControllerProcess, Process, wait_for

FACTS = Path(__file__).parents[1] / "fixtures" / "sim" / "host.json"

# Three simulator processes, each its own zone; 1,000 hosts in all (the figure).
SIMULATORS = {"a": 334, "b": 333, "c": 333}
TASKS = 200
# Long enough that all 200 run when the kill comes, short enough to end in the time box.
TASK_SECONDS = 25
GRACE_S, LOST_AFTER_S = 3, 6
# A frozen host that wakes: its stale attempts are released within this long (measured: 0.1 s;
# through a reconnect and Hello alone it took 3.3 s for 334 hosts).
FENCED_WITHIN_S = 1.5


def zones_of(i: int) -> list[str]:
    """Each task may run in two of the three zones: wherever it starts, one other zone is left
    for its retry. Placement breaks ties by host name, so classes 0 and 2 start in zone a."""
    names = ["z-a", "z-b", "z-c"]
    return [names[i % 3], names[(i + 1) % 3]]


def task_config(i: int) -> str:
    config: dict[str, Any] = {
        "type": "task",
        "name": f"t-{i:03d}",
        "image": "sim/none:1",
        "env": {"DSTACK_SIM_SECONDS": str(TASK_SECONDS)},
        # All of a host's 8 CPUs: two tasks never share a host, so a killed host's tasks go elsewhere.
        "resources": {"cpu": "8", "memory": "1GB.."},
        "availability_zones": zones_of(i),
    }
    if i % 2 == 0:
        config["retry"] = {"on_events": ["interruption"]}
    return json.dumps(config)


async def submit_all(controller: ControllerProcess, configs: list[str]) -> None:
    """Through the client API dstackctl uses: 200 dstackctl processes would take minutes here."""
    creds = grpc.ssl_channel_credentials(root_certificates=controller.ca_file.read_bytes())
    options = [("grpc.ssl_target_name_override", CONTROLLER_SAN)]
    metadata = (("authorization", f"Bearer {controller.admin_token}"),)
    async with grpc.aio.secure_channel(controller.address, creds, options=options) as channel:
        stub = pb_grpc.ClientServiceStub(channel)
        queue = list(configs)

        async def worker() -> None:
            while queue:
                await stub.Submit(pb.SubmitRequest(configuration_json=queue.pop()), metadata=metadata)

        await asyncio.gather(*(worker() for _ in range(8)))


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerProcess]:
    c = ControllerProcess(
        tmp_path / "controller",
        # submit_all sends 200 submits at once with one token: more than the default rate allows.
        extra=["--host-grace", f"{GRACE_S}s", "--host-lost-after", f"{LOST_AFTER_S}s", "--client-rate", "off"],
    )
    c.start()
    yield c
    c.stop()


def simulator(controller: ControllerProcess, tmp_path: Path, token: str, prefix: str, count: int) -> Process:
    (tmp_path / "no-agent.yaml").write_text("cloud: off\n")  # never this machine's /etc/dstack/agent.yaml
    args = [str(BIN / "dstack-agent"), "simulate", "--count", str(count), "--facts", str(FACTS)]
    args += ["--controller", controller.address, "--join-token", token, "--config", str(tmp_path / "no-agent.yaml")]
    args += ["--name-prefix", prefix, "--zones", f"z-{prefix}", "--attempts-log", str(attempts_path(tmp_path, prefix))]
    env = dict(os.environ, DSTACK_AGENT_RECONNECT_MAX_S="2")
    return Process(args, tmp_path / f"sim-{prefix}.log", env)


def attempts_path(tmp_path: Path, prefix: str) -> Path:
    return tmp_path / f"attempts-{prefix}.jsonl"


def read_attempts(path: Path) -> list[dict[str, Any]]:
    """Every line complete, even in the file of a process killed with -9."""
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), f"{path} ends in a partial line: {raw[-200:]!r}"
    return [json.loads(line) for line in raw.decode().splitlines()]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_a_third_of_1000_simulated_hosts_gone_under_200_tasks(
    controller: ControllerProcess, tmp_path: Path, how: str
) -> None:
    """kill: kill -9, they never come back. freeze: SIGSTOP until the controller has declared them
    lost and moved their tasks on, then SIGCONT: the old attempts come back to life and must be
    fenced (released) at once, and nothing they report may count."""
    t0 = time.monotonic()
    token = controller.token("--uses", str(sum(SIMULATORS.values())))
    sims = {p: simulator(controller, tmp_path, token, p, n) for p, n in SIMULATORS.items()}
    for sim in sims.values():
        sim.start()
    try:
        _run(controller, sims, tmp_path, t0, how)
    finally:
        for sim in sims.values():
            sim.send_signal(signal.SIGCONT)
            sim.stop(signal.SIGTERM, timeout=15)


def _online(controller: ControllerProcess, sims: dict[str, Process]) -> bool:
    for p, sim in sims.items():
        if not sim.running:
            raise AssertionError(f"simulator {p} exited:\n{sim.log()[-3000:]}")
    return all(f"connected {n}/{n} hosts" in sims[p].log() for p, n in SIMULATORS.items())


def _moved_on(controller: ControllerProcess, names: set[str]) -> bool:
    """Every task of the gone hosts failed, or its attempt 2 runs elsewhere."""
    tasks = [t for t in controller.ctl_json("ps", "-a") if t["name"] in names]
    return all(t["status"] == "failed" or (t["attempt"] == 2 and t["status"] in ("running", "done")) for t in tasks)


def _run(controller: ControllerProcess, sims: dict[str, Process], tmp_path: Path, t0: float, how: str) -> None:
    wait_for("1,000 simulated hosts connected", lambda: _online(controller, sims), timeout=90, interval=1)
    online = [h for h in controller.ctl_json("hosts") if h["status"] == "online"]
    assert len(online) == sum(SIMULATORS.values())
    t_online = time.monotonic()

    asyncio.run(submit_all(controller, [task_config(i) for i in range(TASKS)]))
    wait_for(
        "all 200 tasks running",
        lambda: sum(t["status"] == "running" for t in controller.ctl_json("ps", "-a")) == TASKS,
        timeout=TASK_SECONDS - 10,
        interval=0.5,
    )
    before = {t["name"]: t for t in controller.ctl_json("ps", "-a")}
    assert controller.proc is not None
    cpu_before_kill = cpu_seconds(controller.proc.pid)

    # kill -9 (or freeze) the simulator holding zone a: a third of the hosts, and most of the tasks.
    killed = "a"
    assert sims[killed].proc is not None
    os.kill(sims[killed].proc.pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
    kill_at = time.time()
    on_killed = {name for name, t in before.items() if t["host"].startswith(f"{killed}-")}
    with_retry = {name for name in on_killed if int(name[2:]) % 2 == 0}
    assert len(with_retry) > 20 and len(on_killed - with_retry) > 20, sorted(on_killed)
    assert len(on_killed) < TASKS  # some tasks ran on the surviving hosts, untouched
    resume_at = None
    if how == "kill":
        sims[killed].proc.wait(10)
    else:
        wait_for("the frozen hosts' tasks moved on", lambda: _moved_on(controller, on_killed), timeout=30, interval=1)
        os.kill(sims[killed].proc.pid, signal.SIGCONT)
        resume_at = time.time()

    def settled() -> list[dict[str, Any]] | None:
        tasks = controller.ctl_json("ps", "-a")
        return tasks if all(t["status"] in ("done", "failed") for t in tasks) else None

    # Lost after LOST_AFTER_S, then attempt 2 runs TASK_SECONDS; whatever stays running fails here.
    final = {t["name"]: t for t in wait_for("every task done or failed", settled, timeout=60, interval=1)}
    elapsed, cpu = time.monotonic() - t0, cpu_seconds(controller.proc.pid)
    print(
        f"\n1,000 hosts online after {t_online - t0:.1f}s; kill at {kill_at:.1f}; everything settled after "
        f"{elapsed:.1f}s in all; controller CPU {cpu_before_kill:.1f}s before the kill, {cpu:.1f}s in all; "
        f"{len(on_killed)} tasks on the {how} hosts, {len(with_retry)} with retry"
    )
    assert set(final) == {f"t-{i:03d}" for i in range(TASKS)}

    # The hosts' side: every attempt each simulator ran, killed one included.
    events = [e for p in SIMULATORS for e in read_attempts(attempts_path(tmp_path, p))]
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    for e in events:
        key = (e["task_id"], e["attempt"])
        run = runs.setdefault(key, {"host": e["host"], "start": None, "end": None, "exit": None})
        # One attempt, one host, one start: a second start would be a second live copy of it.
        assert run["host"] == e["host"], f"attempt {key} ran on {run['host']} and on {e['host']}"
        if e["event"] == "started":
            assert run["start"] is None, f"attempt {key} started twice"
            run["start"] = e["at"]
        elif run["end"] is None:
            run["end"], run["exit"] = e["at"], e["exit_code"]
    tails = []
    for key, run in runs.items():
        assert run["start"] is not None, f"attempt {key}: an end without a start"
        if run["end"] is None:
            # Only the killed process's attempts may lack an end: the kill is their end.
            assert how == "kill" and run["host"].startswith(f"{killed}-"), f"attempt {key} on {run['host']} never ended"
            run["end"] = kill_at
        elif resume_at is not None and run["start"] < kill_at and run["host"].startswith(f"{killed}-"):
            # A frozen attempt ran again from SIGCONT until the controller released it: that tail
            # is the only time two attempts of a task may live, and it must be short.
            tails.append(run["end"] - resume_at)
            assert run["end"] - resume_at <= FENCED_WITHIN_S, (key, run, resume_at)
            # Stopped by the Release while it still ran (superseded), not at its own end.
            assert run["exit"] is None, (key, run)
            run["end"] = kill_at  # what overlaps below is then a second start while it really ran
    by_task: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for (task_id, attempt), run in runs.items():
        by_task[task_id].append((attempt, run))

    for name, t in final.items():
        attempts = sorted(by_task[t["id"]], key=lambda a: a[0])
        assert [a for a, _ in attempts][:1] == [1], (name, attempts)
        # Never two live attempts: one attempt ends before the next one starts, on whatever host.
        for (_, first), (_, second) in pairwise(attempts):
            assert first["end"] <= second["start"], (name, attempts)
        first_host = attempts[0][1]["host"]
        assert first_host == before[name]["host"]
        if name not in on_killed:
            assert (t["status"], t["exit"], t["attempt"], len(attempts)) == ("done", 0, 1, 1), (t, attempts)
            assert t["host"] == first_host
        elif name in with_retry:
            # Retried once, elsewhere, and ran to its end there.
            assert [a for a, _ in attempts] == [1, 2], (name, attempts)
            second = attempts[1][1]
            assert (t["status"], t["exit"], t["attempt"]) == ("done", 0, 2), t
            assert t["host"] == second["host"] and not second["host"].startswith(f"{killed}-"), (t, second)
            assert second["exit"] == 0 and second["start"] >= kill_at + GRACE_S, second
        else:
            assert [a for a, _ in attempts] == [1], (name, attempts)
            assert t["status"] == "failed", t
            assert re.fullmatch(rf"host {first_host} lost \(last heard \d\d:\d\d:\d\d\)", t["reason"]), t

    if tails:
        print(f"frozen attempts released {min(tails):.2f}..{max(tails):.2f}s after SIGCONT")
    # The killed hosts are lost, the others online; nothing is still held on any of them.
    hosts = {h["name"]: h for h in controller.ctl_json("hosts")}
    for name, h in hosts.items():
        gone = how == "kill" and name.startswith(f"{killed}-")
        assert h["status"] == ("offline" if gone else "online"), h
        assert h["cpu_used"] == 0, h


def test_a_bad_attempts_log_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    for value, words in (("", "needs a file name"), (str(tmp_path / "no-such-dir" / "a.jsonl"), "cannot open")):
        out = subprocess.run(
            [str(BIN / "dstack-agent"), "simulate", "--count", "1", "--facts", str(FACTS), "--join-token",
             "dstack1." + "0" * 64 + ".id.secret", "--controller", "127.0.0.1:1", "--attempts-log", value],
            capture_output=True,
            text=True,
            timeout=30,
        )  # fmt: skip
        assert out.returncode == 2, out.stderr
        assert words in out.stderr and "--attempts-log" in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
