"""Writing keys and certificates safely: created with their final mode (never readable by others,
not even for a moment), fsynced, and put in place by rename or link so a crash leaves the old
file or the new one, never half of one. Shared by the controller's CA and the agent's identity."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is; some filesystems cannot fsync a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_temp(path: Path, data: bytes, mode: int) -> Path:
    """A temp file beside `path`, created with `mode` from the start (O_EXCL: nothing planted is followed)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # exact mode whatever the umask (it may strip a certificate's 0644)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replaces `path` with `data` (mode set at creation)."""
    tmp = write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def create_once(path: Path, data: bytes, mode: int) -> bool:
    """Puts `data` at `path` unless something is already there; True if this call created it.

    link(2) fails when the target exists, so of two writers racing on one path exactly one wins
    and neither overwrites the other's (a rename would)."""
    tmp = write_temp(path, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:
        # A filesystem without hard links (some FUSE or SMB mounts): fall back to a rename, which only
        # a writer racing us within this instant could overwrite.
        if path.exists():
            return False
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return True
