"""One `dstack-controller serve` per port and per data dir, through the real programs.

A second controller on a taken port used to start anyway (gRPC's default SO_REUSEPORT) and the
kernel spread clients between the two; two on one data dir split its hosts and tasks. Both are
refused now with one sentence, and the first keeps serving."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import BIN, ControllerProcess, free_port


@pytest.fixture
def first(tmp_path: Path) -> Iterator[ControllerProcess]:
    c = ControllerProcess(tmp_path / "first")
    c.start()
    yield c
    c.stop()


def serve(data_dir: Path, listen: str, agent_listen: str) -> subprocess.CompletedProcess[str]:
    """A second `serve`, expected to give up: it is waited for (a controller that starts would
    hit the timeout and fail the test)."""
    return subprocess.run(
        [str(BIN / "dstack-controller"), "serve", "--data-dir", str(data_dir), "--listen", listen,
         "--agent-listen", agent_listen, "--image-lookup", "off"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def one_sentence(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "<class" not in stderr and "Failed to bind" not in stderr
    return lines[0]


def assert_still_serving(c: ControllerProcess) -> None:
    # With both processes listening (SO_REUSEPORT) about half of these would reach the other one
    # and fail TLS against its CA; each call is a new connection.
    for _ in range(8):
        out = c.ctl("hosts", "--json")
        assert out.returncode == 0, out.stderr
    assert c.running


@pytest.mark.parametrize("which", ["client", "agent"])
def test_a_second_serve_on_a_taken_port_is_refused_and_the_first_keeps_serving(
    first: ControllerProcess, tmp_path: Path, which: str
) -> None:
    other = f"127.0.0.1:{free_port()}"
    taken = first.address if which == "client" else f"127.0.0.1:{first.agent_port}"
    listen, agent_listen = (taken, other) if which == "client" else (other, taken)
    out = serve(tmp_path / "second", listen, agent_listen)
    assert out.returncode == 1
    assert one_sentence(out.stderr) == (
        f"dstack-controller: cannot listen on {taken}: the address is in use (is another dstack-controller running?)"
    )
    assert not (tmp_path / "second").exists()  # refused before anything was made
    assert_still_serving(first)


def test_a_second_serve_on_the_same_data_dir_names_the_holder(first: ControllerProcess) -> None:
    assert first.proc is not None
    before = sorted(p.name for p in first.data_dir.iterdir())
    out = serve(first.data_dir, f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    assert out.returncode == 1
    assert one_sentence(out.stderr) == (
        f"dstack-controller: another dstack-controller (pid {first.proc.pid}) is serving the data dir "
        f"{first.data_dir}; stop it or pass another --data-dir"
    )
    assert sorted(p.name for p in first.data_dir.iterdir()) == before
    assert (first.data_dir / "serve.lock").read_text() == f"{first.proc.pid}\n"
    assert_still_serving(first)


def test_same_data_dir_and_same_port_names_the_holder_not_the_port(first: ControllerProcess) -> None:
    """The more useful of the two reasons: which process to look at."""
    assert first.proc is not None
    out = serve(first.data_dir, first.address, f"127.0.0.1:{first.agent_port}")
    assert out.returncode == 1
    assert f"(pid {first.proc.pid}) is serving the data dir" in one_sentence(out.stderr)


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    """kill -9 leaves serve.lock behind with the dead pid in it; the flock went with the process,
    so a new controller starts on the same data dir and serves what the first one stored."""
    data_dir = tmp_path / "ctl"
    c = ControllerProcess(data_dir)
    c.start()
    token = c.admin_token
    c.kill()
    assert (data_dir / "serve.lock").exists()
    again = ControllerProcess(data_dir)
    again.start()
    try:
        assert again.admin_token == token
        assert_still_serving(again)
        assert again.proc is not None
        assert (data_dir / "serve.lock").read_text() == f"{again.proc.pid}\n"
    finally:
        again.stop()
