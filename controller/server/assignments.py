"""The messages that tell an agent what to run and stop: the assignment (the run spec, its mounts
and the log offsets to resume from) and the stop request. Pure builders over what the caller read."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.configs.task import TaskConfiguration
from controller.configs.volume import VolumeConfiguration
from controller.placement import HostView
from controller.placement.rules import volume_matches
from controller.scheduling import taskspec
from controller.scheduling.requirements import AppliedVolume, volume_option
from controller.store.records import AttachmentRecord, TaskRecord

# (volume name, host id) -> where the cloud attached it, if it is attached there (the store's record).
AttachmentOf = Callable[[str, str], AttachmentRecord | None]


def assignment(task: TaskRecord, log_counts: Mapping[int, int], mounts: list[pb.Mount]) -> pb.ControllerMessage:
    run = taskspec.run_spec(taskspec.parse(task.configuration_json))
    run.mounts.extend(mounts)
    return pb.ControllerMessage(
        assign=pb.Assignment(
            task_id=task.id,
            task_name=task.name,
            run=run,
            # The agent counts this attempt's lines from 0; the stored log holds earlier attempts first.
            stdout_offset=max(0, log_counts.get(pb.LOG_STREAM_STDOUT, 0) - task.stdout_base),
            stderr_offset=max(0, log_counts.get(pb.LOG_STREAM_STDERR, 0) - task.stderr_base),
            started=task.started_at is not None,
            attempt=task.attempt,
        )
    )


def stop_message(task: TaskRecord, grace_s: int) -> pb.ControllerMessage:
    stop = pb.StopTask(task_id=task.id, abort=task.abort_requested, grace_s=grace_s, attempt=task.attempt)
    return pb.ControllerMessage(stop=stop)


def stored_seq(task: TaskRecord, stream: int, attempt_seq: int) -> int:
    """Where a line of the current attempt goes in the stored log (one sequence per stream)."""
    return attempt_seq + (task.stdout_base if stream == pb.LOG_STREAM_STDOUT else task.stderr_base)


def mounts_for(
    config: TaskConfiguration,
    host_id: str,
    view: HostView | None,
    volumes: Mapping[str, AppliedVolume],
    attachment_of: AttachmentOf,
) -> list[pb.Mount]:
    """Bind mounts on that host: instance paths as given; for a volume list, the first
    volume in list order available there (the same choice placement made)."""
    found = []
    for mount in config.volumes:
        if mount.instance_path:
            found.append(pb.Mount(source=mount.instance_path, target=mount.path))
            continue
        for name in mount.name or []:
            applied = volumes.get(name)
            if applied is not None and view is not None and volume_matches(volume_option(applied.config), view):
                found.append(volume_mount(applied.config, mount.path, attachment_of(applied.config.name, host_id)))
                break
    return found


def volume_mount(config: VolumeConfiguration, target: str, attached: AttachmentRecord | None) -> pb.Mount:
    if config.backend == "local":
        return pb.Mount(source=config.path or "", target=target, volume=config.name)
    volume_id = config.volume_id or ""
    if attached is not None and attached.volume_id != volume_id:
        attached = None  # the record of another disk that had this name (deleted and applied again)
    # EBS volumes show up on Nitro instances as NVMe devices whose serial is the id without its dash.
    serial = attached.device_serial if attached else (volume_id.replace("-", "") if config.backend == "aws" else "")
    lun = attached.lun if attached is not None and attached.lun is not None else -1
    return pb.Mount(target=target, volume=config.name, cloud_volume_id=volume_id, device_serial=serial, lun=lun)
