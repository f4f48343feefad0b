"""Do to a container what cloud-init does with a #cloud-config user-data: write_files, then runcmd.

cloud-init's own code does the parsing: the user-data is loaded with `cloudinit.util.load_yaml`,
each write_files entry is decoded with cc_write_files' functions (path, encoding, owner,
permissions, append) and the runcmd list becomes the script cloud-init runs with
`cloudinit.util.shellify`. That code runs under the interpreter of the `cloud-init` command (the
Debian package's python3), not the project's venv, which has no `cloudinit` module.

Then, in the container, as cloud-init's util.write_file and util.chownbyname do on a VM: the
parent directories are made, the content written, the mode set, and the owner resolved by name
in the container's own user database (an unknown owner fails, as it does under cloud-init). The
runcmd script goes to /var/lib/cloud/instance/scripts/runcmd (0700) and runs with stdin on
/dev/null, as scripts_user runs it.

There is no systemd in a container, so runcmd entries that call systemctl are replaced before
the script is made: `daemon-reload` by nothing, `enable --now UNIT` by a stand-in that reads the
unit file the package installed and starts its ExecStart in the background as the unit's User
and Group, with its EnvironmentFile (and the environment the replay runs with, which a test
uses to keep metadata lookups on the loopback). Any other systemctl use is refused, so a template change
that this replay does not model fails loudly.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.debroot import docker_cli

RUNCMD_PATH = "/var/lib/cloud/instance/scripts/runcmd"
UNIT_LOG = "/var/log/{unit}.stand-in.log"  # where START_UNIT sends the unit's output
UNIT_PID = "/run/{unit}.stand-in.pid"  # and writes its main pid

# Runs under cloud-init's interpreter: user-data on stdin, JSON out.
_PARSE = r"""
import base64, json, os, sys
from cloudinit import util
from cloudinit.config import cc_write_files as wf

cfg = util.load_yaml(sys.stdin.read())
files = []
for f in cfg.get("write_files") or []:
    if not f.get("path") or util.get_cfg_option_bool(f, "defer", wf.DEFAULT_DEFER):
        continue  # deferred files are written after the package stage; the template has none
    contents = wf.extract_contents(f.get("content", ""), wf.canonicalize_extraction(f.get("encoding")))
    if isinstance(contents, str):
        contents = contents.encode()
    user, group = util.extract_usergroup(f.get("owner", "root:root"))
    files.append({
        "path": os.path.abspath(f["path"]),
        "content": base64.b64encode(contents).decode(),
        "mode": wf.decode_perms(f.get("permissions"), wf.DEFAULT_PERMS),
        "user": user, "group": group,
        "append": util.get_cfg_option_bool(f, "append"),
    })
runcmd = json.loads(sys.argv[1]) if len(sys.argv) > 1 else cfg.get("runcmd")
print(json.dumps({"files": files, "runcmd": cfg.get("runcmd"),
                  "script": util.shellify(runcmd) if runcmd is not None else None}))
"""

# `systemctl enable --now UNIT`, as far as a container without systemd can: $1 is the unit.
START_UNIT = r"""set -eu
unit=$1
file=
for dir in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
  if [ -f "$dir/$unit.service" ]; then file=$dir/$unit.service; break; fi
done
[ -n "$file" ] || { echo "systemctl stand-in: no unit file for $unit" >&2; exit 1; }
setting() { sed -n "s/^$1=//p" "$file" | tail -n 1; }
exec_start=$(setting ExecStart | sed 's/^[-@:+!]*//')
user=$(setting User); group=$(setting Group); env_file=$(setting EnvironmentFile)
[ -n "$exec_start" ] || { echo "systemctl stand-in: no ExecStart in $file" >&2; exit 1; }
run_as=
if [ -n "$user" ]; then
  # SupplementaryGroups=docker: the engine's socket, mounted from the test's host, is owned by
  # the host's docker group, whose id this root does not know by name.
  groups=$(id -G "$user" | tr ' ' ',')
  if [ -S /var/run/docker.sock ]; then groups=$groups,$(stat -c %g /var/run/docker.sock); fi
  run_as="setpriv --reuid=$user --regid=${group:-$user} --groups=$groups"
fi
env_file=${env_file#-}
cmd="exec $exec_start"
if [ -n "$env_file" ] && [ -f "$env_file" ]; then cmd="set -a; . $env_file; set +a; $cmd"; fi
log=/var/log/$unit.stand-in.log
pid=/run/$unit.stand-in.pid
# Detached, its output in a log: docker exec returns once the script ends, as systemctl does.
setsid sh -c "echo \$\$ > $pid; exec $run_as sh -c '$cmd'" </dev/null >>"$log" 2>&1 &
echo "systemctl stand-in: started $unit: $exec_start (user ${user:-root})"
"""


@dataclass(frozen=True)
class WrittenFile:
    path: str
    content: bytes
    mode: int
    user: str | None
    group: str | None
    append: bool


@dataclass(frozen=True)
class Replay:
    files: list[WrittenFile]
    runcmd: list[Any]  # as the user-data has it
    script: str  # what cloud-init would run, systemctl entries replaced


def cloud_init_python() -> str | None:
    """The interpreter of the `cloud-init` command (the one that can import `cloudinit`)."""
    command = shutil.which("cloud-init")
    if command is None:
        return None
    first = Path(command).read_text(errors="replace").splitlines()[0]
    return first[2:].strip().split()[0] if first.startswith("#!") else None


def stand_in_for_systemctl(entry: Any) -> Any:
    """The runcmd entry to run instead of `entry`: itself unless it calls systemctl."""
    argv = entry if isinstance(entry, list) else shlex.split(entry) if isinstance(entry, str) else []
    if not argv or argv[0] != "systemctl":
        return entry
    if argv[1:] == ["daemon-reload"]:
        return ["true"]
    if len(argv) == 4 and argv[1:3] == ["enable", "--now"]:
        unit = argv[3].removesuffix(".service")
        return ["sh", "-c", START_UNIT, "systemctl-stand-in", unit]
    raise AssertionError(f"the replay has no stand-in for runcmd entry {entry!r}")


def parse_user_data(text: str) -> Replay:
    """The user-data as cloud-init reads it, with the runcmd script it would write."""
    python = cloud_init_python()
    if python is None:
        raise RuntimeError("the cloud-init command is not installed")
    first = subprocess.run([python, "-c", _PARSE], input=text, capture_output=True, text=True, timeout=120, check=True)
    parsed = json.loads(first.stdout)
    runcmd = [stand_in_for_systemctl(e) for e in parsed["runcmd"] or []]
    second = subprocess.run(
        [python, "-c", _PARSE, json.dumps(runcmd)], input=text, capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    files = [
        WrittenFile(f["path"], base64.b64decode(f["content"]), f["mode"], f["user"], f["group"], f["append"])
        for f in parsed["files"]
    ]
    return Replay(files=files, runcmd=parsed["runcmd"], script=json.loads(second.stdout)["script"])


_WRITE = r"""set -eu
path=$1 mode=$2 owner=$3 append=$4
mkdir -p "$(dirname "$path")"
if [ "$append" = 1 ]; then cat >>"$path"; else cat >"$path"; fi
chmod "$mode" "$path"
if [ -n "$owner" ]; then chown "$owner" "$path"; fi
"""


def write_files(cid: str, files: list[WrittenFile]) -> None:
    """util.write_file + util.chownbyname, in the container."""
    for f in files:
        owner = f"{f.user or ''}:{f.group or ''}" if (f.user or f.group) else ""
        docker = shutil.which("docker")
        assert docker
        done = subprocess.run(
            [docker, "exec", "-i", cid, "sh", "-c", _WRITE, "write_files", f.path, f"{f.mode:o}", owner,
             "1" if f.append else "0"],
            input=f.content, capture_output=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"write_files: {f.path}: {done.stderr.decode(errors='replace')}")


def run_runcmd(cid: str, script: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Writes the script where cc_runcmd does and runs it as scripts_user does (stdin /dev/null)."""
    docker = shutil.which("docker")
    assert docker
    written = subprocess.run(
        [docker, "exec", "-i", cid, "sh", "-c",
         f'mkdir -p "$(dirname {RUNCMD_PATH})" && cat >{RUNCMD_PATH} && chmod 0700 {RUNCMD_PATH}'],
        input=script, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    run = f"exec {RUNCMD_PATH} </dev/null"
    return docker_cli("exec", *env_args, cid, "sh", "-c", run, timeout=timeout, check=False)
