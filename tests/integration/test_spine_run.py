"""A submitted task runs as a native container; emulated runs are refused; placement by arch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.support.cluster import write_task
from tests.support.registry import Registry

# qemu's handler is enabled before the module's cluster starts: the agent reads binfmt_misc when it
# starts, and the refusal test checks that the host reports what it could emulate. (binfmt_misc
# is the whole machine's; something may have unmounted it since the session began.)
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("qemu_aarch64")]

REFUSAL = "refused: image dstack-test/busybox:arm64 is linux/arm64, this host is linux/amd64; emulated runs are refused"


def test_task_output_streams_back_and_exit_code_is_submits(cluster: Cluster, tmp_path: Path) -> None:
    task = write_task(
        tmp_path / "task.yaml",
        """\
type: task
name: exits-three
image: dstack-test/busybox:amd64
env:
  GREETING: hello
commands:
  - echo "$GREETING from $(uname -m)"
  - echo "to stderr" >&2
  - exit 3
  - echo "never printed"
resources:
  cpu: 1..
  memory: 64MB..
""",
    )
    out = cluster.controller.ctl("submit", "-f", str(task))
    assert out.returncode == 3, out.stderr
    assert out.stdout == "hello from x86_64\n"
    assert "to stderr\n" in out.stderr
    assert "never printed" not in out.stdout + out.stderr
    assert "task exits-three failed: exited with code 3" in out.stderr

    logs = cluster.controller.logs("exits-three")
    assert logs.returncode == 0
    assert logs.stdout == "hello from x86_64\n"
    assert logs.stderr == "to stderr\n"
    row = cluster.controller.task("exits-three")
    assert (row["status"], row["exit"], row["host"]) == ("failed", 3, "local")


def test_successful_task_is_done_with_exit_zero_and_limits_applied(cluster: Cluster, tmp_path: Path) -> None:
    task = write_task(
        tmp_path / "task.yaml",
        """\
type: task
name: limited
image: dstack-test/busybox:amd64
commands:
  - cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
resources:
  cpu: 1
  memory: 96MB
""",
    )
    out = cluster.controller.ctl("submit", "-f", str(task))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(96 * 1024 * 1024)
    assert cluster.controller.task("limited")["status"] == "done"


def test_containers_carry_the_task_label(cluster: Cluster, tmp_path: Path, docker_engine) -> None:  # type: ignore[no-untyped-def]
    task = write_task(
        tmp_path / "task.yaml",
        """\
type: task
name: labelled
image: dstack-test/busybox:amd64
commands: ["sleep 30"]
""",
    )
    out = cluster.controller.ctl("submit", "-d", "-f", str(task))
    assert out.returncode == 0 and out.stdout.strip() == "labelled"
    row = cluster.controller.wait_status("labelled", "running")
    ps = cluster.controller.ctl_json("ps")
    task_id = next(t["id"] for t in ps if t["name"] == "labelled")
    client = docker_engine.client()
    containers = client.containers.list(filters={"label": f"dev.dstack-hybrid.task-id={task_id}"})
    assert len(containers) == 1 and containers[0].status == "running"
    assert row["host"] == "local"
    assert cluster.controller.ctl("stop", "--abort", "labelled").returncode == 0
    cluster.controller.wait_status("labelled", "stopped")


def test_arm64_image_is_refused_even_with_qemu_and_no_container_is_created(
    cluster: Cluster,
    tmp_path: Path,
    qemu_aarch64: bool,
    docker_engine,  # type: ignore[no-untyped-def]
) -> None:
    # qemu's handler is registered, so the engine *would* run this image (test_test_env proves it).
    assert Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").read_text().startswith("enabled")
    task = write_task(
        tmp_path / "task.yaml",
        """\
type: task
name: arm-image
image: dstack-test/busybox:arm64
commands: ["uname -m"]
""",
    )
    out = cluster.controller.ctl("submit", "-f", str(task))
    assert out.returncode == 1
    assert out.stdout == ""
    assert REFUSAL in out.stderr
    row = cluster.controller.task("arm-image")
    assert row["status"] == "pending"
    assert row["reason"].startswith(REFUSAL)
    assert "no live host with arch arm64: 1 host refused it" in row["reason"]
    client = docker_engine.client()
    assert client.containers.list(all=True, filters={"label": f"dev.dstack-hybrid.task-id={row['id']}"}) == []
    # The host reports that it could emulate arm64, and still refused.
    host = next(h for h in cluster.controller.ctl_json("hosts") if h["name"] == "local")
    assert "arm64" in host["emulators"]
    assert cluster.controller.ctl("stop", "arm-image").returncode == 0
    assert cluster.controller.task("arm-image")["status"] == "stopped"


def test_multi_arch_image_runs_its_native_variant(cluster: Cluster, tmp_path: Path, multiarch_image: str) -> None:
    task = write_task(
        tmp_path / "task.yaml",
        f"""\
type: task
name: multi
image: {multiarch_image}
commands: ["uname -m"]
""",
    )
    out = cluster.controller.ctl("submit", "-f", str(task))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "x86_64\n"


def test_arm_only_registry_image_stays_pending_without_reaching_a_host(
    cluster: Cluster, tmp_path: Path, multiarch_image: str, registry: Registry
) -> None:
    # The per-arch tag pushed beside the manifest list: the registry says it is linux/arm64 only.
    image = f"{registry.addr}/dstack-test/busybox:arm64"
    task = write_task(
        tmp_path / "task.yaml",
        f"""\
type: task
name: arm-from-registry
image: {image}
commands: ["uname -m"]
""",
    )
    out = cluster.controller.ctl("submit", "-d", "-f", str(task))
    assert out.returncode == 0
    row = cluster.controller.task("arm-from-registry")
    assert row["status"] == "pending"
    assert row["reason"] == "no live host with arch arm64: 1 host is amd64"
    assert "arm-from-registry" not in cluster.agent.log()  # never assigned, so never refused there
    cluster.controller.ctl("stop", "arm-from-registry")


def test_arm_cpu_request_stays_pending_with_the_reason(cluster: Cluster, tmp_path: Path) -> None:
    task = write_task(
        tmp_path / "task.yaml",
        """\
type: task
name: wants-arm
image: dstack-test/busybox:amd64
commands: ["uname -m"]
resources:
  cpu: arm:1..
""",
    )
    attached = cluster.controller.ctl("submit", "-f", str(task))
    assert attached.returncode == 1
    assert "task wants-arm is pending: no live host with arch arm64: 1 host is amd64" in attached.stderr
    row = cluster.controller.task("wants-arm")
    assert (row["status"], row["reason"], row["host"]) == (
        "pending",
        "no live host with arch arm64: 1 host is amd64",
        None,
    )
    assert cluster.controller.ctl("stop", "wants-arm").returncode == 0


def test_stop_sends_sigterm_then_the_task_is_stopped(cluster: Cluster, tmp_path: Path) -> None:
    task = write_task(
        tmp_path / "task.yaml",
        """\
type: task
name: stoppable
image: dstack-test/busybox:amd64
commands:
  - trap 'echo got TERM; exit 0' TERM; echo started; while true; do sleep 0.1; done
""",
    )
    assert cluster.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    cluster.controller.wait_status("stoppable", "running")
    from tests.support.cluster import wait_for

    wait_for("the task's first line", lambda: "started" in cluster.controller.logs("stoppable").stdout)
    out = cluster.controller.ctl("stop", "stoppable")
    assert out.returncode == 0 and out.stdout.strip() == "stopping stoppable"
    row = cluster.controller.wait_status("stoppable", "stopped", timeout=30)
    assert row["exit"] == 0  # the trap ran: SIGTERM came first, not SIGKILL
    assert cluster.controller.logs("stoppable").stdout == "started\ngot TERM\n"


def test_name_of_an_active_task_cannot_be_reused(cluster: Cluster, tmp_path: Path) -> None:
    task = write_task(
        tmp_path / "task.yaml",
        """\
type: task
name: twice
image: dstack-test/busybox:amd64
commands: ["sleep 30"]
""",
    )
    assert cluster.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    again = cluster.controller.ctl("submit", "-d", "-f", str(task))
    assert again.returncode == 2
    assert again.stderr.strip() == "dstackctl: task twice is still active: stop it or choose another name"
    cluster.controller.ctl("stop", "--abort", "twice")
    cluster.controller.wait_status("twice", "stopped")


def test_a_refused_task_moves_to_a_host_of_the_images_arch_and_never_loops(
    cluster: Cluster, tmp_path: Path, qemu_aarch64: bool
) -> None:
    # A second agent told by the uname seam that it is arm64 stands in for an arm64 server.
    # (It runs the arm64 image under this machine's qemu: only to prove the controller's retry.)
    from tests.support.cluster import AgentProcess

    # Its name sorts after "local", so on equal free capacity the amd64 host is tried first.
    arm = AgentProcess(cluster.controller, tmp_path / "arm-agent", cluster.controller.token(), "zz-arm-host")
    arm.env["DSTACK_AGENT_UNAME_M"] = "aarch64"
    arm.start_and_wait_online()
    try:
        task = write_task(
            tmp_path / "task.yaml",
            """\
type: task
name: finds-its-arch
image: dstack-test/busybox:arm64
commands: ["uname -m"]
""",
        )
        # No arch in the task and none from a registry (the mirror does not have it).
        out = cluster.controller.ctl("submit", "-f", str(task))
        assert out.returncode == 0, out.stderr
        assert out.stdout == "aarch64\n"
        assert cluster.controller.task("finds-its-arch")["host"] == "zz-arm-host"
        # It went to the amd64 host first, which refused it once; the controller then knew its arch.
        refusals = [ln for ln in cluster.controller.log().splitlines() if "refused task finds-its-arch" in ln]
        assert len(refusals) == 1 and "host local refused" in refusals[0]
    finally:
        arm.stop()
