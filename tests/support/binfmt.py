"""Make the kernel run aarch64 binaries through qemu-user-static.

The refusal tests need proof that an arm64 image *could* run emulated on this amd64 host, so
emulation is switched on here rather than assumed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
HANDLER = "qemu-aarch64"
SPEC = Path("/usr/share/binfmts") / HANDLER


def _enabled() -> bool:
    try:
        return (BINFMT_DIR / HANDLER).read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def _mount() -> None:
    # Under systemd this path is an automount point; stat-ing "register" triggers it.
    if (BINFMT_DIR / "register").exists():
        return
    subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], check=False, capture_output=True)


def _register_from_spec() -> None:
    """Register the handler straight from binfmt-support's spec file when update-binfmts cannot."""
    fields: dict[str, str] = {}
    for line in SPEC.read_text().splitlines():
        key, _, value = line.partition(" ")
        fields[key] = value.strip()
    # F (fix binary) opens the interpreter now, so it also works inside a container's mount
    # namespace where /usr/libexec/qemu-binfmt does not exist.
    flags = "F"
    if fields.get("credentials") == "yes":
        flags += "C"
    if fields.get("preserve") == "yes":
        flags += "P"
    rule = ":".join(
        [
            "",
            HANDLER,
            "M",
            fields.get("offset", "0"),
            fields["magic"],
            fields.get("mask", ""),
            fields["interpreter"],
            flags,
        ]
    )
    (BINFMT_DIR / "register").write_text(rule)


def ensure_qemu_aarch64() -> bool:
    """Return True iff the qemu-aarch64 binfmt handler is registered and enabled afterwards."""
    if _enabled():
        return True
    _mount()
    handler = BINFMT_DIR / HANDLER
    if handler.exists():
        # Registered but switched off: writing 1 switches it back on.
        with contextlib.suppress(OSError):
            handler.write_text("1")
    if not _enabled() and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", HANDLER], check=False, capture_output=True)
    if not handler.exists() and SPEC.is_file() and os.access(BINFMT_DIR / "register", os.W_OK):
        with contextlib.suppress(OSError, KeyError):
            _register_from_spec()
    return _enabled()
