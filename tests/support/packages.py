"""The project's version and its freshly built agent package, for the tests that install it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 900


def project_version() -> str:
    """`version` of pyproject.toml's [project] table (what packaging/build puts in the packages)."""
    text = (ROOT / "pyproject.toml").read_text()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^version\s*=\s*"([^"]+)"', project, re.M)
    assert found
    return found.group(1)


def build_agent_deb(dest_dir: Path, arch: str = "amd64") -> Path:
    """Runs packaging/build and copies the agent .deb into dest_dir (dist/ may be rebuilt by other
    tests meanwhile). Returns the copy, named as the build names it."""
    subprocess.run([ROOT / "packaging" / "build", "--arch", arch], cwd=ROOT, check=True, timeout=BUILD_TIMEOUT_S)
    built = ROOT / "dist" / f"dstack-agent_{project_version()}-1_{arch}.deb"
    assert built.is_file(), built
    copy = dest_dir / built.name
    shutil.copy2(built, copy)
    return copy
