"""Hostile and impossible task files through the real programs: dstackctl refuses each with exit 2
and one line naming the problem, quickly (the subprocess timeout is the bound), and the controller's
task list is unchanged; a client that skips dstackctl gets INVALID_ARGUMENT for the same inputs.

Only a controller runs (no agent, no Docker): nothing here gets as far as placement.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from tests.support.cluster import BIN, ControllerProcess, write_task
from tests.support.hostile_yaml import alias_bomb, deep_list, deep_map

HEAD = "type: task\nimage: ubuntu:24.04\n"
BOUND = 20  # seconds: each refusal takes well under one; the old code took minutes or forever


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    c = ControllerProcess(tmp_path_factory.mktemp("bounds") / "controller")
    c.start()
    yield c
    c.stop()


def refused(controller: ControllerProcess, *args: str) -> str:
    """Runs dstackctl, checks the refusal's shape and that nothing was submitted; returns the line."""
    before = controller.ctl_json("ps", "-a")
    out = controller.ctl(*args, timeout=BOUND)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert controller.ctl_json("ps", "-a") == before
    return out.stderr.strip()


def ctl_env(controller: ControllerProcess) -> dict[str, str]:
    """What ControllerProcess.ctl gives dstackctl, for runs that need their own stdin or a shell."""
    return dict(
        os.environ,
        DSTACK_CONTROLLER=controller.address,
        DSTACK_TOKEN=controller.admin_token,
        DSTACK_CA_FILE=str(controller.ca_file),
        HOME=str(controller.data_dir.parent),
    )


CASES = {
    "alias-bomb": (alias_bomb(), "{file} expands its aliases to more than 10000 values at line 7"),
    "list-3000": (deep_list(3000), "{file} nests more than 64 levels deep at line 3"),
    "map-3000": (deep_map(3000), "{file} nests more than 64 levels deep at line 3"),
    "2-MiB": (HEAD + "commands:\n" + "  - echo hi\n" * (2 * 1024 * 1024 // 12), "{file} is larger than the 1 MiB"),
    "cpu-1e29": (HEAD + "resources:\n  cpu: 1e29\n", "cpu count above the maximum of 4096"),
    "memory-1e30GB": (HEAD + "resources:\n  memory: 1e30GB\n", 'invalid resources.memory "1e30GB" in {file}'),
    "memory-1e30": (HEAD + "resources:\n  memory: 1e30\n", "memory above the maximum of 64TB"),
    "gpu-100000": (HEAD + "resources:\n  gpu: 100000\n", "gpu count above the maximum of 64"),
    "image-dotdot": ('type: task\nimage: "UPPER/../x:@@"\n', 'invalid image "UPPER/../x:@@" in {file} line 2'),
    "image-upper": ("type: task\nimage: Ubuntu:24.04\n", 'repository "Ubuntu" must be lower-case'),
    "image-digest": ("type: task\nimage: ubuntu@sha256:abc\n", 'digest "sha256:abc" needs 64'),
    "image-tag": ('type: task\nimage: "ubuntu:-rc"\n', 'tag "-rc" is not'),
    "image-port": ("type: task\nimage: ghcr.io:x/app\n", 'registry "ghcr.io:x" is not a host name'),
}


@pytest.mark.parametrize("case", list(CASES))
def test_submit_refuses_each_with_one_line(controller: ControllerProcess, tmp_path: Path, case: str) -> None:
    text, message = CASES[case]
    path = write_task(tmp_path / "task.yaml", text)
    line = refused(controller, "submit", "-f", str(path), "-d")
    assert line.startswith("dstackctl: ")
    assert message.format(file=path) in line, line


def test_a_50_mb_file_is_refused_without_parsing_it(controller: ControllerProcess, tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as out:
        out.write(HEAD + "commands:\n")
        for _ in range(50):
            out.write("  - echo hi\n" * (1024 * 1024 // 12))
    assert path.stat().st_size > 49 * 1024 * 1024
    line = refused(controller, "submit", "-f", str(path))
    assert line == f"dstackctl: {path} is larger than the 1 MiB limit for a task file"


def test_dev_zero_ends_at_once(controller: ControllerProcess) -> None:
    line = refused(controller, "submit", "-f", "/dev/zero")
    assert line == "dstackctl: /dev/zero is larger than the 1 MiB limit for a task file"


def test_stdin_and_process_substitution_still_work(controller: ControllerProcess, tmp_path: Path) -> None:
    """`-f /dev/stdin` and `-f <(...)` are pipes, not regular files: they are read, within the limit."""
    dstackctl, env = str(BIN / "dstackctl"), ctl_env(controller)
    text = HEAD + "name: from-stdin\n"
    submit = [dstackctl, "submit", "-d", "-f", "/dev/stdin"]
    out = subprocess.run(submit, input=text, capture_output=True, text=True, env=env, timeout=BOUND)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "from-stdin"
    task = write_task(tmp_path / "t.yaml", HEAD + "name: from-fd\n")
    for script, code, said in (
        (f'exec "$0" submit -d -f <(cat {task})', 0, "from-fd"),
        ('exec "$0" submit -d -f <(yes)', 2, "larger than the 1 MiB limit for a task file"),  # an endless pipe
    ):
        out = subprocess.run(["bash", "-c", script, dstackctl], capture_output=True, text=True, env=env, timeout=BOUND)
        assert out.returncode == code, out.stderr
        assert said in out.stdout + out.stderr


def test_fleet_files_and_offers_have_the_same_bounds(controller: ControllerProcess, tmp_path: Path) -> None:
    fleet = write_task(tmp_path / "fleet.yaml", alias_bomb().replace(HEAD, "type: fleet\nname: f\n"))
    assert "expands its aliases" in refused(controller, "apply", "-f", str(fleet))
    task = write_task(tmp_path / "task.yaml", deep_list(3000))
    assert "nests more than 64 levels deep" in refused(controller, "offers", "-f", str(task))


def test_real_image_references_are_accepted(controller: ControllerProcess, tmp_path: Path) -> None:
    for n, image in enumerate(["nvcr.io/nvidia/pytorch:24.01-py3", "localhost:5000/a/b", "python:3.11"]):
        path = write_task(tmp_path / f"t{n}.yaml", f"type: task\nname: real-{n}\nimage: {image}\n")
        out = controller.ctl("submit", "-f", str(path), "-d", timeout=BOUND)
        assert out.returncode == 0, out.stderr
        assert controller.task(f"real-{n}")["status"] == "pending"


# --- a client that skips dstackctl ----------------------------------------------------------------


def call(controller: ControllerProcess, method: str, request: object) -> grpc.RpcError:
    credentials = grpc.ssl_channel_credentials(root_certificates=controller.ca_file.read_bytes())
    options = [("grpc.ssl_target_name_override", CONTROLLER_SAN)]
    with grpc.secure_channel(controller.address, credentials, options=options) as channel:
        stub = pb_grpc.ClientServiceStub(channel)
        metadata = (("authorization", f"Bearer {controller.admin_token}"),)
        with pytest.raises(grpc.RpcError) as failed:
            getattr(stub, method)(request, metadata=metadata, timeout=BOUND)
    return failed.value


def expanded_bomb_json(levels: int) -> str:
    """What the YAML bomb means, written out as JSON: 9**levels strings in `commands`."""
    return json.dumps({"type": "task", "image": "ubuntu:24.04", "commands": ["lol"] * 9**levels})


@pytest.mark.parametrize(
    ("configuration_json", "message"),
    [
        (alias_bomb(), None),  # YAML is not JSON: refused by validation, with no bomb to expand
        (expanded_bomb_json(6), "the task configuration is larger than the 1 MiB limit"),  # 3.2 MB
        ('{"type": "task", "image": "x", "commands": ' + "[" * 3000 + "]" * 3000 + "}", "nests more than 64 levels"),
        ('{"type": "task", "image": "x", "env": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}", "nests more than 64"),
        ('{"type": "task", "image": "ubuntu", "resources": {"cpu": 1e29}}', "cpu count above the maximum of 4096"),
        ('{"type": "task", "image": "UPPER/../x:@@"}', "image: not an image reference"),
    ],
    ids=["yaml-bomb", "expanded-bomb", "list-3000", "map-100", "cpu-1e29", "image"],
)
def test_submit_rpc_refuses_with_invalid_argument(
    controller: ControllerProcess, configuration_json: str, message: str | None
) -> None:
    before = controller.ctl_json("ps", "-a")
    error = call(controller, "Submit", pb.SubmitRequest(configuration_json=configuration_json, name="bypass"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "\n" not in (error.details() or "")
    if message is not None:
        assert message in (error.details() or ""), error.details()
    assert controller.ctl_json("ps", "-a") == before


def test_apply_rpc_has_the_same_bounds(controller: ControllerProcess) -> None:
    fleet = json.dumps({"type": "fleet", "name": "big", "regions": ["r"] * 300_000})
    error = call(controller, "Apply", pb.ApplyRequest(kind="fleet", configuration_json=fleet))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "the fleet configuration is larger than the 1 MiB limit"


# --- request sizes (controller/server/request_size.py, ports.MAX_MESSAGE_BYTES) -------------------


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("GetTask", pb.GetTaskRequest(name="x" * 20_000)),
        ("StopTask", pb.StopTaskRequest(name="x" * 2_000_000)),
        ("Delete", pb.DeleteRequest(kind="fleet", name="x" * 20_000)),
        ("Submit", pb.SubmitRequest(configuration_json='{"type": "task", "image": "x"}', name="x" * 20_000)),
        ("Apply", pb.ApplyRequest(kind="x" * 20_000, configuration_json='{"type": "fleet", "name": "f"}')),
    ],
    ids=["get-20k", "stop-2m", "delete-20k", "submit-name-20k", "apply-kind-20k"],
)
def test_names_of_megabytes_are_refused_in_one_sentence(
    controller: ControllerProcess, method: str, request_message: object
) -> None:
    """Before: the name was looked up and echoed in the error, whose trailer broke gRPC's metadata
    limit: the client got "Stream removed (received metadata size exceeds hard limit ...)"."""
    error = call(controller, method, request_message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith(f"the {method} request"), error.details()
    assert error.details().endswith("past the 8 KiB limit for names and options")


def test_dstackctl_with_a_long_name_says_so(controller: ControllerProcess) -> None:
    out = controller.ctl("logs", "x" * 20_000, timeout=BOUND)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("dstackctl: the StreamLogs request takes 20004 bytes, past the 8 KiB limit"), (
        out.stderr
    )


def test_a_message_past_grpcs_limit_is_refused_before_it_is_read(controller: ControllerProcess) -> None:
    error = call(controller, "Submit", pb.SubmitRequest(configuration_json=" " * (5 * 1024 * 1024)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "SERVER: Received message larger than max (5242885 vs. 4194304)"
