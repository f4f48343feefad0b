"""The controller's data dir: made (and locked) by `serve` only, found by the commands that
work on an existing controller (`token`, `cloud-init`).

One `serve` per data dir: two controllers on one SQLite file and one CA would split the hosts
and tasks between them. `serve` holds an flock on `<data-dir>/serve.lock` for as long as it
runs; the kernel drops it when the process dies, however it dies, so a stale lock never blocks
a restart. The file holds the pid, for the sentence that refuses a second `serve`."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "serve.lock"

# What the package's unit reads (EnvironmentFile=) and where it keeps its data. Both can be
# pointed elsewhere, so tests never read or write the real /etc and /var/lib.
DEFAULTS_FILE_ENV = "DSTACK_CONTROLLER_DEFAULTS_FILE"
SERVICE_DATA_DIR_ENV = "DSTACK_CONTROLLER_SERVICE_DATA_DIR"
DEFAULTS_FILE = Path("/etc/default/dstack-controller")
SERVICE_DATA_DIR = Path("/var/lib/dstack-controller")


class DataDirError(Exception):
    """The data dir cannot be used: one sentence; `status` is the exit status (2: bad input)."""

    def __init__(self, sentence: str, status: int = 1) -> None:
        super().__init__(sentence)
        self.status = status


def service_data_dir() -> Path:
    return Path(os.environ.get(SERVICE_DATA_DIR_ENV) or SERVICE_DATA_DIR)


def defaults_file() -> Path:
    return Path(os.environ.get(DEFAULTS_FILE_ENV) or DEFAULTS_FILE)


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space is left on its file system"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return "something that is not a directory is in the way"
    return exc.strerror or str(exc)


# ----------------------------------------------------------------------- serve: make and lock
def prepare(data_dir: Path) -> None:
    """Makes the data dir (0700) unless it exists; DataDirError saying why it cannot."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise DataDirError(f"cannot create the data dir {data_dir}: {_why(exc)}") from None
    if not data_dir.is_dir():
        raise DataDirError(f"the data dir {data_dir} is not a directory")


def lock(data_dir: Path) -> int:
    """Takes `serve`'s lock on the data dir and returns its descriptor, to be kept open for as
    long as the process serves; DataDirError naming the holder's pid when another has it."""
    path = data_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise DataDirError(
                f"the data dir {data_dir} is on a read-only file system; the controller writes there"
            ) from None
        raise DataDirError(f"cannot write in the data dir {data_dir}: {_why(exc)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd) or 0
        os.close(fd)
        raise DataDirError(busy(data_dir, holder)) from None
    mine = f"{os.getpid()}\n".encode()
    # The pid only helps the refusal above name the holder; the flock is the lock. Overwriting in
    # place needs no new block, so a full disk does not stop a restart here.
    with contextlib.suppress(OSError):
        os.pwrite(fd, mine, 0)
        os.ftruncate(fd, len(mine))
    return fd


def busy(data_dir: Path, holder: int) -> str:
    who = f"pid {holder}" if holder else "another process"
    return f"another dstack-controller ({who}) is serving the data dir {data_dir}; stop it or pass another --data-dir"


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def served_by(data_dir: Path) -> int | None:
    """The pid of the `serve` holding the data dir's lock (0 when it wrote none), None when no
    `serve` holds it. Looks only: creates nothing."""
    try:
        fd = os.open(data_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# ---------------------------------------------------- token / cloud-init: find, never make
MARKERS = ("admin-token", "controller.db", "pki/ca.crt")  # what a first `serve` leaves behind


def holds_controller(data_dir: Path) -> bool:
    """True when a `serve` has started on this data dir; DataDirError when it cannot be read."""
    try:
        return any((data_dir / marker).is_file() for marker in MARKERS)
    except PermissionError:
        raise DataDirError(
            f"cannot read the data dir {data_dir} (permission denied): run this as its owner or root"
        ) from None


@dataclass(frozen=True)
class Found:
    data_dir: Path
    database_url: str | None  # the service's own --database-url / DSTACK_DATABASE_URL, when it has one
    note: str = ""  # said on stderr when the choice among several was not obvious


def service_settings() -> tuple[Path, str | None]:
    """The data dir and database URL the packaged unit serves with: its ExecStart passes
    `--data-dir /var/lib/dstack-controller $DSTACK_CONTROLLER_OPTS`, so a --data-dir in
    DSTACK_CONTROLLER_OPTS wins (the last flag does); DSTACK_CONTROLLER_DATA_DIR in the file
    would lose to the unit's own flag, so it does not count here either."""
    env = read_environment_file(defaults_file())
    data_dir, url = service_data_dir(), env.get("DSTACK_DATABASE_URL") or None
    words = shlex.split(env.get("DSTACK_CONTROLLER_OPTS", ""), comments=False)
    for i, word in enumerate(words):
        for flag in ("--data-dir", "--database-url"):
            value = None
            if word == flag and i + 1 < len(words):
                value = words[i + 1]
            elif word.startswith(flag + "="):
                value = word.split("=", 1)[1]
            if value is None:
                continue
            if flag == "--data-dir":
                data_dir = Path(value)
            else:
                url = value
    return data_dir, url


def read_environment_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments, optional quotes);
    an absent or unreadable file is empty, as `EnvironmentFile=-` treats it."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            words = shlex.split(value)
        except ValueError:
            continue
        found[key.strip()] = " ".join(words) if len(words) != 1 else words[0]
    return found


def find(explicit: Path | None) -> Found:
    """The data dir of an existing controller, for commands that must never make one: --data-dir,
    else DSTACK_CONTROLLER_DATA_DIR, else the packaged service's, else the per-user default where
    a plain `serve` keeps it. DataDirError (exit 2) when none holds a controller."""
    named = explicit or (Path(env) if (env := os.environ.get("DSTACK_CONTROLLER_DATA_DIR")) else None)
    if named is not None:
        how = "--data-dir" if explicit is not None else "DSTACK_CONTROLLER_DATA_DIR"
        if not holds_controller(named):
            raise DataDirError(
                f"no controller has been started with the data dir {named} ({how}): "
                f"start `dstack-controller serve --data-dir {named}` first, or name the data dir of the running one",
                status=2,
            )
        return Found(named, None)
    service_dir, service_url = service_settings()
    user_dir = Path.home() / ".dstack-controller"
    candidates = [(service_dir, service_url)]
    if user_dir.absolute() != service_dir.absolute():
        candidates.append((user_dir, None))
    present = [(d, url) for d, url in candidates if holds_controller(d)]
    if len(present) == 1:
        return Found(*present[0])
    if not present:
        raise DataDirError(
            f"no controller data dir found (looked at {service_dir} and {user_dir}): "
            "start `dstack-controller serve` first, or pass --data-dir",
            status=2,
        )
    # Both hold a controller. A token must be for the controller that runs, so the one being
    # served wins (and the choice is said); with both or neither running there is no telling.
    running = [(d, url) for d, url in present if served_by(d) is not None]
    if len(running) == 1:
        chosen, url = running[0]
        other = next(d for d, _ in present if d != chosen)
        return Found(chosen, url, f"using {chosen}, the data dir of the running controller ({other} holds another)")
    raise DataDirError(f"both {service_dir} and {user_dir} hold a controller: pass --data-dir to choose one", status=2)
