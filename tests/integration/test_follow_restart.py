"""An attached `dstackctl submit` and `dstackctl logs -f` outlive a controller restart: they
reconnect, resume at the last line they printed, and exit with the task's exit code."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from tests.integration.conftest import Cluster
from tests.support.cluster import BIN, ControllerProcess, wait_for, write_task

pytestmark = pytest.mark.docker

LINES = 75  # one line per stream every 0.2 s: about 15 s of output
COUNTING_TASK = """\
type: task
name: {name}
image: dstack-test/busybox:amd64
commands:
  - for i in $(seq 1 {lines}); do echo "line $i"; echo "err $i" >&2; sleep 0.2; done
  - exit 7
"""


def ctl_env(controller: ControllerProcess, **extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        DSTACK_CONTROLLER=controller.address,
        DSTACK_TOKEN=controller.admin_token,
        DSTACK_CA_FILE=str(controller.ca_file),
        HOME=str(controller.data_dir.parent),
    )
    env.update(extra)
    return env


class Attached:
    """A dstackctl process whose stdout and stderr go to files, read while it runs."""

    def __init__(self, tmp: Path, args: list[str], env: dict[str, str]) -> None:
        self.out_path, self.err_path = tmp / "ctl.out", tmp / "ctl.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([str(BIN / "dstackctl"), *args], stdout=out, stderr=err, env=env)

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"dstackctl still running after {timeout:.0f}s; stderr:\n{self.stderr()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def numbered(text: str, prefix: str) -> list[str]:
    """The task's own lines on one of dstackctl's outputs, leaving out dstackctl's messages."""
    return [line for line in text.splitlines() if re.fullmatch(rf"{prefix} \d+", line)]


def restart(controller: ControllerProcess, how: signal.Signals) -> None:
    """Stops the controller by `how` and starts it again on the same port and data dir."""
    controller.stop(how)
    time.sleep(1.0)  # long enough that the client sees the controller gone
    controller.start()


def assert_complete_run(attached: Attached, rc: int) -> None:
    out, err = attached.stdout(), attached.stderr()
    assert numbered(out, "line") == [f"line {i}" for i in range(1, LINES + 1)], err
    assert out == "".join(f"line {i}\n" for i in range(1, LINES + 1))  # nothing else on stdout
    assert numbered(err, "err") == [f"err {i}" for i in range(1, LINES + 1)], err
    assert rc == 7, err
    assert "Traceback" not in err


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_submit_outlives_a_controller_restart_and_exits_with_the_task_code(
    fresh_cluster: Cluster, tmp_path: Path, how: signal.Signals
) -> None:
    c = fresh_cluster
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="attached", lines=LINES))
    attached = Attached(tmp_path, ["submit", "-f", str(task)], ctl_env(c.controller))
    try:
        wait_for("lines on the attached client", lambda: len(numbered(attached.stdout(), "line")) >= 10)
        restart(c.controller, how)
        rc = attached.wait(timeout=120)
    finally:
        attached.stop()
    assert_complete_run(attached, rc)
    err = attached.stderr()
    # Said once, not once per try.
    assert err.count("is unreachable") == 1, err
    assert c.controller.task("attached")["exit"] == 7


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_logs_follow_outlives_a_controller_restart_and_exits_with_the_task_code(
    fresh_cluster: Cluster, tmp_path: Path, how: signal.Signals
) -> None:
    c = fresh_cluster
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="followed", lines=LINES))
    assert c.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    attached = Attached(tmp_path, ["logs", "followed", "-f"], ctl_env(c.controller))
    try:
        wait_for("lines on the following client", lambda: len(numbered(attached.stdout(), "line")) >= 10)
        restart(c.controller, how)
        rc = attached.wait(timeout=120)
    finally:
        attached.stop()
    assert_complete_run(attached, rc)


SHORT = 30  # about 6 s of output


def finish(controller: ControllerProcess, name: str) -> None:
    """Brings the controller back so the task ends and its container is removed."""
    if not controller.running:
        controller.start()
    assert controller.wait_status(name, "failed", timeout=60)["exit"] == 7


def test_a_follower_gives_up_after_the_reconnect_timeout_and_ctrl_c_detaches_while_retrying(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    c = fresh_cluster
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="orphan", lines=SHORT))
    assert c.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    patient = Attached(tmp_path / "a", ["logs", "orphan", "-f", "--reconnect-timeout", "3s"], ctl_env(c.controller))
    # The environment sets the same limit for whoever does not pass the flag.
    detaching = Attached(tmp_path / "b", ["logs", "orphan", "-f"], ctl_env(c.controller, DSTACK_RECONNECT_TIMEOUT="1h"))
    try:
        for follower in (patient, detaching):
            wait_for("lines on a follower", lambda f=follower: len(numbered(f.stdout(), "line")) >= 3)
        # Measured from the signal, not from the controller's exit: a stopping controller
        # ends its streams before it exits, and the client's clock starts right then.
        gone = time.monotonic()
        c.controller.stop(signal.SIGTERM)
        rc = patient.wait(timeout=30)
        waited = time.monotonic() - gone
        wait_for("the retry notice", lambda: "is unreachable" in detaching.stderr())
        assert detaching.proc.poll() is None  # an hour's limit: still trying
        detaching.proc.send_signal(signal.SIGINT)
        detached_rc = detaching.wait(timeout=10)
    finally:
        patient.stop()
        detaching.stop()
    err = patient.stderr()
    assert rc == 1, err
    assert 3 <= waited < 15, err
    assert err.count("is unreachable") == 1, err
    assert "what became of task orphan is unknown here: see `dstackctl ps -a`" in err
    assert "Traceback" not in err
    assert detached_rc == 130, detaching.stderr()
    assert "detached; task orphan keeps running" in detaching.stderr()
    assert "Traceback" not in detaching.stderr()
    finish(c.controller, "orphan")


def test_a_refused_token_after_the_restart_is_not_retried(fresh_cluster: Cluster, tmp_path: Path) -> None:
    c = fresh_cluster
    token = c.controller.token("--kind", "api")
    token_id = token.split(".")[1]
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="revoked", lines=SHORT))
    assert c.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    follower = Attached(tmp_path, ["logs", "revoked", "-f"], ctl_env(c.controller, DSTACK_TOKEN=token))
    try:
        wait_for("lines on the follower", lambda: len(numbered(follower.stdout(), "line")) >= 3)
        c.controller.stop(signal.SIGTERM)
        subprocess.run(
            [str(BIN / "dstack-controller"), "token", "revoke", "--data-dir", str(c.controller.data_dir), token_id],
            check=True,
            capture_output=True,
        )
        c.controller.start()
        back = time.monotonic()
        rc = follower.wait(timeout=30)
        answered_after = time.monotonic() - back
    finally:
        follower.stop()
    err = follower.stderr()
    assert rc == 2, err
    assert answered_after < 10, err  # the first reconnect that gets an answer ends it (backoff is capped at 5 s)
    assert err.count("is unreachable") == 1, err
    assert "reconnected" not in err
    assert "Traceback" not in err
    finish(c.controller, "revoked")


def test_submit_with_a_controller_list_skips_an_address_that_never_answers(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    c = fresh_cluster
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
        task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="listed", lines=LINES))
        env = ctl_env(c.controller, DSTACK_CONTROLLER=f"{dead},{c.controller.address}")
        started = time.monotonic()
        listing = subprocess.run([str(BIN / "dstackctl"), "ps"], env=env, capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0, listing.stderr
        assert time.monotonic() - started < 4  # a refused connection moves on at once
        attached = Attached(tmp_path, ["submit", "-f", str(task)], env)
        try:
            wait_for("lines on the attached client", lambda: len(numbered(attached.stdout(), "line")) >= 10)
            restart(c.controller, signal.SIGTERM)  # the reconnects go round the list, dead one included
            rc = attached.wait(timeout=120)
        finally:
            attached.stop()
    assert_complete_run(attached, rc)


def stream_logs(controller: ControllerProcess, request: pb.StreamLogsRequest) -> list[pb.LogEvent]:
    """StreamLogs over TLS as any gRPC client would call it, with the admin token."""
    credentials = grpc.ssl_channel_credentials(root_certificates=controller.ca_file.read_bytes())
    options = [("grpc.ssl_target_name_override", CONTROLLER_SAN)]
    with grpc.secure_channel(controller.address, credentials, options=options) as channel:
        stub = pb_grpc.ClientServiceStub(channel)
        metadata = (("authorization", f"Bearer {controller.admin_token}"),)
        return list(stub.StreamLogs(request, metadata=metadata, timeout=30))


def test_the_controller_resumes_each_stream_at_the_offset_the_client_gives(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="resumed", lines=10).replace("0.2", "0"))
    assert c.controller.ctl("submit", "-f", str(task)).returncode == 7
    events = stream_logs(c.controller, pb.StreamLogsRequest(name="resumed", stdout_offset=4, stderr_offset=9))
    lines = [(e.line.stream, e.line.seq, e.line.data) for e in events if e.HasField("line")]
    assert [(seq, data) for stream, seq, data in lines if stream == pb.LOG_STREAM_STDOUT] == [
        (i - 1, f"line {i}\n".encode()) for i in range(5, 11)
    ]
    assert [(seq, data) for stream, seq, data in lines if stream == pb.LOG_STREAM_STDERR] == [(9, b"err 10\n")]
    # Following a finished task from its end: no line, then the final status.
    events = stream_logs(
        c.controller, pb.StreamLogsRequest(name="resumed", follow=True, stdout_offset=10, stderr_offset=10)
    )
    assert [e.WhichOneof("body") for e in events] == ["status"]
    assert (events[0].status.status, events[0].status.exit_code) == ("failed", 7)
    with pytest.raises(grpc.RpcError) as refused:
        stream_logs(c.controller, pb.StreamLogsRequest(name="resumed", stdout_offset=-1))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_bad_reconnect_settings_are_refused_before_anything_is_submitted(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="never-submitted", lines=1))
    cases = [
        (["submit", "-f", str(task), "--reconnect-timeout", "soon"], {}, "--reconnect-timeout: invalid duration"),
        (["submit", "-f", str(task), "--reconnect-timeout", "0"], {}, "must be positive"),
        (["submit", "-d", "-f", str(task), "--reconnect-timeout", "1m"], {}, "-d returns at once"),
        (["submit", "-f", str(task)], {"DSTACK_RECONNECT_TIMEOUT": "-5m"}, "DSTACK_RECONNECT_TIMEOUT: invalid"),
        (["logs", "whatever", "--reconnect-timeout", "1m"], {}, "--reconnect-timeout is for logs -f"),
        (["submit", "-f", str(task)], {"DSTACK_CONTROLLER": "127.0.0.1:port"}, "is not HOST or HOST:PORT"),
    ]
    for args, extra, says in cases:
        out = subprocess.run(
            [str(BIN / "dstackctl"), *args], env=ctl_env(c.controller, **extra), capture_output=True, text=True
        )
        assert (out.returncode, out.stdout) == (2, ""), (args, out.stderr)
        assert says in out.stderr and out.stderr.count("\n") == 1, (args, out.stderr)
    assert all(t["name"] != "never-submitted" for t in c.controller.ctl_json("ps", "-a"))
    # A list where nothing answers is a failure to connect (exit 1), said in one sentence.
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        nowhere = ",".join(f"127.0.0.1:{s.getsockname()[1]}" for s in (a, b))
        out = subprocess.run(
            [str(BIN / "dstackctl"), "ps"],
            env=ctl_env(c.controller, DSTACK_CONTROLLER=nowhere),
            capture_output=True,
            text=True,
        )
    assert out.returncode == 1 and out.stderr == f"dstackctl: no controller answers at {nowhere.replace(',', ', ')}\n"
