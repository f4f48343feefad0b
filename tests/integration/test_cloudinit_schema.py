"""The rendered user-data passes cloud-init's own schema check (Debian's cloud-init package)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cloudinit import render_user_data
from tests.support.cluster import served_data_dir

TOKEN = "dstack1." + "ab" * 32 + ".0123abcd.s3cret"
NASTY = "a\"b: c # d\n- e: [f]\\ {g} 'h' \t é 😀 $(id)"

pytestmark = pytest.mark.skipif(
    shutil.which("cloud-init") is None,
    reason="the cloud-init command is missing: packaging/dev-setup.sh --tests installs it "
    "(apt-get install --no-install-recommends cloud-init)",
)


def _schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120
    )


def _assert_valid(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 22.4 and later print "Valid cloud-config: FILE"; older ones "Valid cloud-config file FILE".
    assert "Valid cloud-config" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("package", "extra"),
    [
        ({"package_url": "https://example.com/dstack-agent_0.1.0-1_{arch}.deb"}, None),
        ({"package_path": "/opt/dstack/dstack-agent_*.deb"}, {"region": "eu-west-1", "zone": "eu-west-1a"}),
        ({}, {"region": NASTY, "zone": NASTY, "labels": {NASTY: NASTY, "rack": "r12"}}),
    ],
)
def test_rendered_user_data_is_valid_cloud_config(
    package: dict[str, str], extra: dict[str, object] | None, tmp_path: Path
) -> None:
    path = tmp_path / "user-data.yaml"
    path.write_text(render_user_data("ctl.example.com:7443", TOKEN, NASTY, extra=extra, **package))
    _assert_valid(_schema(path))


def test_cli_output_is_valid_cloud_config(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "controller.main", "cloud-init", "--fleet", "gpu",
         "--data-dir", str(served_data_dir(tmp_path / "d")),
         "--controller", "10.0.0.5:7443", "--package-url", "https://example.com/dstack-agent.deb"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "user-data.yaml"
    path.write_text(proc.stdout)
    _assert_valid(_schema(path))


def test_schema_check_catches_a_broken_file(tmp_path: Path) -> None:
    """The check above means something: cloud-init rejects a bad key type."""
    path = tmp_path / "user-data.yaml"
    path.write_text("#cloud-config\nwrite_files:\n  - path: /x\n    permissions: [1]\nruncmd: 5\n")
    proc = _schema(path)
    assert proc.returncode != 0
    assert "Valid cloud-config" not in proc.stdout
