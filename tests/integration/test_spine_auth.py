"""Join tokens and API tokens: what is refused, and that refusal changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.support.cluster import AgentProcess

pytestmark = pytest.mark.docker


def register(c: Cluster, tmp_path: Path, token: str, name: str) -> AgentProcess:
    agent = AgentProcess(c.controller, tmp_path / name, token, name)
    agent.start()
    assert agent.proc is not None
    agent.proc.wait(timeout=30)
    return agent


def host_names(c: Cluster) -> list[str]:
    return sorted(h["name"] for h in c.controller.ctl_json("hosts"))


def test_wrong_join_tokens_are_refused(cluster: Cluster, tmp_path: Path) -> None:
    good = cluster.controller.token()
    _, pin, token_id, _ = good.split(".")
    malformed = register(cluster, tmp_path, "not-a-token", "bad-format")
    assert malformed.proc is not None and malformed.proc.returncode == 1
    assert "the join token is malformed" in malformed.log()
    for i, bad in enumerate([f"dstack1.{pin}.{token_id}.wrong-secret", f"dstack1.{pin}.00000000.secret"]):
        agent = register(cluster, tmp_path, bad, f"bad-{i}")
        assert agent.proc is not None and agent.proc.returncode == 1
        assert "registration refused by the controller: join token refused" in agent.log()
        assert "Traceback" not in agent.log()
        assert not (tmp_path / f"bad-{i}" / "credential.json").exists()
    assert host_names(cluster) == ["local"]
    assert "registration refused: token" in cluster.controller.log()  # the operator sees why


def test_expired_join_token_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    token = cluster.controller.token("--ttl", "1s")
    time.sleep(1.5)
    agent = register(cluster, tmp_path, token, "late")
    assert agent.proc is not None and agent.proc.returncode == 1
    assert f"token {token.split('.')[2]} expired" in cluster.controller.log()
    assert host_names(cluster) == ["local"]


def test_single_use_join_token_cannot_be_reused(cluster: Cluster, tmp_path: Path) -> None:
    token = cluster.controller.token()
    first = AgentProcess(cluster.controller, tmp_path / "first", token, "first")
    first.start_and_wait_online()
    first.stop()
    second = register(cluster, tmp_path, token, "second")
    assert second.proc is not None and second.proc.returncode == 1
    assert f"token {token.split('.')[2]} is used up" in cluster.controller.log()
    assert "second" not in host_names(cluster)


def test_client_calls_need_a_valid_api_token(cluster: Cluster, tmp_path: Path) -> None:
    missing = cluster.controller.ctl("ps", token="")
    assert missing.returncode == 2
    assert missing.stderr.startswith("dstackctl: no API token")
    for bad in ["garbage", "da1.abcdef01.nope", cluster.controller.token()]:  # a join token is no API token
        out = cluster.controller.ctl("ps", token=bad)
        assert out.returncode == 2, bad
        assert out.stderr.strip() == "dstackctl: missing or invalid API token"
    api = cluster.controller.token("--kind", "api")
    assert cluster.controller.ctl("ps", token=api).returncode == 0
    token_id = api.split(".")[1]
    import subprocess

    from tests.support.cluster import BIN

    subprocess.run(
        [str(BIN / "dstack-controller"), "token", "revoke", "--data-dir", str(cluster.controller.data_dir), token_id],
        check=True,
        capture_output=True,
    )
    assert cluster.controller.ctl("ps", token=api).returncode == 2
