"""What one API token may ask, through the real programs: a controller with a low --client-rate
refuses a burst of `dstackctl ps` with one sentence while another token still works, a controller
whose config file caps pending tasks per token refuses the next submit while another token still
submits, and the flags' bad values and `token create --kind api --uses/--fleet` are refused.

Only controllers run (no agent, no Docker): with no host registered every task stays pending.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from tests.support.cluster import BIN, ControllerProcess, write_task

RATE_REFUSAL = (
    "dstackctl: this API token is over the controller's rate limit of 1/m with bursts of 3 calls: try again in "
)
PENDING_REFUSAL = (
    "dstackctl: this API token already has 2 tasks pending, the controller's cap of 2 per token "
    "(--max-pending-per-token): stop some or wait until they start, then submit again\n"
)


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    """Three calls per token, then one a minute: the test never waits for a refill."""
    c = ControllerProcess(
        tmp_path_factory.mktemp("rate") / "controller", extra=["--client-rate", "1/m", "--client-burst", "3"]
    )
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    root = tmp_path_factory.mktemp("pending")
    config = root / "controller.yaml"
    config.write_text("max_pending_per_token: 2\n")
    c = ControllerProcess(root / "controller", extra=["--config", str(config)])
    c.start()
    yield c
    c.stop()


def test_a_burst_of_ps_past_the_rate_gets_the_sentence(slow: ControllerProcess) -> None:
    token = slow.token("--kind", "api")
    answers = [slow.ctl("ps", token=token) for _ in range(5)]
    assert [a.returncode for a in answers] == [0, 0, 0, 1, 1], [a.stderr for a in answers]
    for refused in answers[3:]:
        assert refused.stderr.startswith(RATE_REFUSAL), refused.stderr
        assert len(refused.stderr.splitlines()) == 1 and "Traceback" not in refused.stderr
    # Another token has its own calls: the first one's loop does not lock everyone out.
    assert slow.ctl("ps", token=slow.token("--kind", "api")).returncode == 0


def test_a_refused_call_does_nothing(slow: ControllerProcess, tmp_path: Path) -> None:
    token = slow.token("--kind", "api")
    for _ in range(3):
        assert slow.ctl("hosts", token=token).returncode == 0
    task = write_task(tmp_path / "task.yaml", "type: task\nname: over-rate\nimage: ubuntu:24.04\n")
    out = slow.ctl("submit", "-d", "-f", str(task), token=token)
    assert out.returncode == 1 and out.stderr.startswith(RATE_REFUSAL), out.stderr
    assert "over-rate" not in slow.ctl("ps", "-a").stdout  # the admin token's own calls


def test_a_log_stream_is_one_call(slow: ControllerProcess, tmp_path: Path) -> None:
    """Three calls: a submit and a log stream that outlasts any refill, then one more is refused."""
    token = slow.token("--kind", "api", "--role", "user")
    task = write_task(tmp_path / "task.yaml", "type: task\nname: streamed\nimage: ubuntu:24.04\n")
    assert slow.ctl("submit", "-d", "-f", str(task), token=token).returncode == 0
    credentials = grpc.ssl_channel_credentials(root_certificates=slow.ca_file.read_bytes())
    options = [("grpc.ssl_target_name_override", CONTROLLER_SAN)]
    with grpc.secure_channel(slow.address, credentials, options=options) as channel:
        stub = pb_grpc.ClientServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        stream = stub.StreamLogs(pb.StreamLogsRequest(name="streamed", follow=True), metadata=metadata, timeout=30)
        first = next(stream)  # the task's status: the stream is open and admitted
        assert first.HasField("status")
        assert slow.ctl("ps", token=token).returncode == 0  # the third call
        stream.cancel()
    out = slow.ctl("ps", token=token)
    assert out.returncode == 1 and out.stderr.startswith(RATE_REFUSAL), out.stderr


def submit(c: ControllerProcess, tmp_path: Path, name: str, token: str) -> subprocess.CompletedProcess[str]:
    task = write_task(tmp_path / f"{name}.yaml", f"type: task\nname: {name}\nimage: ubuntu:24.04\n")
    return c.ctl("submit", "-d", "-f", str(task), token=token)


def test_pending_tasks_per_token_are_capped(capped: ControllerProcess, tmp_path: Path) -> None:
    alice, bob = capped.token("--kind", "api"), capped.token("--kind", "api")
    for name in ("alice-1", "alice-2"):
        assert submit(capped, tmp_path, name, alice).returncode == 0
        assert capped.task(name)["status"] == "pending"
    out = submit(capped, tmp_path, "alice-3", alice)
    assert (out.returncode, out.stderr) == (1, PENDING_REFUSAL)
    assert "alice-3" not in [t["name"] for t in capped.ctl_json("ps", "-a")]
    # Another token's queue is its own.
    assert submit(capped, tmp_path, "bob-1", bob).returncode == 0
    # A task that stops waiting frees its place.
    assert capped.ctl("stop", "alice-1", token=alice).returncode == 0
    assert submit(capped, tmp_path, "alice-3", alice).returncode == 0


def serve_refusal(tmp_path: Path, *flags: str) -> str:
    data_dir = tmp_path / "never"
    out = subprocess.run(
        [str(BIN / "dstack-controller"), "serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:1", *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2, out.stderr
    assert not data_dir.exists()  # refused before anything was made
    return out.stderr


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--client-rate", "fast"), "--client-rate: 'fast' is not a rate: write calls per second, minute or hour"),
        (("--client-rate", "0/s"), "--client-rate: '0/s' allows no calls at all: write off to turn the limit off"),
        (("--client-burst", "0"), "--client-burst: 0 is less than 1"),
        (("--client-rate", "off", "--client-burst", "5"), "a client burst has no effect with the client rate off"),
        (("--max-pending-per-token", "many"), "--max-pending-per-token: 'many' is not a whole number"),
        (("--max-pending-per-token", "0"), "--max-pending-per-token: 0 is less than 1"),
    ],
)
def test_bad_limit_flags_are_one_sentence(tmp_path: Path, flags: tuple[str, ...], said: str) -> None:
    stderr = serve_refusal(tmp_path, *flags)
    assert stderr.startswith(f"dstack-controller: {said}"), stderr
    assert len(stderr.splitlines()) == 1


def test_api_tokens_refuse_join_token_flags(capped: ControllerProcess) -> None:
    def tokens(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "dstack-controller"), "token", *args, "--data-dir", str(capped.data_dir)]
        return subprocess.run(command, capture_output=True, text=True, timeout=30)

    before = tokens("list").stdout
    for flag, value in (("--uses", "3"), ("--fleet", "gpu")):
        out = tokens("create", "--kind", "api", flag, value)
        assert out.returncode == 2
        assert out.stderr == (
            f"dstack-controller: {flag} is for join tokens: an API token is used for every call until it "
            "expires (--ttl) or is revoked, and may submit to any fleet\n"
        )
        assert out.stdout == ""
    assert tokens("list").stdout == before  # nothing created
