"""Cloud volumes the controller attached to this instance (an EBS volume, an Azure data disk):
find the block device, make a file system on it when it has none, mount it under the agent's
state dir, and hand that directory to the runtime as a bind-mount source.

Every path read is under a configurable sysfs root and dev root (the facts code's test seam), and
every command goes through an injectable runner, so the tests run on fake trees and see the
commands; one test runs it all for real on a loop device.

Never destructive by mistake: a device is formatted only when a low-level probe (`blkid -p`)
finds no signature at all on it; one with a file system is mounted as it is, one with a partition
table or an ambivalent probe is refused."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dstack_hybrid.v1 import hybrid_pb2 as pb

log = logging.getLogger("dstack.agent.runtime")

WAIT_S = 60.0  # an attached volume's device can take a few seconds to show up in the guest
POLL_S = 1.0
COMMAND_TIMEOUT_S = 300.0
FS_TYPE = "ext4"

# blkid(8): exit status 2 when no signature was found, 8 when a low-level probe (-p) found
# signatures that contradict each other (e.g. two file systems' superblocks).
BLKID_NOTHING_FOUND = 2
BLKID_AMBIVALENT = 8

# The EBS NVMe controller's symlink name that udev (60-persistent-storage.rules) makes from its
# model and serial; model spaces become underscores.
EBS_BY_ID_PREFIX = "nvme-Amazon_Elastic_Block_Store_"

# Azure's remote-disk NVMe controller (v6 sizes with the NVMe disk controller). Source: the
# azure-vm-utils udev rules (github.com/Azure/azure-vm-utils, udev/80-azure-disk.rules): on a
# "MSFT NVMe Accelerator v1.0" controller nsid 1 is the OS disk and any other namespace is a data
# disk with LUN = nsid - 2. "Microsoft NVMe Direct Disk" (v1, v2) controllers are the local
# (temporary) disks, never data disks: they are deliberately not matched here.
AZURE_REMOTE_NVME_MODEL = "MSFT NVMe Accelerator"
AZURE_NVME_NSID_OFFSET = 2
# The same rules (and WALinuxAgent's 66-azure-storage.rules) tell SCSI data disks by the VMBus
# instance id of their storvsc controller: {f8b3781b,c,d-...} are the data-disk controllers
# ("scsi1".."scsi3"); {f8b3781a-...} carries the OS disk (LUN 0) and the resource disk (LUN 1)
# on Gen2 VMs, and Gen1 VMs' OS and resource disks are on controllers whose id starts
# "?00000000-000". The LUN is the last field of the disk's H:C:T:L address.
AZURE_SCSI_DATA_CONTROLLERS = frozenset(f"{{f8b3781{c}-1e82-4818-a1c3-63d806ec15bb}}" for c in ("b", "c", "d"))

_CONTROLLER = re.compile(r"nvme\d+")
# nvme0n1. With native NVMe multipath a controller's entries are paths (nvme0c0n1), which have
# no device node of their own; such a volume is still found through /dev/disk/by-id.
_NAMESPACE = re.compile(r"nvme\d+n(\d+)")
_HCTL = re.compile(r"(\d+):(\d+):(\d+):(\d+)")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class CloudVolumeError(Exception):
    """The volume cannot be made ready: one sentence, which fails the task's start."""


class Runner(Protocol):
    def __call__(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]: ...


def run_command(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    # stdin from /dev/null: mke2fs asks "Proceed anyway?" on a device it finds something on, and
    # must read EOF (and give up) rather than hang on the agent's stdin.
    return subprocess.run(
        list(argv),
        check=check,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=COMMAND_TIMEOUT_S,
    )


@dataclass(frozen=True)
class DeviceRoots:
    """Where devices are looked for: the test seam (like FactSources.sysfs for the facts)."""

    sysfs: Path = Path("/sys")
    dev: Path = Path("/dev")
    mountinfo: Path = Path("/proc/self/mountinfo")


# One volume at a time in this process: two tasks starting together on the same fresh volume
# must not both see it blank and both run mkfs.
_LOCK = threading.Lock()


class CloudVolumes:
    def __init__(
        self,
        state_dir: Path,
        roots: DeviceRoots | None = None,
        runner: Runner = run_command,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wait_s: float = WAIT_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.state_dir = state_dir
        self.roots = roots or DeviceRoots()
        self.runner = runner
        self.sleep = sleep
        self.clock = clock
        self.wait_s = wait_s
        self.poll_s = poll_s

    def mount_point(self, mount: pb.Mount) -> Path:
        name = mount.volume or mount.cloud_volume_id
        # The name becomes a path component: nothing that could climb out of volumes/.
        if not _SAFE_NAME.fullmatch(name):
            raise CloudVolumeError(f"volume {name!r} ({mount.cloud_volume_id}): not usable as a directory name")
        return self.state_dir / "volumes" / name

    def prepare(self, mount: pb.Mount) -> Path:
        """The host directory the volume is mounted at, after finding, formatting (only when
        blank) and mounting it as needed. Blocks (up to wait_s); raises CloudVolumeError."""
        label = f"volume {mount.volume or mount.cloud_volume_id} ({mount.cloud_volume_id})"
        target = self.mount_point(mount)
        device = self.wait_for_device(mount, label)
        with _LOCK:
            ensure_mounted(device, target, label, self.runner, self.roots.mountinfo)
        return target

    def wait_for_device(self, mount: pb.Mount, label: str) -> Path:
        if mount.device_serial:
            what = f"with serial {mount.device_serial}"
        elif mount.lun >= 0:
            what = f"for LUN {mount.lun}"
        else:
            raise CloudVolumeError(f"{label}: the controller gave neither a device serial nor a LUN to find it by")
        deadline = self.clock() + self.wait_s
        while True:
            found = find_device(self.roots, mount.device_serial, mount.lun)
            if found is not None:
                # The real node, not a by-id/by-lun link: what blkid, mkfs and mountinfo name.
                device = found.resolve()
                log.info("%s: block device %s", label, device)
                return device
            if self.clock() >= deadline:
                raise CloudVolumeError(f"{label}: no block device {what} appeared within {self.wait_s:g}s")
            self.sleep(self.poll_s)


# ---------------------------------------------------------------- discovery
def find_device(roots: DeviceRoots, serial: str, lun: int) -> Path | None:
    """The volume's block device (maybe a symlink), or None when it is not there (yet). A serial
    wins over a LUN: proto3 gives 0 for an unset LUN, and 0 is also a real LUN."""
    if serial:
        return find_by_serial(roots, serial)
    if lun >= 0:
        return find_by_lun(roots, lun)
    return None


def serial_forms(serial: str) -> set[str]:
    """EBS: the NVMe serial is the volume id without its dash (vol0abc...); accept either form."""
    forms = {serial}
    if serial.startswith("vol-"):
        forms.add("vol" + serial[4:])
    elif serial.startswith("vol"):
        forms.add("vol-" + serial[3:])
    return forms


def find_by_serial(roots: DeviceRoots, serial: str) -> Path | None:
    wanted = serial_forms(serial)
    # 1. Nitro: each EBS volume is an NVMe controller whose serial is the volume id.
    for controller in _sorted_dirs(roots.sysfs / "class/nvme", _CONTROLLER):
        if _read(controller / "serial") in wanted:
            found = _namespace_device(roots, controller, nsid=None)
            if found is not None:
                return found
    # 2. udev's persistent name, where udev ran (covers a multipath namespace too).
    for form in sorted(wanted):
        link = roots.dev / "disk/by-id" / (EBS_BY_ID_PREFIX + form)
        if link.exists():
            return link
    # 3. Any other block device that reports a serial (Xen-era instances, virtio, SCSI).
    for block in _sorted_dirs(roots.sysfs / "block", None):
        if _read(block / "device/serial") in wanted and (roots.dev / block.name).exists():
            return roots.dev / block.name
    return None


def find_by_lun(roots: DeviceRoots, lun: int) -> Path | None:
    # 1. The udev links: azure-vm-utils' (SCSI and NVMe) and WALinuxAgent's older SCSI ones.
    for link in (roots.dev / f"disk/azure/data/by-lun/{lun}", roots.dev / f"disk/azure/scsi1/lun{lun}"):
        if link.exists():
            return link
    # 2. SCSI data disks (Hyper-V storvsc).
    found = _scsi_data_disk(roots, lun)
    if found is not None:
        return found
    # 3. NVMe data disks (the NVMe disk controller): namespace LUN + 2 of the remote controller.
    for controller in _sorted_dirs(roots.sysfs / "class/nvme", _CONTROLLER):
        if _read(controller / "model").startswith(AZURE_REMOTE_NVME_MODEL):
            found = _namespace_device(roots, controller, nsid=lun + AZURE_NVME_NSID_OFFSET)
            if found is not None:
                return found
    return None


def _scsi_data_disk(roots: DeviceRoots, lun: int) -> Path | None:
    disks: list[tuple[int, Path]] = []  # (host, sysfs entry) of every SCSI disk
    for entry in _sorted_dirs(roots.sysfs / "class/scsi_disk", _HCTL):
        match = _HCTL.fullmatch(entry.name)
        assert match is not None
        disks.append((int(match.group(1)), entry))
    if not disks:
        return None
    # Without a VMBus controller id (not Hyper-V, or an older kernel's layout), fall back to the
    # rule that Azure puts the OS disk on the first SCSI host and data disks on later ones. This
    # is weaker (a Gen1 VM's resource disk is on host 1 too), hence the ambiguity check below.
    os_host = min(host for host, _ in disks)
    candidates: list[Path] = []
    for host, entry in disks:
        if int(entry.name.rsplit(":", 1)[1]) != lun:
            continue
        controller_id = _vmbus_device_id(roots, entry)
        if controller_id is not None:
            if controller_id.lower() not in AZURE_SCSI_DATA_CONTROLLERS:
                continue
        elif host == os_host:
            continue
        block = _sorted_dirs(entry / "device/block", None)
        if block and (roots.dev / block[0].name).exists():
            candidates.append(roots.dev / block[0].name)
    if len(candidates) > 1:
        # Picking one could mean formatting the wrong disk.
        names = ", ".join(str(c) for c in candidates)
        raise CloudVolumeError(f"LUN {lun} matches several SCSI disks ({names}): not choosing one")
    return candidates[0] if candidates else None


def _vmbus_device_id(roots: DeviceRoots, scsi_disk: Path) -> str | None:
    """The `device_id` of the first ancestor that has one (what udev's ATTRS{device_id} matches):
    the VMBus storvsc controller the disk hangs off."""
    try:
        path = scsi_disk.resolve()
        top = roots.sysfs.resolve()
    except OSError:
        return None
    while path != top and top in path.parents:
        value = _read(path / "device_id")
        if value:
            return value
        path = path.parent
    return None


def _namespace_device(roots: DeviceRoots, controller: Path, nsid: int | None) -> Path | None:
    """The device node of the controller's namespace `nsid` (None: its first namespace, as an
    EBS volume has exactly one), if the node exists yet."""
    namespaces: list[tuple[int, str]] = []
    for entry in _sorted_dirs(controller, _NAMESPACE):
        match = _NAMESPACE.fullmatch(entry.name)
        assert match is not None
        # The kernel's nN is an instance number, not always the nsid: the nsid attribute is.
        raw = _read(entry / "nsid")
        namespaces.append((int(raw) if raw.isdigit() else int(match.group(1)), entry.name))
    for found_nsid, name in sorted(namespaces):
        if (nsid is None or found_nsid == nsid) and (roots.dev / name).exists():
            return roots.dev / name
    return None


def _sorted_dirs(directory: Path, pattern: re.Pattern[str] | None) -> list[Path]:
    try:
        entries = list(directory.iterdir())
    except OSError:  # the driver is not loaded, or the tree is not there
        return []
    chosen = [e for e in entries if pattern is None or pattern.fullmatch(e.name)]
    return sorted(chosen, key=lambda e: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", e.name)])


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


# ------------------------------------------------------------ format, mount
def ensure_mounted(device: Path, target: Path, label: str, runner: Runner, mountinfo: Path) -> None:
    mounted = mounted_source(mountinfo, target)
    if mounted is not None:
        if _same_device(mounted, device):
            return  # mounted by an earlier task (or before an agent restart)
        raise CloudVolumeError(f"{label}: {target} already has {mounted[1] or mounted[0]} mounted, not {device}")
    fs_type = probe(device, label, runner)
    if fs_type is None:
        log.info("%s: %s has no file system: making %s", label, device, FS_TYPE)
        # nodiscard: a new cloud volume reads as zeroes already, and discarding a large one
        # block by block can take minutes.
        _run(runner, ["mkfs.ext4", "-q", "-E", "nodiscard", str(device)], label)
        fs_type = FS_TYPE
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    _run(runner, ["mount", "-t", fs_type, str(device), str(target)], label)
    log.info("%s: mounted %s (%s) at %s", label, device, fs_type, target)


def probe(device: Path, label: str, runner: Runner) -> str | None:
    """The file system type on the device, or None when it holds no signature at all.

    `-p` probes the device itself (not blkid's cache, which knows nothing of a just-attached
    disk) and also reports partition tables, which `-s TYPE` alone would not show."""
    try:
        done = runner(["blkid", "-p", "-o", "export", str(device)], check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CloudVolumeError(f"{label}: cannot probe {device}: {exc}") from None
    if done.returncode == BLKID_NOTHING_FOUND:
        return None
    if done.returncode == BLKID_AMBIVALENT:
        raise CloudVolumeError(f"{label}: {device} holds conflicting signatures: not formatting or mounting it")
    if done.returncode != 0:
        raise CloudVolumeError(f"{label}: cannot probe {device}: {_why(done)}")
    fields = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if fields.get("TYPE"):
        return fields["TYPE"]
    if fields.get("PTTYPE"):
        raise CloudVolumeError(
            f"{label}: {device} has a {fields['PTTYPE']} partition table and no file system of its own: "
            "not formatting or mounting it"
        )
    raise CloudVolumeError(f"{label}: {device} holds a signature that is not a file system: not formatting it")


def mounted_source(mountinfo: Path, target: Path) -> tuple[str, str] | None:
    """(major:minor, source) of the topmost mount at `target`, or None when nothing is mounted there."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    wanted = os.path.realpath(target)  # the kernel writes the resolved path
    found: tuple[str, str] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or " - " not in line:
            continue
        if _unescape(fields[4]) == wanted:
            after = line.split(" - ", 1)[1].split()
            found = (fields[2], _unescape(after[1]) if len(after) > 1 else "")  # later lines are on top
    return found


def _same_device(mounted: tuple[str, str], device: Path) -> bool:
    major_minor, source = mounted
    try:
        rdev = os.stat(device).st_rdev
    except OSError:
        rdev = 0
    if rdev and major_minor == f"{os.major(rdev)}:{os.minor(rdev)}":
        return True
    return bool(source) and os.path.realpath(source) == os.path.realpath(device)


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in mountinfo paths as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _run(runner: Runner, argv: list[str], label: str) -> None:
    try:
        runner(argv, check=True)
    except subprocess.CalledProcessError as exc:
        raise CloudVolumeError(f"{label}: {' '.join(argv)} failed: {_why(exc)}") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise CloudVolumeError(f"{label}: {' '.join(argv)} failed: {exc}") from None


def _why(done: subprocess.CompletedProcess[str] | subprocess.CalledProcessError) -> str:
    text = (done.stderr or done.stdout or "").strip()
    return text.splitlines()[-1] if text else f"exit status {done.returncode}"
