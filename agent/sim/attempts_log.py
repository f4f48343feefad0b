"""`dstack-agent simulate --attempts-log FILE`: one JSON line per attempt event of a simulated
host (started, ended, released), so a failure test can check from the hosts' side what the
controller claims: which attempts ran where, and when.

Each line is one write(2) on a descriptor opened with O_APPEND and no user-space buffer: a
simulator killed with -9 leaves only complete lines, and several simulators may share one file
(a local write of one small line under O_APPEND is not interleaved with another's)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from agent.config import AgentConfigError

log = logging.getLogger("dstack.agent.sim")

STARTED = "started"  # the simulated container began (a re-adoption after a reconnect is not a new start)
ENDED = "ended"  # it exited by itself, or on a StopTask (exit_code says which)
RELEASED = "released"  # the controller released the attempt and the host forgot it (exit_code null: it still ran)


class AttemptsLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise AgentConfigError(f"--attempts-log: cannot open {path} for appending: {exc.strerror or exc}") from None

    def write(self, host: str, task_id: str, attempt: int, event: str, exit_code: int | None = None) -> None:
        if self._fd is None:
            return
        record = {
            "host": host,
            "task_id": task_id,
            "attempt": attempt,
            "event": event,
            "at": round(time.time(), 3),  # wall clock, as the test's own clock for a kill
            "exit_code": exit_code,
        }
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            written = os.write(self._fd, line)
        except OSError as exc:  # a full disk must not break the hosts' streams: the log is the test's, not theirs
            log.warning("--attempts-log %s: %s; a line was lost", self.path, exc.strerror or exc)
            return
        if written != len(line):
            log.warning("--attempts-log %s: short write (%d of %d bytes)", self.path, written, len(line))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
