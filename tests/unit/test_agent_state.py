"""The agent's credential file: roundtrip, 0600, atomic replace."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from agent.state import Credential, credential_path, load_credential, save_credential

CRED = Credential(host_id="h-1", host_name="node-1", credential="dh1.h-1.secret", controller="127.0.0.1:7443")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_roundtrip(tmp_path: Path) -> None:
    save_credential(tmp_path, CRED)
    assert load_credential(tmp_path) == CRED
    assert credential_path(tmp_path) == tmp_path / "credential.json"
    assert json.loads((tmp_path / "credential.json").read_text()) == {
        "host_id": "h-1",
        "host_name": "node-1",
        "credential": "dh1.h-1.secret",
        "controller": "127.0.0.1:7443",
        "agent_port": 0,
    }


def test_missing_credential_is_none(tmp_path: Path) -> None:
    assert load_credential(tmp_path) is None
    assert load_credential(tmp_path / "no-such-dir") is None


def test_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        save_credential(tmp_path / "state", CRED)
    finally:
        os.umask(old)
    assert mode(tmp_path / "state" / "credential.json") == 0o600
    assert mode(tmp_path / "state") == 0o700


def test_creates_nested_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "a" / "b"
    save_credential(state, CRED)
    assert load_credential(state) == CRED


def test_save_replaces_the_file_atomically(tmp_path: Path) -> None:
    save_credential(tmp_path, CRED)
    path = credential_path(tmp_path)
    # A reader holding the old file (a hard link stands in for an open descriptor) keeps the old
    # content: the new one arrives by rename, never by rewriting the old file in place.
    old_view = tmp_path / "old-view"
    os.link(path, old_view)
    before = path.stat().st_ino
    newer = Credential("h-2", "node-2", "dh1.h-2.other", "ctl:7443")
    save_credential(tmp_path, newer)
    assert load_credential(tmp_path) == newer
    assert path.stat().st_ino != before
    assert json.loads(old_view.read_text())["host_id"] == "h-1"
    assert mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credential.json", "old-view"]  # no temp file left


@pytest.mark.parametrize("text", ["", "{not json", "[]", '{"host_id": "x"}', '{"host_id": "x", "extra": 1}'])
def test_unreadable_credential_is_a_value_error(tmp_path: Path, text: str) -> None:
    credential_path(tmp_path).write_text(text)
    with pytest.raises(ValueError, match=r"^cannot read .*credential\.json: "):
        load_credential(tmp_path)
