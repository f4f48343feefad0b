"""Cloud volumes on the agent: finding the block device of an attached EBS volume / Azure data
disk on fake sysfs and /dev trees, the commands that format and mount it, the wait-then-fail
sentence, the wiring into DockerRuntime, and one end-to-end run on a real loop device (root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker
import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.config import default_state_dir
from agent.runtime import cloud_volumes as cv
from agent.runtime.cloud_volumes import CloudVolumeError, CloudVolumes, DeviceRoots
from agent.runtime.docker_runtime import DockerRuntime, StartError
from agent.sim.tasks import parse_spec

SERIAL = "vol0123456789abcdef0"
VOLUME_ID = "vol-0123456789abcdef0"
ROOT_SERIAL = "vol0aaaaaaaaaaaaaaaa1"
DATA_CONTROLLER = "{f8b3781b-1e82-4818-a1c3-63d806ec15bb}"
OS_CONTROLLER = "{f8b3781a-1e82-4818-a1c3-63d806ec15bb}"


# ------------------------------------------------------------------ fake trees
def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def roots(tmp_path: Path) -> DeviceRoots:
    return DeviceRoots(sysfs=tmp_path / "sys", dev=tmp_path / "dev", mountinfo=tmp_path / "mountinfo")


def node(r: DeviceRoots, name: str) -> Path:
    """A stand-in for a device node (a plain file: discovery only checks that it exists)."""
    write(r.dev / name, "")
    return r.dev / name


def nvme_controller(r: DeviceRoots, name: str, model: str, serial: str, namespaces: dict[str, int]) -> None:
    d = r.sysfs / "class/nvme" / name
    # sysfs pads model (40) and serial (20) with spaces.
    write(d / "model", model.ljust(40) + "\n")
    write(d / "serial", serial.ljust(20) + "\n")
    for ns, nsid in namespaces.items():
        write(d / ns / "nsid", f"{nsid}\n")


def scsi_disk(r: DeviceRoots, hctl: str, block: str, controller_id: str | None) -> None:
    """Shaped like Hyper-V's: class/scsi_disk/H:C:T:L links into the device tree, under the
    storvsc VMBus device that holds `device_id`; the disk's `device` link leads to block/<name>."""
    host, channel, target, _ = hctl.split(":")
    vmbus = r.sysfs / "devices/VMBUS:00" / f"vmbus-host{host}"
    if controller_id is not None:
        write(vmbus / "device_id", controller_id + "\n")
    scsi_device = vmbus / f"host{host}/target{host}:{channel}:{target}" / hctl
    (scsi_device / "block" / block).mkdir(parents=True)
    entry = scsi_device / "scsi_disk" / hctl
    entry.mkdir(parents=True)
    (entry / "device").symlink_to("../..")
    (r.sysfs / "class/scsi_disk").mkdir(parents=True, exist_ok=True)
    (r.sysfs / "class/scsi_disk" / hctl).symlink_to(entry)
    node(r, block)


def aws_mount(name: str = "vol-eu", volume_id: str = VOLUME_ID, serial: str = SERIAL) -> pb.Mount:
    return pb.Mount(target="/data", volume=name, cloud_volume_id=volume_id, device_serial=serial, lun=-1)


def azure_mount(lun: int) -> pb.Mount:
    return pb.Mount(target="/data", volume="disk-we", cloud_volume_id="/subscriptions/s/disks/disk-we", lun=lun)


# --------------------------------------------------------------- by serial (AWS)
def test_serial_picks_the_namespace_of_the_controller_with_that_serial(tmp_path: Path) -> None:
    r = roots(tmp_path)
    nvme_controller(r, "nvme0", "Amazon Elastic Block Store", ROOT_SERIAL, {"nvme0n1": 1})
    nvme_controller(r, "nvme1", "Amazon Elastic Block Store", SERIAL, {"nvme1n1": 1})
    node(r, "nvme0n1")
    node(r, "nvme1n1")
    assert cv.find_device(r, SERIAL, -1) == r.dev / "nvme1n1"
    # The id with its dash names the same volume.
    assert cv.find_device(r, VOLUME_ID, -1) == r.dev / "nvme1n1"
    assert cv.find_device(r, "vol0ffffffffffffffff9", -1) is None


def test_serial_wins_over_an_unset_lun_of_zero(tmp_path: Path) -> None:
    # proto3 sends 0 for a LUN the controller did not set: the serial must still decide.
    r = roots(tmp_path)
    nvme_controller(r, "nvme1", "Amazon Elastic Block Store", SERIAL, {"nvme1n1": 1})
    node(r, "nvme1n1")
    write(r.dev / "disk/azure/data/by-lun/0", "")
    assert cv.find_device(r, SERIAL, 0) == r.dev / "nvme1n1"


def test_serial_waits_for_the_device_node(tmp_path: Path) -> None:
    r = roots(tmp_path)
    nvme_controller(r, "nvme1", "Amazon Elastic Block Store", SERIAL, {"nvme1n1": 1})
    assert cv.find_device(r, SERIAL, -1) is None  # in sysfs, but no /dev node yet
    node(r, "nvme1n1")
    assert cv.find_device(r, SERIAL, -1) == r.dev / "nvme1n1"


def test_serial_through_udevs_by_id_link(tmp_path: Path) -> None:
    r = roots(tmp_path)
    target = node(r, "nvme4n1")
    link = r.dev / f"disk/by-id/nvme-Amazon_Elastic_Block_Store_{SERIAL}"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../nvme4n1")
    found = cv.find_device(r, VOLUME_ID, -1)
    assert found == link
    assert found.resolve() == target.resolve()


def test_serial_of_a_xen_era_block_device(tmp_path: Path) -> None:
    r = roots(tmp_path)
    write(r.sysfs / "block/xvda/device/serial", "root\n")
    write(r.sysfs / "block/xvdf/device/serial", SERIAL + "\n")
    node(r, "xvda")
    node(r, "xvdf")
    assert cv.find_device(r, SERIAL, -1) == r.dev / "xvdf"


# ------------------------------------------------------------------ by LUN (Azure)
def test_lun_through_the_azure_udev_link(tmp_path: Path) -> None:
    r = roots(tmp_path)
    target = node(r, "sdd")
    link = r.dev / "disk/azure/data/by-lun/3"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../../../sdd")
    assert cv.find_device(r, "", 3) == link
    assert link.resolve() == target.resolve()
    assert cv.find_device(r, "", 4) is None


def test_lun_on_scsi_skips_the_os_and_resource_disks(tmp_path: Path) -> None:
    # A Gen2 VM: OS disk (LUN 0) and resource disk (LUN 1) on controller f8b3781a, data disks
    # on f8b3781b, so both LUN 0 and LUN 1 exist twice.
    r = roots(tmp_path)
    scsi_disk(r, "0:0:0:0", "sda", OS_CONTROLLER)
    scsi_disk(r, "0:0:0:1", "sdb", OS_CONTROLLER)
    scsi_disk(r, "1:0:0:0", "sdc", DATA_CONTROLLER)
    scsi_disk(r, "1:0:0:1", "sdd", DATA_CONTROLLER)
    assert cv.find_device(r, "", 0) == r.dev / "sdc"
    assert cv.find_device(r, "", 1) == r.dev / "sdd"
    assert cv.find_device(r, "", 2) is None


def test_lun_on_scsi_without_controller_ids_skips_the_os_disks_host(tmp_path: Path) -> None:
    r = roots(tmp_path)
    scsi_disk(r, "0:0:0:0", "sda", None)
    scsi_disk(r, "1:0:0:0", "sdb", None)
    assert cv.find_device(r, "", 0) == r.dev / "sdb"


def test_lun_on_scsi_that_matches_two_disks_is_refused(tmp_path: Path) -> None:
    # Gen1-like, without controller ids: the resource disk 1:0:1:0 and a data disk 5:0:0:0.
    r = roots(tmp_path)
    scsi_disk(r, "0:0:0:0", "sda", None)
    scsi_disk(r, "1:0:1:0", "sdb", None)
    scsi_disk(r, "5:0:0:0", "sdc", None)
    with pytest.raises(CloudVolumeError, match=r"LUN 0 matches several SCSI disks .*sdb.*sdc"):
        cv.find_device(r, "", 0)


def test_lun_on_the_azure_nvme_controller_is_nsid_minus_two(tmp_path: Path) -> None:
    r = roots(tmp_path)
    nvme_controller(r, "nvme0", "MSFT NVMe Accelerator v1.0", "SN: 000001", {"nvme0n1": 1, "nvme0n2": 2, "nvme0n3": 3})
    # A local disk's controller: never a data disk, whatever its namespaces.
    nvme_controller(r, "nvme1", "Microsoft NVMe Direct Disk v2", "SN: 000002", {"nvme1n1": 1, "nvme1n2": 4})
    for name in ("nvme0n1", "nvme0n2", "nvme0n3", "nvme1n1", "nvme1n2"):
        node(r, name)
    assert cv.find_device(r, "", 0) == r.dev / "nvme0n2"
    assert cv.find_device(r, "", 1) == r.dev / "nvme0n3"
    assert cv.find_device(r, "", 2) is None  # nsid 4 is only on the local disk's controller


# ------------------------------------------------------------------- waiting
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_no_device_fails_after_sixty_seconds_with_one_sentence(tmp_path: Path) -> None:
    clock = FakeClock()
    volumes = CloudVolumes(tmp_path / "state", roots(tmp_path), runner=Recorder(), sleep=clock.sleep, clock=clock)
    with pytest.raises(CloudVolumeError) as caught:
        volumes.prepare(aws_mount("vol-eu", "vol-0abc", "vol0abc"))
    assert str(caught.value) == "volume vol-eu (vol-0abc): no block device with serial vol0abc appeared within 60s"
    assert sum(clock.sleeps) == 60
    assert clock.sleeps == [1.0] * 60


def test_no_device_for_a_lun_names_the_lun(tmp_path: Path) -> None:
    clock = FakeClock()
    volumes = CloudVolumes(tmp_path / "state", roots(tmp_path), sleep=clock.sleep, clock=clock, wait_s=5)
    sentence = r"^volume disk-we \(.*\): no block device for LUN 2 appeared within 5s$"
    with pytest.raises(CloudVolumeError, match=sentence):
        volumes.wait_for_device(azure_mount(2), "volume disk-we (/subscriptions/s/disks/disk-we)")


def test_a_device_that_appears_while_waiting_is_used(tmp_path: Path) -> None:
    r = roots(tmp_path)
    nvme_controller(r, "nvme1", "Amazon Elastic Block Store", SERIAL, {"nvme1n1": 1})
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:
            node(r, "nvme1n1")

    volumes = CloudVolumes(tmp_path / "state", r, sleep=sleep, clock=clock)
    assert volumes.wait_for_device(aws_mount(), "v") == (r.dev / "nvme1n1").resolve()
    assert len(clock.sleeps) == 3


def test_neither_serial_nor_lun_is_an_error(tmp_path: Path) -> None:
    volumes = CloudVolumes(tmp_path / "state", roots(tmp_path))
    with pytest.raises(CloudVolumeError, match="neither a device serial nor a LUN"):
        volumes.prepare(pb.Mount(target="/d", volume="v", cloud_volume_id="vol-1", lun=-1))


def test_a_volume_name_cannot_leave_the_volumes_dir(tmp_path: Path) -> None:
    volumes = CloudVolumes(tmp_path / "state", roots(tmp_path))
    assert volumes.mount_point(aws_mount("data")) == tmp_path / "state/volumes/data"
    for bad in ("..", "../x", "a/b", ""):
        with pytest.raises(CloudVolumeError, match="not usable as a directory name"):
            volumes.mount_point(pb.Mount(volume=bad, cloud_volume_id=""))


# ------------------------------------------------------------ the commands run
class Recorder:
    """A runner that records argv and answers from `answers` (by program name)."""

    def __init__(self, answers: dict[str, tuple[int, str, str]] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.answers = answers or {}

    def __call__(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        rc, out, err = self.answers.get(argv[0], (0, "", ""))
        if check and rc != 0:
            raise subprocess.CalledProcessError(rc, list(argv), out, err)
        return subprocess.CompletedProcess(list(argv), rc, out, err)

    def programs(self) -> list[str]:
        return [c[0] for c in self.calls]


def aws_tree(tmp_path: Path) -> DeviceRoots:
    r = roots(tmp_path)
    nvme_controller(r, "nvme1", "Amazon Elastic Block Store", SERIAL, {"nvme1n1": 1})
    node(r, "nvme1n1")
    write(r.mountinfo, "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw\n")
    return r


def test_a_blank_device_is_formatted_then_mounted(tmp_path: Path) -> None:
    r = aws_tree(tmp_path)
    runner = Recorder({"blkid": (2, "", "")})
    target = CloudVolumes(tmp_path / "state", r, runner=runner).prepare(aws_mount("data"))
    device = str((r.dev / "nvme1n1").resolve())
    assert target == tmp_path / "state/volumes/data"
    assert target.is_dir()
    assert runner.calls == [
        ["blkid", "-p", "-o", "export", device],
        ["mkfs.ext4", "-q", "-E", "nodiscard", device],
        ["mount", "-t", "ext4", device, str(target)],
    ]


def test_a_device_with_a_file_system_is_mounted_as_it_is(tmp_path: Path) -> None:
    r = aws_tree(tmp_path)
    runner = Recorder({"blkid": (0, "DEVNAME=/dev/nvme1n1\nUUID=1234\nTYPE=xfs\nUSAGE=filesystem\n", "")})
    CloudVolumes(tmp_path / "state", r, runner=runner).prepare(aws_mount("data"))
    assert runner.programs() == ["blkid", "mount"]
    assert runner.calls[1][:3] == ["mount", "-t", "xfs"]


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ((0, "PTUUID=ab\nPTTYPE=gpt\n", ""), "has a gpt partition table and no file system of its own"),
        ((8, "", ""), "holds conflicting signatures"),
        ((0, "USAGE=other\n", ""), "holds a signature that is not a file system"),
        ((4, "", "blkid: bad usage"), "cannot probe .*: blkid: bad usage"),
    ],
)
def test_a_device_that_is_not_plainly_blank_or_a_file_system_is_left_alone(
    tmp_path: Path, answer: tuple[int, str, str], words: str
) -> None:
    runner = Recorder({"blkid": answer})
    with pytest.raises(CloudVolumeError, match=rf"^volume data \({VOLUME_ID}\): .*{words}"):
        CloudVolumes(tmp_path / "state", aws_tree(tmp_path), runner=runner).prepare(aws_mount("data"))
    assert runner.programs() == ["blkid"]


def test_already_mounted_there_runs_nothing(tmp_path: Path) -> None:
    r = aws_tree(tmp_path)
    target = tmp_path / "state/volumes/data"
    device = (r.dev / "nvme1n1").resolve()
    with r.mountinfo.open("a") as f:
        f.write(f"40 22 259:5 / {target} rw,relatime shared:9 - ext4 {device} rw\n")
    runner = Recorder()
    assert CloudVolumes(tmp_path / "state", r, runner=runner).prepare(aws_mount("data")) == target
    assert runner.calls == []


def test_something_else_mounted_there_is_an_error(tmp_path: Path) -> None:
    r = aws_tree(tmp_path)
    target = tmp_path / "state/volumes/data"
    with r.mountinfo.open("a") as f:
        f.write(f"40 22 8:17 / {target} rw - ext4 /dev/sdb1 rw\n")
    runner = Recorder()
    with pytest.raises(CloudVolumeError, match=r"already has /dev/sdb1 mounted"):
        CloudVolumes(tmp_path / "state", r, runner=runner).prepare(aws_mount("data"))
    assert runner.calls == []


def test_mountinfo_escapes_are_decoded(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    write(info, "40 22 7:0 / /srv/a\\040b rw - ext4 /dev/loop0 rw\n")
    assert cv.mounted_source(info, Path("/srv/a b")) == ("7:0", "/dev/loop0")
    assert cv.mounted_source(info, Path("/srv/a")) is None


def test_a_failing_mkfs_is_one_sentence_with_its_words(tmp_path: Path) -> None:
    runner = Recorder({"blkid": (2, "", ""), "mkfs.ext4": (1, "", "mkfs.ext4: Permission denied while trying\n")})
    with pytest.raises(CloudVolumeError) as caught:
        CloudVolumes(tmp_path / "state", aws_tree(tmp_path), runner=runner).prepare(aws_mount("data"))
    assert str(caught.value).startswith(f"volume data ({VOLUME_ID}): mkfs.ext4 -q -E nodiscard ")
    assert str(caught.value).endswith("failed: mkfs.ext4: Permission denied while trying")
    assert "mount" not in runner.programs()


# ------------------------------------------------------- DockerRuntime, the sim
class FakeContainer:
    def start(self) -> None: ...

    def reload(self) -> None: ...


class FakeContainers:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create(self, image: str, **kwargs: Any) -> FakeContainer:
        self.created.append(kwargs)
        return FakeContainer()


class FakeClient:
    def __init__(self) -> None:
        self.containers = FakeContainers()


def docker_runtime(monkeypatch: pytest.MonkeyPatch, volumes: CloudVolumes) -> Any:
    client = FakeClient()
    monkeypatch.setattr(docker, "from_env", lambda: client)
    return DockerRuntime("amd64", cloud_volumes=volumes)


def test_docker_runtime_binds_the_mounted_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = Recorder({"blkid": (0, "TYPE=ext4\n", "")})
    runtime = docker_runtime(monkeypatch, CloudVolumes(tmp_path / "state", aws_tree(tmp_path), runner=runner))
    spec = pb.RunSpec(
        image="busybox:1.36",
        mounts=[pb.Mount(source="/srv/shared", target="/shared"), aws_mount("data")],
    )
    runtime.create_and_start("t1", "task", spec)
    mounts = runtime.client.containers.created[0]["mounts"]
    assert [(m["Source"], m["Target"], m["Type"]) for m in mounts] == [
        ("/srv/shared", "/shared", "bind"),
        (str(tmp_path / "state/volumes/data"), "/data", "bind"),
    ]


def test_docker_runtime_fails_the_start_with_the_volumes_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    volumes = CloudVolumes(tmp_path / "state", roots(tmp_path), sleep=clock.sleep, clock=clock)
    runtime = docker_runtime(monkeypatch, volumes)
    spec = pb.RunSpec(image="busybox:1.36", mounts=[aws_mount("vol-eu", "vol-0abc", "vol0abc")])
    with pytest.raises(StartError, match=r"^volume vol-eu \(vol-0abc\): no block device with serial vol0abc"):
        runtime.create_and_start("t1", "task", spec)
    assert runtime.client.containers.created == []


def test_docker_runtime_defaults_keep_old_callers_working(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "from_env", FakeClient)
    assert DockerRuntime("amd64").cloud_volumes.state_dir == default_state_dir()
    assert DockerRuntime("amd64", state_dir=tmp_path).cloud_volumes.state_dir == tmp_path


def test_the_simulated_agent_accepts_cloud_volume_mounts() -> None:
    spec = pb.RunSpec(image="busybox", mounts=[aws_mount()], env={"DSTACK_SIM_SECONDS": "0.5"})
    assert parse_spec(spec) == (0.5, 0)


# ------------------------------------------------------------ for real (root)
def _loop_device_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (losetup, mkfs.ext4 and mount on a loop device)"
    missing = [p for p in ("losetup", "mkfs.ext4", "blkid", "mount", "umount") if shutil.which(p) is None]
    if missing:
        return f"needs {', '.join(missing)} (util-linux, e2fsprogs)"
    try:
        subprocess.run(["losetup", "--find"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "losetup finds no free loop device (no /dev/loop-control in this container?)"
    return None


class CountingRunner:
    def __init__(self) -> None:
        self.programs: list[str] = []

    def __call__(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.programs.append(argv[0])
        return cv.run_command(argv, check=check)


def test_end_to_end_on_a_loop_device(tmp_path: Path) -> None:
    reason = _loop_device_skip_reason()
    if reason:
        pytest.skip(reason)
    image = tmp_path / "ebs.img"
    with image.open("wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse
    loop = ""
    state = tmp_path / "state"
    target = state / "volumes/data"
    try:
        try:
            loop = subprocess.run(
                ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"losetup cannot attach a loop device here: {exc.stderr.strip()}")
        # The volume's NVMe controller, whose namespace's device node is the loop device.
        r = DeviceRoots(sysfs=tmp_path / "sys", dev=tmp_path / "dev")
        nvme_controller(r, "nvme0", "Amazon Elastic Block Store", ROOT_SERIAL, {"nvme0n1": 1})
        nvme_controller(r, "nvme1", "Amazon Elastic Block Store", SERIAL, {"nvme1n1": 1})
        r.dev.mkdir()
        (r.dev / "nvme1n1").symlink_to(loop)
        runner = CountingRunner()
        volumes = CloudVolumes(state, r, runner=runner, wait_s=0)

        assert volumes.prepare(aws_mount("data")) == target
        assert runner.programs == ["blkid", "mkfs.ext4", "mount"]
        assert os.path.ismount(target)
        assert cv.run_command(["blkid", "-p", "-o", "value", "-s", "TYPE", loop]).stdout.strip() == "ext4"
        (target / "kept.txt").write_text("still here")

        runner.programs.clear()
        volumes.prepare(aws_mount("data"))  # mounted already: nothing to do
        assert runner.programs == []

        subprocess.run(["umount", str(target)], check=True, timeout=30)
        assert not os.path.ismount(target)
        volumes.prepare(aws_mount("data"))  # has a file system now: mounted, never formatted again
        assert runner.programs == ["blkid", "mount"]
        assert (target / "kept.txt").read_text() == "still here"
    finally:
        if os.path.ismount(target):
            subprocess.run(["umount", str(target)], check=False, timeout=30)
        if loop:
            subprocess.run(["losetup", "-d", loop], check=False, timeout=30)
