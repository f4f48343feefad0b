"""Task configuration models and the YAML loader: dstack's short forms, defaults and error sentences."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from controller.configs import (
    CONFIGURATION_TYPES,
    ByteRange,
    ConfigError,
    CPUSpec,
    DiskSpec,
    GPUSpec,
    MountPoint,
    Range,
    ResourcesSpec,
    TaskConfiguration,
    format_size,
    load_task_file,
    normalize_arch,
    parse_config_text,
    parse_duration,
    parse_size,
    parse_task_text,
)
from controller.configs.common import ConfigModel

KB, MB, GB, TB = 1024, 1024**2, 1024**3, 1024**4


def task(text: str) -> TaskConfiguration:
    return parse_task_text(textwrap.dedent(text), "task.yaml")


def task_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        task(text)
    return info.value


# --- Range -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "low", "high", "text"),
    [
        ("4", 4, 4, "4"),
        (4, 4, 4, "4"),
        ("2..8", 2, 8, "2..8"),
        ("2..", 2, None, "2.."),
        ("..8", None, 8, "..8"),
        (" 2 .. 8 ", 2, 8, "2..8"),
        ("0..", 0, None, "0.."),
        ({"min": 1, "max": 3}, 1, 3, "1..3"),
        ({"min": 2}, 2, None, "2.."),
    ],
)
def test_int_range_forms(value: Any, low: int | None, high: int | None, text: str) -> None:
    parsed = Range[int].model_validate(value)
    assert (parsed.min, parsed.max) == (low, high)
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("..", "empty range"),
        ("8..2", "range 8..2 has its minimum above its maximum"),
        ("-1..", "must not be negative"),
        ("1...2", 'invalid range "1...2"'),
        ("1..2..3", 'invalid range "1..2..3"'),
        ("", 'invalid range ""'),
        (True, 'invalid range "True"'),
        ({"min": True}, "is not a number"),
        ("x", "valid integer"),
        ("1.5", "valid integer"),
        ({"min": 1, "mx": 2}, "Extra inputs are not permitted"),
    ],
)
def test_int_range_errors(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Range[int].model_validate(value)


def test_range_contains_is_inclusive_and_open_ended() -> None:
    bounded = Range[int].model_validate("2..4")
    assert [bounded.contains(n) for n in (1, 2, 3, 4, 5)] == [False, True, True, True, False]
    assert Range[int].model_validate("2..").contains(10**9)
    assert Range[int].model_validate("..4").contains(0)
    assert not Range[int].model_validate("..4").contains(5)


def test_float_range() -> None:
    parsed = Range[float].model_validate("0.5..1.5")
    assert (parsed.min, parsed.max) == (0.5, 1.5)


# --- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("512MB", 512 * MB),
        ("512mb", 512 * MB),
        ("8GB", 8 * GB),
        ("8 gb", 8 * GB),
        ("1.5GB", 1536 * MB),
        (".5GB", 512 * MB),
        ("2TB", 2 * TB),
        ("4KB", 4 * KB),
        ("100B", 100),
        ("16", 16 * GB),  # a bare number is gigabytes, as in dstack
        (16, 16 * GB),
        (0.5, 512 * MB),
        (0, 0),
    ],
)
def test_parse_size(value: Any, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["8XB", "GB", "8G", "-1GB", "1,5GB", "", True, None, [8]])
def test_parse_size_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (8 * GB, "8GB"),
        (512 * MB, "512MB"),
        (1024**3 // 2 * 3, "1.5GB"),
        (107374182, "0.1GB"),
        (256 * MB, "256MB"),
        (1536 * MB, "1.5GB"),
        (TB, "1TB"),
        (100 * GB, "100GB"),
        (3 * KB, "3KB"),
        (1000, "1000B"),
        (0, "0GB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize("size", [1, 999, 1000, 123456789, 107374182, 5 * GB + 1, 7 * TB + 3 * MB])
def test_format_size_parses_back_exactly(size: int) -> None:
    assert parse_size(format_size(size)) == size


# --- memory and disk ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "low", "high", "text"),
    [
        ("8GB..", 8 * GB, None, "8GB.."),
        ("512MB", 512 * MB, 512 * MB, "512MB"),
        ("1.5GB..4GB", 1536 * MB, 4 * GB, "1.5GB..4GB"),
        ("..8gb", None, 8 * GB, "..8GB"),
        ("0.5GB..", 512 * MB, None, "512MB.."),
        (16, 16 * GB, 16 * GB, "16GB"),
        ("8..16", 8 * GB, 16 * GB, "8GB..16GB"),
        ({"min": "1TB", "max": None}, TB, None, "1TB.."),
    ],
)
def test_memory_forms(value: Any, low: int | None, high: int | None, text: str) -> None:
    memory = ByteRange.model_validate(value)
    assert (memory.min, memory.max) == (low, high)
    assert str(memory) == text


@pytest.mark.parametrize(("value", "message"), [("8XB..", 'invalid size "8XB"'), ("4GB..2GB", "above")])
def test_memory_errors(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ByteRange.model_validate(value)


def test_memory_round_trips_through_dump_without_unit_drift() -> None:
    # A bare number means GB on input, so dumps must carry units or a reload would multiply by 1024**3.
    memory = ByteRange.model_validate("1.5GB..4GB")
    assert memory.model_dump() == {"min": "1.5GB", "max": "4GB"}
    assert ByteRange.model_validate(memory.model_dump()) == memory


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [("100GB..", 100 * GB, None), ("200GB", 200 * GB, 200 * GB), (50, 50 * GB, 50 * GB)],
)
def test_disk_forms(value: Any, low: int | None, high: int | None) -> None:
    disk = DiskSpec.model_validate(value)
    assert (disk.size.min, disk.size.max) == (low, high)
    assert DiskSpec.model_validate({"size": value}) == disk


def test_disk_str() -> None:
    assert str(DiskSpec.model_validate("100GB..")) == "100GB.."


# --- CPU ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "arch", "low", "high", "text"),
    [
        ("4", None, 4, 4, "4"),
        (4, None, 4, 4, "4"),
        ("2..", None, 2, None, "2.."),
        ("2..8", None, 2, 8, "2..8"),
        ("arm:4..", "arm64", 4, None, "arm64:4.."),
        ("x86:2..", "amd64", 2, None, "amd64:2.."),
        ("arm64:2", "arm64", 2, 2, "arm64:2"),
        ("aarch64:..16", "arm64", None, 16, "arm64:..16"),
        ("amd64:8", "amd64", 8, 8, "amd64:8"),
        ("x86_64:1..2", "amd64", 1, 2, "amd64:1..2"),
        ("ARM:4", "arm64", 4, 4, "arm64:4"),
        ("4..:arm", "arm64", 4, None, "arm64:4.."),
        ("arm", "arm64", 1, None, "arm64:1.."),
        ("x86_64", "amd64", 1, None, "amd64:1.."),
        ({"arch": "arm", "count": "4.."}, "arm64", 4, None, "arm64:4.."),
        ({"arch": "aarch64"}, "arm64", 1, None, "arm64:1.."),
        ({"count": 2}, None, 2, 2, "2"),
        ({"min": 2, "max": 4}, None, 2, 4, "2..4"),
    ],
)
def test_cpu_forms(value: Any, arch: str | None, low: int | None, high: int | None, text: str) -> None:
    cpu = CPUSpec.model_validate(value)
    assert cpu.arch == arch
    assert (cpu.count.min, cpu.count.max) == (low, high)
    assert str(cpu) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("arm:x", 'unknown CPU architecture "x"'),
        ("mips:2", 'unknown CPU architecture "mips"'),
        ("arm:2..x", '"2..x" is neither an architecture nor a count'),
        ("arm:amd64", "arch given twice"),
        ("2:4", "count given twice"),
        ("arm:", "empty part"),
        ("arm:4:x", "expected ARCH:COUNT"),
        ("arm:..", "empty range"),
        ("8..2", "above its maximum"),
        (True, "invalid CPU spec"),
        (2.5, "valid integer"),
        ({"arch": "sparc"}, 'unknown CPU architecture "sparc"'),
        ({"arch": "arm", "cores": 2}, "Extra inputs"),
    ],
)
def test_cpu_errors(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CPUSpec.model_validate(value)


@pytest.mark.parametrize(
    ("raw", "arch"),
    [("x86_64", "amd64"), ("amd64", "amd64"), ("x86", "amd64"), ("aarch64", "arm64"), ("arm64", "arm64")],
)
def test_normalize_arch(raw: str, arch: str) -> None:
    assert normalize_arch(raw) == arch


def test_cpu_round_trips_through_dump() -> None:
    cpu = CPUSpec.model_validate("arm:4..8")
    assert CPUSpec.model_validate(cpu.model_dump()) == cpu


# --- GPU ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "vendor", "names", "memory", "count"),
    [
        ("1", None, None, None, (1, 1)),
        (1, None, None, None, (1, 1)),
        ("2..", None, None, None, (2, None)),
        ("A100", None, ["A100"], None, (1, None)),
        ("A100:80GB:2", None, ["A100"], (80 * GB, 80 * GB), (2, 2)),
        ("nvidia:1..", "nvidia", None, None, (1, None)),
        ("24GB..", None, None, (24 * GB, None), (1, None)),
        ("H100,A100:2", None, ["H100", "A100"], None, (2, 2)),
        ("nvidia:A100:40GB..:1..2", "nvidia", ["A100"], (40 * GB, None), (1, 2)),
        ("2:A100", None, ["A100"], None, (2, 2)),
        ("AMD:MI300X", "amd", ["MI300X"], None, (1, None)),
        ("tpu:v5litepod-8", "google", ["v5litepod-8"], None, (1, None)),
        ("intel:..2", "intel", None, None, (None, 2)),
        ("16GB..24GB:RTX4090", None, ["RTX4090"], (16 * GB, 24 * GB), (1, None)),
        ({"name": "A100", "memory": "40GB..", "count": 2}, None, ["A100"], (40 * GB, None), (2, 2)),
        ({"vendor": "NVIDIA", "name": ["H100", "A100"]}, "nvidia", ["H100", "A100"], None, (1, None)),
    ],
)
def test_gpu_forms(
    value: Any,
    vendor: str | None,
    names: list[str] | None,
    memory: tuple[int | None, int | None] | None,
    count: tuple[int | None, int | None],
) -> None:
    gpu = GPUSpec.model_validate(value)
    assert gpu.vendor == vendor
    assert gpu.name == names
    assert (None if gpu.memory is None else (gpu.memory.min, gpu.memory.max)) == memory
    assert (gpu.count.min, gpu.count.max) == count
    # The printed form is itself a valid short form that means the same thing.
    assert GPUSpec.model_validate(str(gpu)) == gpu
    assert GPUSpec.model_validate(gpu.model_dump()) == gpu


@pytest.mark.parametrize(
    ("value", "text"),
    [("A100:80GB:2", "A100:80GB:2"), ("nvidia:A100:40GB..:1..2", "nvidia:A100:40GB..:1..2"), ("1", "1")],
)
def test_gpu_str(value: str, text: str) -> None:
    assert str(GPUSpec.model_validate(value)) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!", '"!!" is not a vendor, name, memory or count'),
        ("1..2..3", '"1..2..3" is not a vendor, name, memory or count'),
        ("80G", 'invalid size "80G"'),
        ("2x", 'invalid size "2x"'),
        ("A100:H100", "name given twice"),
        ("nvidia:amd", "vendor given twice"),
        ("A100:1:2", "count given twice"),
        ("16GB:24GB", "memory given twice"),
        ("A100::2", "empty part"),
        ("A100,,H100", 'invalid GPU name ""'),
        ("A100!", 'invalid GPU name "A100!"'),
        ("4..2", "above its maximum"),
        (True, "invalid GPU spec"),
        ({"vendor": "ibm"}, 'unknown GPU vendor "ibm"'),
        ({"name": []}, "name list is empty"),
        ({"name": "A100", "cnt": 2}, "Extra inputs"),
    ],
)
def test_gpu_errors(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GPUSpec.model_validate(value)


# --- resources ---------------------------------------------------------------------------------


def test_resources_defaults() -> None:
    resources = ResourcesSpec()
    assert resources.cpu.arch is None
    assert (resources.cpu.count.min, resources.cpu.count.max) == (1, None)
    assert (resources.memory.min, resources.memory.max) == (512 * MB, None)
    assert resources.gpu is None
    assert resources.disk is None
    assert resources.shm_size is None
    assert str(resources) == "cpu=1.. memory=512MB.."


def test_resources_full() -> None:
    resources = ResourcesSpec.model_validate(
        {"cpu": "arm:4..", "memory": "8GB..", "gpu": "A100:80GB:2", "disk": "100GB..", "shm_size": "2GB"}
    )
    assert resources.cpu.arch == "arm64"
    assert resources.memory.min == 8 * GB
    assert resources.gpu is not None and resources.gpu.name == ["A100"]
    assert resources.disk is not None and resources.disk.size.min == 100 * GB
    assert resources.shm_size == 2 * GB
    assert str(resources) == "cpu=arm64:4.. memory=8GB.. gpu=A100:80GB:2 disk=100GB.. shm_size=2GB"
    assert ResourcesSpec.model_validate(resources.model_dump()) == resources


def test_resources_forbid_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        ResourcesSpec.model_validate({"cpus": 4})


def test_default_instances_are_shared_safely() -> None:
    # Models are frozen: one task can never change the defaults another task sees.
    with pytest.raises(ValidationError):
        ResourcesSpec().cpu.count.min = 8


# --- task model --------------------------------------------------------------------------------


def test_task_defaults() -> None:
    config = TaskConfiguration.model_validate({"type": "task", "image": "ubuntu:24.04"})
    assert config.name is None
    assert config.image == "ubuntu:24.04"
    assert config.commands == []
    assert config.env == {}
    assert config.resources == ResourcesSpec()
    assert config.regions == config.availability_zones == config.fleets == config.backends == []
    assert config.volumes == []
    assert config.max_duration is None
    assert config.nodes == 1
    assert config.privileged is False
    assert config.working_dir is None


@pytest.mark.parametrize("name", ["a", "train-1", "x" + "y" * 40, "a-b-c-9"])
def test_task_name_valid(name: str) -> None:
    assert TaskConfiguration.model_validate({"image": "x", "name": name}).name == name


@pytest.mark.parametrize("name", ["", "1abc", "My-Task", "my_task", "x" * 42, "-a", "a.b"])
def test_task_name_invalid(name: str) -> None:
    with pytest.raises(ValidationError, match="lowercase letters, digits or dashes"):
        TaskConfiguration.model_validate({"image": "x", "name": name})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"A": "1", "B": "x y"}, {"A": "1", "B": "x y"}),
        (["A=1", "B=x=y", "C="], {"A": "1", "B": "x=y", "C": ""}),
        ({"N": 3, "F": 1.5, "T": True, "OFF": False}, {"N": "3", "F": "1.5", "T": "true", "OFF": "false"}),
        ([], {}),
    ],
)
def test_env_forms(env: Any, expected: dict[str, str]) -> None:
    assert TaskConfiguration.model_validate({"image": "x", "env": env}).env == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (["A=1", "B"], 'env item "B" must be KEY=VALUE'),
        (["A=1", "A=2"], 'env key "A" is given twice'),
        (["1A=x"], '"1A" is not a valid environment variable name'),
        ({"A": None}, 'env "A" needs a plain value'),
        ({"A": [1]}, 'env "A" needs a plain value'),
        ("A=1", "mapping or a list"),
        ([1], 'env item "1" must be KEY=VALUE'),
    ],
)
def test_env_errors(env: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TaskConfiguration.model_validate({"image": "x", "env": env})


@pytest.mark.parametrize(
    ("mount", "names", "instance_path", "path"),
    [
        ("vol:/data", ["vol"], None, "/data"),
        ("/host/path:/container/path", None, "/host/path", "/container/path"),
        ({"name": "vol", "path": "/data"}, ["vol"], None, "/data"),
        ({"name": ["vol-eu", "vol-us"], "path": "/data"}, ["vol-eu", "vol-us"], None, "/data"),
        ({"instance_path": "/mnt/x", "path": "/x"}, None, "/mnt/x", "/x"),
        ("vol:/data/", ["vol"], None, "/data"),
    ],
)
def test_mount_forms(mount: Any, names: list[str] | None, instance_path: str | None, path: str) -> None:
    parsed = MountPoint.model_validate(mount)
    assert (parsed.name, parsed.instance_path, parsed.path) == (names, instance_path, path)


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ("vol", "invalid mount"),
        ("a:b:c", "invalid mount"),
        ("vol:data", 'path "data" must be absolute'),
        ("./rel/dir:/data", 'path "./rel/dir" must be absolute'),
        ("vol:/a/../b", "must not contain"),
        ({"path": "/x"}, "exactly one of name"),
        ({"name": "v", "instance_path": "/h", "path": "/x"}, "exactly one of name"),
        ({"name": [], "path": "/x"}, "volume name list is empty"),
        ({"name": "Vol_1", "path": "/x"}, "lowercase letters"),
        ({"name": "v"}, "Field required"),
        ({"name": "v", "path": "/x", "mode": "ro"}, "Extra inputs"),
    ],
)
def test_mount_errors(mount: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MountPoint.model_validate(mount)


def test_mount_str() -> None:
    assert str(MountPoint.model_validate({"name": ["a", "b"], "path": "/d"})) == "a,b:/d"
    assert str(MountPoint.model_validate("/h:/c")) == "/h:/c"


def test_volumes_need_distinct_paths() -> None:
    with pytest.raises(ValidationError, match='two volumes are mounted at "/d"'):
        TaskConfiguration.model_validate({"image": "x", "volumes": ["a:/d", "/h:/d"]})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1h", 3600),
        ("30m", 1800),
        ("90s", 90),
        ("2d", 172800),
        ("1w", 604800),
        (600, 600),
        ("600", 600),
        ("off", None),
        ("OFF", None),
        (False, None),
        (None, None),
    ],
)
def test_max_duration(value: Any, seconds: int | None) -> None:
    assert TaskConfiguration.model_validate({"image": "x", "max_duration": value}).max_duration == seconds


@pytest.mark.parametrize("value", ["1y", "h", "-5m", 0, True, "1.5h", [1]])
def test_max_duration_errors(value: Any) -> None:
    with pytest.raises(ValidationError, match="duration"):
        TaskConfiguration.model_validate({"image": "x", "max_duration": value})


def test_parse_duration_plain() -> None:
    assert parse_duration("5 m") == 300


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nodes", 0, "greater than or equal to 1"),
        ("working_dir", "rel/dir", "must be absolute"),
        ("image", "   ", "image must not be empty"),
        ("commands", "echo hi", "valid list"),
        ("type", "service", "Input should be 'task'"),
    ],
)
def test_task_field_errors(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TaskConfiguration.model_validate({"image": "x", field: value})


def test_image_is_required() -> None:
    with pytest.raises(ValidationError, match="image"):
        TaskConfiguration.model_validate({"type": "task"})


def test_task_round_trips_through_python_and_json_dumps() -> None:
    config = TaskConfiguration.model_validate(
        {
            "name": "train",
            "image": "pytorch/pytorch:2.3",
            "commands": ["python train.py"],
            "env": ["A=1"],
            "resources": {
                "cpu": "arm:4..",
                "memory": "1.5GB..",
                "gpu": "nvidia:A100:40GB..:1..2",
                "disk": "100GB..",
                "shm_size": "512MB",
            },
            "regions": ["eu-west-1"],
            "availability_zones": ["eu-west-1a"],
            "volumes": [{"name": ["vol-eu", "vol-us"], "path": "/data"}, "/srv/cache:/cache"],
            "max_duration": "2h",
        }
    )
    assert TaskConfiguration.model_validate(config.model_dump()) == config
    assert TaskConfiguration.model_validate_json(config.model_dump_json()) == config


# --- loader: success ---------------------------------------------------------------------------


FULL_TASK = """\
type: task
name: train-arm
image: ghcr.io/acme/train:1.2
commands:
  - pip install -r requirements.txt
  - python train.py
env:
  - WANDB_MODE=offline
  - EPOCHS=3
resources:
  cpu: arm:4..
  memory: 8GB..
  gpu: A100:80GB:2
  disk: 100GB..
regions: [eu-west-1, us-east-1]
availability_zones: [eu-west-1a]
fleets: [gpu-fleet]
backends: [aws]
volumes:
  - name: [vol-eu, vol-us]
    path: /data
  - /mnt/cache:/cache
max_duration: 1h
nodes: 1
privileged: false
working_dir: /workspace
"""


def test_parse_full_task() -> None:
    config = task(FULL_TASK)
    assert config.name == "train-arm"
    assert config.image == "ghcr.io/acme/train:1.2"
    assert config.commands == ["pip install -r requirements.txt", "python train.py"]
    assert config.env == {"WANDB_MODE": "offline", "EPOCHS": "3"}
    assert config.resources.cpu.arch == "arm64"
    assert config.resources.cpu.count.min == 4
    assert config.resources.memory.min == 8 * GB
    gpu = config.resources.gpu
    assert gpu is not None and gpu.name == ["A100"] and gpu.count.min == 2
    assert config.regions == ["eu-west-1", "us-east-1"]
    assert config.availability_zones == ["eu-west-1a"]
    assert config.fleets == ["gpu-fleet"]
    assert config.backends == ["aws"]
    assert config.volumes[0].name == ["vol-eu", "vol-us"]
    assert config.volumes[1].instance_path == "/mnt/cache"
    assert config.max_duration == 3600
    assert config.working_dir == "/workspace"


def test_loaded_values_are_plain_python_types() -> None:
    # ruamel's round-trip scalars (ScalarFloat, LiteralScalarString, ...) must not leak into the models.
    config = task(
        """\
        type: task
        image: x
        commands:
          - |
            echo one
            echo two
        env:
          RATIO: 0.25
        """
    )
    assert type(config.commands[0]) is str
    assert config.commands[0] == "echo one\necho two\n"
    assert config.env == {"RATIO": "0.25"}


def test_empty_values_mean_defaults() -> None:
    config = task(
        """\
        type: task
        image: x
        commands:
        resources:
        regions:
        volumes:
        """
    )
    assert config.commands == [] and config.regions == [] and config.volumes == []
    assert config.resources == ResourcesSpec()


def test_yaml_off_is_the_word_off() -> None:
    assert task("type: task\nimage: x\nmax_duration: off\n").max_duration is None


def test_load_task_file(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(FULL_TASK)
    assert load_task_file(path) == task(FULL_TASK)


# --- loader: error sentences -------------------------------------------------------------------


def test_unknown_key_names_line_and_suggests() -> None:
    error = task_error(
        """\
        type: task
        image: ubuntu

        comands:
          - echo hi
        """
    )
    assert str(error) == 'unknown key "comands" in task.yaml line 4 (did you mean "commands"?)'
    assert error.line == 4
    assert error.key == "comands"


def test_unknown_nested_key_is_dotted() -> None:
    error = task_error(
        """\
        type: task
        image: ubuntu
        resources:
          memory: 8GB..
          cpus: 4
        """
    )
    assert str(error) == 'unknown key "resources.cpus" in task.yaml line 5 (did you mean "resources.cpu"?)'


def test_unknown_key_in_list_item() -> None:
    error = task_error(
        """\
        type: task
        image: ubuntu
        volumes:
          - vol:/data
          - name: other
            pth: /other
        """
    )
    assert str(error) == 'unknown key "volumes[1].pth" in task.yaml line 6 (did you mean "volumes[1].path"?)'


def test_unknown_key_in_gpu_mapping() -> None:
    error = task_error(
        """\
        type: task
        image: ubuntu
        resources:
          gpu:
            name: A100
            cont: 2
        """
    )
    assert str(error) == ('unknown key "resources.gpu.cont" in task.yaml line 6 (did you mean "resources.gpu.count"?)')


def test_unknown_key_without_close_match_has_no_suggestion() -> None:
    error = task_error("type: task\nimage: x\nzzz: 1\n")
    assert str(error) == 'unknown key "zzz" in task.yaml line 3'


def test_unknown_key_wins_over_the_missing_key_it_causes() -> None:
    error = task_error("type: task\nimgae: ubuntu\n")
    assert str(error) == 'unknown key "imgae" in task.yaml line 2 (did you mean "image"?)'


def test_non_string_key_is_an_unknown_key() -> None:
    assert str(task_error("type: task\nimage: x\n1: y\n")) == 'unknown key "1" in task.yaml line 3'


def test_invalid_cpu_short_form() -> None:
    error = task_error(
        """\
        type: task
        name: demo
        image: ubuntu
        commands: [echo]
        env: {}
        resources:
          cpu: arm:x
        """
    )
    assert str(error).startswith('invalid resources.cpu "arm:x" in task.yaml line 7: ')
    assert 'unknown CPU architecture "x"' in str(error)
    assert error.line == 7
    assert error.key == "resources.cpu"


def test_invalid_value_inside_short_form_is_reported_at_the_scalar() -> None:
    error = task_error("type: task\nimage: x\nresources:\n  memory: 8XB..\n")
    assert str(error) == (
        'invalid resources.memory "8XB.." in task.yaml line 4: invalid size "8XB" (expected a number with MB, GB or TB)'
    )


def test_invalid_gpu() -> None:
    error = task_error("type: task\nimage: x\nresources:\n  gpu: A100:80GB:2:3\n")
    assert str(error) == (
        'invalid resources.gpu "A100:80GB:2:3" in task.yaml line 4: invalid GPU spec "A100:80GB:2:3": count given twice'
    )


def test_invalid_env_item() -> None:
    error = task_error("type: task\nimage: x\nenv:\n  - A=1\n  - B\n")
    assert str(error) == 'invalid env in task.yaml line 3: env item "B" must be KEY=VALUE'


def test_invalid_list_item_names_index_and_its_line() -> None:
    error = task_error("type: task\nimage: x\ncommands:\n  - ok\n  - [1]\n")
    assert str(error) == "invalid commands[1] in task.yaml line 5: input should be a valid string"


def test_invalid_name() -> None:
    error = task_error("type: task\nname: My_Task\nimage: x\n")
    assert str(error).startswith('invalid name "My_Task" in task.yaml line 2: ')


def test_invalid_scalar_types() -> None:
    assert str(task_error("type: task\nimage: x\nnodes: two\n")).startswith(
        'invalid nodes "two" in task.yaml line 3: input should be a valid integer'
    )
    assert str(task_error("type: task\nimage: x\nmax_duration: 1y\n")).startswith(
        'invalid max_duration "1y" in task.yaml line 3: invalid duration "1y"'
    )


def test_missing_key() -> None:
    error = task_error("type: task\ncommands: [echo hi]\n")
    assert str(error) == 'missing key "image" in task.yaml'
    assert error.line is None


def test_missing_nested_key_names_the_item_line() -> None:
    error = task_error("type: task\nimage: x\nvolumes:\n  - name: a\n    path: /a\n  - name: b\n")
    assert str(error) == 'missing key "volumes[1].path" in task.yaml line 6'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type: task\nimage: [\n", "task.yaml is not valid YAML: "),
        ("type: task\n\timage: x\n", "task.yaml is not valid YAML: found character '\\t' that cannot start"),
        ("type: task\nimage: x\nimage: y\n", 'task.yaml is not valid YAML: found duplicate key "image"'),
        ("type: task\n---\ntype: task\n", "task.yaml is not valid YAML: expected a single document"),
    ],
)
def test_invalid_yaml(text: str, message: str) -> None:
    error = task_error(text)
    assert str(error).startswith(message)
    assert str(error).endswith(f"(line {error.line})")
    assert "\n" not in str(error)


def test_invalid_yaml_line_number() -> None:
    assert str(task_error("type: task\nimage: x\nenv: {A: 1\n")).endswith("(line 4)")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n", "image: x\n"])
def test_not_a_task_mapping(text: str) -> None:
    assert str(task_error(text)) == "task.yaml must be a mapping with type: task"


def test_unknown_type() -> None:
    error = task_error("type: taks\nimage: x\n")
    assert str(error) == 'unknown type "taks" in task.yaml line 1 (expected one of: task)'
    assert error.line == 1


def test_unknown_type_reports_its_own_line() -> None:
    assert str(task_error("# comment\nimage: x\ntype: 3\n")) == (
        'unknown type "3" in task.yaml line 3 (expected one of: task)'
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_task_file(path)
    assert str(info.value) == f"task file not found: {path}"


def test_file_errors_name_the_path(tmp_path: Path) -> None:
    path = tmp_path / "jobs" / "task.yaml"
    path.parent.mkdir()
    path.write_text("type: task\nimage: x\nprivleged: true\n")
    with pytest.raises(ConfigError) as info:
        load_task_file(path)
    assert str(info.value) == f'unknown key "privleged" in {path} line 3 (did you mean "privileged"?)'


def test_errors_are_one_line_without_pydantic_noise() -> None:
    texts = [
        "type: task\nimage: x\nresources:\n  cpu: {count: 2..x}\n",
        "type: task\nimage: 5\n",
        "type: task\nimage: x\nname: |\n  two\n  lines\n",
        "type: task\nimage: x\nname: " + "a" * 100 + "\n",
    ]
    for text in texts:
        message = str(task_error(text))
        assert "\n" not in message
        assert "pydantic" not in message and "Value error" not in message
        assert len(message) < 250


# --- loader: dispatch on type ------------------------------------------------------------------


class _GatewayStub(ConfigModel):
    type: Literal["gateway"] = "gateway"
    name: str


def test_new_type_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CONFIGURATION_TYPES, "gateway", _GatewayStub)
    gateway = parse_config_text("type: gateway\nname: gw\n", "gateway.yaml")
    assert isinstance(gateway, _GatewayStub) and gateway.name == "gw"
    assert isinstance(parse_config_text("type: task\nimage: x\n", "task.yaml"), TaskConfiguration)
    with pytest.raises(ConfigError) as info:
        parse_config_text("type: gateway\nnme: gw\n", "gateway.yaml")
    assert str(info.value) == 'unknown key "nme" in gateway.yaml line 2 (did you mean "name"?)'
    with pytest.raises(ConfigError) as info:
        parse_task_text("type: gateway\nname: gw\n", "gateway.yaml")
    assert str(info.value) == "gateway.yaml line 1 says type: gateway, but a task configuration is needed here"
    with pytest.raises(ConfigError) as info:
        parse_config_text("type: gatway\n", "x.yaml")
    assert str(info.value) == 'unknown type "gatway" in x.yaml line 1 (expected one of: fleet, gateway, task, volume)'
