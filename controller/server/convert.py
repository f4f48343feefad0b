"""Store records -> wire messages."""

from __future__ import annotations

from dstack_hybrid.v1 import hybrid_pb2 as pb
from google.protobuf import json_format

from controller.status_wire import task_state
from controller.store.records import StoredLogLine, TaskRecord


def ms(t: float | None) -> int:
    return int(t * 1000) if t else 0


def task_message(task: TaskRecord, host_name: str, resources: str = "", retry: str = "") -> pb.Task:
    return pb.Task(
        id=task.id,
        name=task.name,
        status=task.status.value,
        state=task_state(task.status),
        host=host_name,
        reason=task.reason,
        provisioning_reason=task.provisioning_reason,
        has_exit_code=task.exit_code is not None,
        exit_code=task.exit_code or 0,
        image=task.image,
        arch=task.arch,
        configuration_json=task.configuration_json,
        submitted_at_ms=ms(task.submitted_at),
        started_at_ms=ms(task.started_at),
        finished_at_ms=ms(task.finished_at),
        resources=resources,
        attempt=task.attempt,
        retry=retry,
        submitted_by=task.submitted_by,
        submitted_by_description=task.submitted_by_description,
    )


def facts_json(facts: pb.HostFacts) -> str:
    return json_format.MessageToJson(facts, preserving_proto_field_name=True, indent=None)


def log_line(line: StoredLogLine) -> pb.LogLine:
    return pb.LogLine(stream=line.stream, seq=line.seq, ts_ns=line.ts_ns, data=line.data)  # type: ignore[arg-type]
