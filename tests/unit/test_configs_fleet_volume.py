"""Fleet and volume configurations, `resources.nvme`, and the apply/any-file loaders."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from controller.configs import (
    CONFIGURATION_TYPES,
    DEFAULT_FLEET_IDLE_DURATION,
    KNOWN_BACKENDS,
    ConfigError,
    FleetConfiguration,
    Range,
    ResourcesSpec,
    TaskConfiguration,
    VolumeConfiguration,
    load_any_file,
    load_apply_file,
    load_config_file,
    load_fleet_file,
    load_task_file,
    load_volume_file,
    parse_any_text,
    parse_apply_text,
    parse_config_text,
    parse_fleet_text,
    parse_volume_text,
)

GB, TB = 1024**3, 1024**4


def fleet(text: str) -> FleetConfiguration:
    return parse_fleet_text(textwrap.dedent(text), "fleet.yaml")


def volume(text: str) -> VolumeConfiguration:
    return parse_volume_text(textwrap.dedent(text), "volume.yaml")


def fleet_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        fleet(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def volume_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        volume(text)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- fleet: dstack's examples ------------------------------------------------------------------


def test_fleet_dstack_example() -> None:
    config = fleet(
        """\
        type: fleet
        name: my-fleet
        nodes: 2
        resources:
          gpu: 24GB
        availability_zones: [eu-west-1a]
        """
    )
    assert config.type == "fleet"
    assert config.name == "my-fleet"
    assert config.nodes == Range[int](min=2, max=2)
    assert config.resources is not None and config.resources.gpu is not None
    memory = config.resources.gpu.memory
    assert memory is not None and (memory.min, memory.max) == (24 * GB, 24 * GB)
    assert config.availability_zones == ["eu-west-1a"]


def test_fleet_defaults() -> None:
    config = FleetConfiguration.model_validate({"type": "fleet", "name": "on-prem"})
    assert config.availability_zones == config.regions == config.backends == []
    assert config.resources is None
    assert config.labels == {}
    assert config.nodes is None
    assert config.idle_duration == DEFAULT_FLEET_IDLE_DURATION == 3 * 86400  # dstack's default for fleets
    assert config.spot_policy is None
    assert config.max_price is None
    assert config.burstable is False


FULL_FLEET = """\
type: fleet
name: gpu-burst
regions: [eu-west-1, westeurope]
availability_zones: [eu-west-1a, eu-west-1b]
resources:
  cpu: arm:8..
  memory: 32GB..
  gpu: nvidia:A100:80GB:1..2
  disk: 200GB..
  nvme: true
labels:
  tier: gpu
  acme.io/rack: r12
  ssd: true
  generation: 4
backends: [aws, azure, local]
nodes: 0..4
idle_duration: 1h
spot_policy: auto
max_price: 2.5
burstable: true
"""


def test_full_fleet() -> None:
    config = fleet(FULL_FLEET)
    assert config.regions == ["eu-west-1", "westeurope"]
    assert config.availability_zones == ["eu-west-1a", "eu-west-1b"]
    assert config.resources is not None
    assert config.resources.cpu.arch == "arm64"
    assert config.resources.nvme is True
    assert config.resources.disk is not None and config.resources.disk.size.min == 200 * GB
    # Plain values become strings as YAML spells them.
    assert config.labels == {"tier": "gpu", "acme.io/rack": "r12", "ssd": "true", "generation": "4"}
    assert config.backends == ["aws", "azure", "local"]
    assert config.nodes == Range[int](min=0, max=4)
    assert config.idle_duration == 3600
    assert config.spot_policy == "auto"
    assert config.max_price == 2.5
    assert config.burstable is True


@pytest.mark.parametrize(
    ("nodes", "low", "high"),
    [
        (2, 2, 2),
        ("2", 2, 2),
        (0, 0, 0),
        ("0..4", 0, 4),
        ("1..", 1, None),
        ("..4", 0, 4),  # dstack always has a minimum; an open lower end is zero
        ({"min": 1, "max": 3}, 1, 3),
        ({"min": 2}, 2, None),
        ({"max": 5}, 0, 5),
    ],
)
def test_fleet_nodes_forms(nodes: Any, low: int, high: int | None) -> None:
    config = FleetConfiguration.model_validate({"name": "f", "nodes": nodes})
    assert config.nodes is not None and (config.nodes.min, config.nodes.max) == (low, high)


@pytest.mark.parametrize(("value", "seconds"), [("off", None), ("30m", 1800), (600, 600), ("3d", 259200)])
def test_fleet_idle_duration(value: Any, seconds: int | None) -> None:
    assert FleetConfiguration.model_validate({"name": "f", "idle_duration": value}).idle_duration == seconds


def test_fleet_yaml_off_is_the_word_off() -> None:
    assert fleet("type: fleet\nname: f\nidle_duration: off\n").idle_duration is None


@pytest.mark.parametrize("policy", ["spot", "on-demand", "auto"])
def test_fleet_spot_policies(policy: str) -> None:
    assert FleetConfiguration.model_validate({"name": "f", "spot_policy": policy}).spot_policy == policy


@pytest.mark.parametrize("backend", KNOWN_BACKENDS)
def test_fleet_known_backends(backend: str) -> None:
    assert FleetConfiguration.model_validate({"name": "f", "backends": [backend]}).backends == [backend]


def test_known_backends() -> None:
    assert KNOWN_BACKENDS == ("aws", "azure", "local")


def test_fleet_empty_values_mean_defaults() -> None:
    config = fleet("type: fleet\nname: f\nregions:\navailability_zones:\nlabels:\nbackends:\nresources:\n")
    assert config == FleetConfiguration(name="f")


def test_fleet_round_trips_through_python_and_json_dumps() -> None:
    config = fleet(FULL_FLEET)
    assert FleetConfiguration.model_validate(config.model_dump()) == config
    assert FleetConfiguration.model_validate_json(config.model_dump_json()) == config
    off = FleetConfiguration.model_validate({"name": "f", "idle_duration": "off", "nodes": "1.."})
    assert FleetConfiguration.model_validate_json(off.model_dump_json()) == off
    assert FleetConfiguration.model_validate_json(off.model_dump_json()).idle_duration is None
    bare = FleetConfiguration(name="f")
    assert FleetConfiguration.model_validate_json(bare.model_dump_json()) == bare


# --- fleet: error sentences --------------------------------------------------------------------


FLEET = "type: fleet\nname: f\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type: fleet\nnodes: 2\n", 'missing key "name" in fleet.yaml'),
        (
            "type: fleet\nname: GPU_fleet\n",
            'invalid name "GPU_fleet" in fleet.yaml line 2: '
            "a name is 1 to 41 lowercase letters, digits or dashes, starting with a letter",
        ),
        (
            FLEET + "availability_zone: [eu-west-1a]\n",
            'unknown key "availability_zone" in fleet.yaml line 3 (did you mean "availability_zones"?)',
        ),
        (FLEET + "placement: cluster\n", 'unknown key "placement" in fleet.yaml line 3'),
        (
            FLEET + "resources:\n  gpus: 1\n",
            'unknown key "resources.gpus" in fleet.yaml line 4 (did you mean "resources.gpu"?)',
        ),
        (
            FLEET + "resources:\n  gpu: A100:80GB:2:3\n",
            'invalid resources.gpu "A100:80GB:2:3" in fleet.yaml line 4: '
            'invalid GPU spec "A100:80GB:2:3": count given twice',
        ),
        (
            FLEET + "backends: [aws, gcp]\n",
            'invalid backends[1] "gcp" in fleet.yaml line 3: '
            'unknown backend "gcp" (expected one of: aws, azure, local)',
        ),
        (
            FLEET + "backends:\n  - aws\n  - aws\n",
            'invalid backends in fleet.yaml line 3: backend "aws" is listed twice',
        ),
        (FLEET + "backends: aws\n", 'invalid backends "aws" in fleet.yaml line 3: input should be a valid list'),
        (
            FLEET + "nodes: 4..2\n",
            'invalid nodes "4..2" in fleet.yaml line 3: range 4..2 has its minimum above its maximum',
        ),
        (
            FLEET + "nodes: {min: 4, max: 2}\n",
            "invalid nodes in fleet.yaml line 3: range 4..2 has its minimum above its maximum",
        ),
        (
            FLEET + "nodes: two\n",
            'invalid nodes "two" in fleet.yaml line 3: '
            "input should be a valid integer, unable to parse string as an integer",
        ),
        (
            FLEET + "nodes: ..\n",
            'invalid nodes ".." in fleet.yaml line 3: empty range ".." (give at least one end, like 2..)',
        ),
        (FLEET + "nodes: -1\n", 'invalid nodes "-1" in fleet.yaml line 3: range -1 must not be negative'),
        (
            FLEET + "nodes: true\n",
            'invalid nodes "true" in fleet.yaml line 3: invalid range "True" (expected a number or a range like 2..8)',
        ),
        (FLEET + "nodes:\n  min: 1\n  target: 2\n", 'unknown key "nodes.target" in fleet.yaml line 5'),
        (
            FLEET + "idle_duration: 3x\n",
            'invalid idle_duration "3x" in fleet.yaml line 3: '
            'invalid duration "3x" (expected seconds or a number with s, m, h, d or w)',
        ),
        (FLEET + "idle_duration: 0\n", 'invalid idle_duration "0" in fleet.yaml line 3: duration "0" must be positive'),
        (
            FLEET + "spot_policy: cheap\n",
            "invalid spot_policy \"cheap\" in fleet.yaml line 3: input should be 'spot', 'on-demand' or 'auto'",
        ),
        (FLEET + "max_price: 0\n", 'invalid max_price "0" in fleet.yaml line 3: input should be greater than 0'),
        (FLEET + "max_price: -2\n", 'invalid max_price "-2" in fleet.yaml line 3: input should be greater than 0'),
        (
            FLEET + "max_price: true\n",
            'invalid max_price "true" in fleet.yaml line 3: a price is a number of dollars per hour, like 1.5',
        ),
        (FLEET + "max_price: .inf\n", 'invalid max_price "inf" in fleet.yaml line 3: input should be a finite number'),
        (
            FLEET + "max_price: cheap\n",
            'invalid max_price "cheap" in fleet.yaml line 3: '
            "input should be a valid number, unable to parse string as a number",
        ),
        (
            FLEET + "labels: {a b: x}\n",
            'invalid labels in fleet.yaml line 3: "a b" is not a valid label name '
            '(letters, digits, ".", "_", "-" or "/", starting and ending with a letter or digit)',
        ),
        (FLEET + "labels:\n  rack:\n", 'invalid labels in fleet.yaml line 3: label "rack" needs a plain value'),
        (FLEET + "labels: {rack: [1]}\n", 'invalid labels in fleet.yaml line 3: label "rack" needs a plain value'),
        (FLEET + "labels: [rack]\n", "invalid labels in fleet.yaml line 3: input should be a valid dictionary"),
        (
            FLEET + "burstable: maybe\n",
            'invalid burstable "maybe" in fleet.yaml line 3: '
            "input should be a valid boolean, unable to interpret input",
        ),
        (
            FLEET + "regions: eu-west-1\n",
            'invalid regions "eu-west-1" in fleet.yaml line 3: input should be a valid list',
        ),
        (FLEET + "type: fleet\n", 'fleet.yaml is not valid YAML: found duplicate key "type" with value "fleet"'),
    ],
)
def test_fleet_error_sentences(text: str, message: str) -> None:
    assert fleet_error(text).startswith(message)


def test_fleet_error_carries_line_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        fleet(FLEET + "regions: [eu-west-1]\nbackends: [aws, gcp]\n")
    assert (info.value.line, info.value.key) == (4, "backends[1]")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("type", "task", "Input should be 'fleet'"),
        ("max_price", 0, "greater than 0"),
        ("backends", ["gcp"], 'unknown backend "gcp"'),
        ("labels", {"-x": "1"}, "not a valid label name"),
    ],
)
def test_fleet_model_errors(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FleetConfiguration.model_validate({"name": "f", field: value})


# --- volume: dstack's examples -----------------------------------------------------------------


def test_local_volume_with_path() -> None:
    config = volume(
        """\
        type: volume
        name: shared-data
        backend: local
        region: on-prem-eu
        availability_zone: rack-1
        path: /mnt/nfs/shared-data/
        """
    )
    assert config.type == "volume"
    assert config.name == "shared-data"
    assert config.backend == "local"
    assert config.region == "on-prem-eu"
    assert config.availability_zone == "rack-1"
    assert config.path == "/mnt/nfs/shared-data"  # normalized
    assert config.size is None and config.volume_id is None


def test_aws_volume_with_size() -> None:
    config = volume(
        """\
        type: volume
        name: my-volume
        backend: aws
        region: eu-central-1
        size: 100GB
        """
    )
    assert (config.backend, config.region, config.size) == ("aws", "eu-central-1", 100 * GB)
    assert config.availability_zone is None and config.path is None and config.volume_id is None


def test_azure_volume_with_zone_and_bare_number_size() -> None:
    config = volume("type: volume\nname: v\nbackend: azure\nregion: westeurope\navailability_zone: '1'\nsize: 50\n")
    assert (config.availability_zone, config.size) == ("1", 50 * GB)


def test_existing_cloud_volume_needs_no_size() -> None:
    # dstack: size when creating a volume, volume_id when registering an existing one.
    config = volume("type: volume\nname: v\nbackend: aws\nregion: eu-west-1\nvolume_id: vol-0123456789abcdef\n")
    assert (config.volume_id, config.size) == ("vol-0123456789abcdef", None)
    both = volume("type: volume\nname: v\nbackend: aws\nregion: eu-west-1\nvolume_id: vol-1\nsize: 1TB\n")
    assert (both.volume_id, both.size) == ("vol-1", TB)


def test_local_volume_may_give_a_size() -> None:
    assert volume("type: volume\nname: v\nbackend: local\nregion: r\npath: /x\nsize: 1TB\n").size == TB


def test_volume_round_trips_through_python_and_json_dumps() -> None:
    for config in (
        VolumeConfiguration(name="a", backend="local", region="r", availability_zone="z", path="/mnt/a"),
        VolumeConfiguration.model_validate({"name": "b", "backend": "aws", "region": "eu-west-1", "size": "1.5GB"}),
        VolumeConfiguration.model_validate({"name": "c", "backend": "azure", "region": "westeurope", "volume_id": "d"}),
    ):
        assert VolumeConfiguration.model_validate(config.model_dump()) == config
        assert VolumeConfiguration.model_validate_json(config.model_dump_json()) == config
    # Sizes are dumped with units: a bare number would be read back as gigabytes.
    sized = VolumeConfiguration.model_validate({"name": "b", "backend": "aws", "region": "r", "size": "100GB"})
    assert sized.model_dump()["size"] == "100GB"


# --- volume: error sentences -------------------------------------------------------------------


def _vol(backend: str, extra: str = "") -> str:
    return f"type: volume\nname: data\nbackend: {backend}\nregion: eu-west-1\n{extra}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type: volume\nbackend: aws\nregion: r\nsize: 1\n", 'missing key "name" in volume.yaml'),
        ("type: volume\nname: data\nregion: r\n", 'missing key "backend" in volume.yaml'),
        ("type: volume\nname: data\nbackend: aws\nsize: 1\n", 'missing key "region" in volume.yaml'),
        (
            "type: volume\nname: Data\nbackend: aws\nregion: r\nsize: 1\n",
            'invalid name "Data" in volume.yaml line 2: a name is 1 to 41 lowercase letters',
        ),
        (
            _vol("gcp"),
            'invalid backend "gcp" in volume.yaml line 3: unknown backend "gcp" (expected one of: aws, azure, local)',
        ),
        (
            _vol("3", "size: 1\n"),
            "invalid backend \"3\" in volume.yaml line 3: input should be 'aws', 'azure' or 'local'",
        ),
        (
            _vol("local"),
            'missing key "path" in volume.yaml: a local volume needs the absolute path of a directory'
            " that exists on every host of its region or zone (such as an NFS mount)",
        ),
        (
            _vol("aws"),
            'missing key "size" in volume.yaml: an aws volume needs size (like 100GB) to create it,'
            " or volume_id to use an existing one",
        ),
        (
            _vol("azure"),
            'missing key "size" in volume.yaml: an azure volume needs size (like 100GB) to create it,'
            " or volume_id to use an existing one",
        ),
        (
            _vol("aws", "size: 10GB\npath: /mnt/data\n"),
            'invalid path "/mnt/data" in volume.yaml line 6: path is only for local volumes'
            " (an aws volume is attached by the cloud)",
        ),
        (
            _vol("azure", "size: 10GB\npath: /mnt/data\n"),
            'invalid path "/mnt/data" in volume.yaml line 6: path is only for local volumes'
            " (an azure volume is attached by the cloud)",
        ),
        (
            _vol("local", "path: /mnt/data\nvolume_id: vol-1\n"),
            'invalid volume_id "vol-1" in volume.yaml line 6: volume_id is only for aws and azure volumes'
            " (a local volume is its path)",
        ),
        (_vol("local", "path: data\n"), 'invalid path "data" in volume.yaml line 5: path "data" must be absolute'),
        (
            _vol("local", "path: /a/../b\n"),
            'invalid path "/a/../b" in volume.yaml line 5: path "/a/../b" must not contain ".."',
        ),
        (_vol("aws", "size: 0\n"), 'invalid size "0" in volume.yaml line 5: size must be positive'),
        (
            _vol("aws", "size: 10XB\n"),
            'invalid size "10XB" in volume.yaml line 5: invalid size "10XB" (expected a number with MB, GB or TB)',
        ),
        (
            "type: volume\nname: data\nbackend: aws\nregion: ' '\nsize: 1\n",
            'invalid region " " in volume.yaml line 4: region must not be empty',
        ),
        (
            _vol("aws", "size: 1\navailability_zone: ''\n"),
            'invalid availability_zone "" in volume.yaml line 6: availability_zone must not be empty',
        ),
        (
            _vol("aws", "volume_id: ''\n"),
            'invalid volume_id "" in volume.yaml line 5: volume_id must not be empty',
        ),
        (
            _vol("aws", "size: 1\navailability_zones: [a]\n"),
            'unknown key "availability_zones" in volume.yaml line 6 (did you mean "availability_zone"?)',
        ),
        (
            _vol("aws", "size: 1\nauto_cleanup_duration: 1h\n"),
            'unknown key "auto_cleanup_duration" in volume.yaml line 6',
        ),
    ],
)
def test_volume_error_sentences(text: str, message: str) -> None:
    assert volume_error(text).startswith(message)


def test_volume_cross_field_error_has_the_key_but_no_line() -> None:
    with pytest.raises(ConfigError) as info:
        volume(_vol("local"))
    assert (info.value.line, info.value.key) == (None, "path")


def test_volume_refused_path_points_at_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        volume(_vol("aws", "size: 1\n\npath: /x\n"))
    assert (info.value.line, info.value.key) == (7, "path")


def test_volume_model_errors() -> None:
    with pytest.raises(ValidationError, match="a local volume needs the absolute path"):
        VolumeConfiguration(name="v", backend="local", region="r")
    with pytest.raises(ValidationError, match="an aws volume needs size"):
        VolumeConfiguration(name="v", backend="aws", region="r")
    with pytest.raises(ValidationError, match="Input should be 'volume'"):
        VolumeConfiguration.model_validate({"type": "fleet", "name": "v", "backend": "local", "region": "r"})


# --- resources.nvme ----------------------------------------------------------------------------


def test_nvme_defaults_off_and_is_hidden() -> None:
    assert ResourcesSpec().nvme is False
    assert "nvme" not in str(ResourcesSpec())


def test_nvme_shown_when_required() -> None:
    resources = ResourcesSpec.model_validate({"cpu": "4", "nvme": True})
    assert resources.nvme is True
    assert str(resources) == "cpu=4 memory=512MB.. nvme=true"
    assert ResourcesSpec.model_validate_json(resources.model_dump_json()) == resources


def test_nvme_in_a_task() -> None:
    config = parse_config_text("type: task\nimage: x\nresources:\n  nvme: true\n", "task.yaml")
    assert isinstance(config, TaskConfiguration) and config.resources.nvme is True
    with pytest.raises(ConfigError) as info:
        parse_config_text("type: task\nimage: x\nresources:\n  nvme: fast\n", "task.yaml")
    assert str(info.value).startswith(
        'invalid resources.nvme "fast" in task.yaml line 4: input should be a valid boolean'
    )


# --- dispatch: parse_config_text, the per-type loaders, load_any_file and apply -----------------


TASK_TEXT = "type: task\nimage: ubuntu\n"
FLEET_TEXT = "type: fleet\nname: gpu\nnodes: 2\n"
VOLUME_TEXT = "type: volume\nname: data\nbackend: local\nregion: eu\npath: /mnt/data\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_registry_has_every_type() -> None:
    assert {
        "task": TaskConfiguration,
        "fleet": FleetConfiguration,
        "volume": VolumeConfiguration,
    } == CONFIGURATION_TYPES


def test_parse_config_text_dispatches_on_type() -> None:
    assert isinstance(parse_config_text(TASK_TEXT, "a.yaml"), TaskConfiguration)
    assert isinstance(parse_config_text(FLEET_TEXT, "a.yaml"), FleetConfiguration)
    assert isinstance(parse_config_text(VOLUME_TEXT, "a.yaml"), VolumeConfiguration)


def test_parse_config_text_with_several_expected_types() -> None:
    assert isinstance(parse_config_text(FLEET_TEXT, "a.yaml", expected=("fleet", "volume")), FleetConfiguration)
    with pytest.raises(ConfigError) as info:
        parse_config_text(TASK_TEXT, "a.yaml", expected=("fleet", "volume"))
    assert str(info.value) == "a.yaml line 1 says type: task, but a fleet or volume configuration is needed here"


def test_unknown_type_lists_every_type() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text("type: flet\nname: x\n", "x.yaml")
    assert str(info.value) == 'unknown type "flet" in x.yaml line 1 (expected one of: fleet, task, volume)'


def test_load_fleet_and_volume_files(tmp_path: Path) -> None:
    assert load_fleet_file(write(tmp_path, "fleet.yaml", FLEET_TEXT)) == fleet(FLEET_TEXT)
    assert load_volume_file(write(tmp_path, "volume.yaml", VOLUME_TEXT)) == volume(VOLUME_TEXT)
    assert load_config_file(write(tmp_path, "f.yaml", FLEET_TEXT), "fleet") == fleet(FLEET_TEXT)


def test_per_type_loaders_refuse_other_types(tmp_path: Path) -> None:
    path = write(tmp_path, "volume.yaml", VOLUME_TEXT)
    with pytest.raises(ConfigError) as info:
        load_fleet_file(path)
    assert str(info.value) == f"{path} line 1 says type: volume, but a fleet configuration is needed here"
    with pytest.raises(ConfigError) as info:
        load_volume_file(write(tmp_path, "fleet.yaml", FLEET_TEXT))
    assert str(info.value).endswith("says type: fleet, but a volume configuration is needed here")
    with pytest.raises(ConfigError) as info:
        load_task_file(write(tmp_path, "fleet.yaml", FLEET_TEXT))
    assert str(info.value).endswith("says type: fleet, but a task configuration is needed here")
    with pytest.raises(ConfigError) as info:
        parse_fleet_text("name: gpu\n", "fleet.yaml")
    assert str(info.value) == "fleet.yaml must be a mapping with type: fleet"


def test_missing_files_name_their_kind(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    for load, what in ((load_fleet_file, "fleet"), (load_volume_file, "volume"), (load_any_file, "configuration")):
        with pytest.raises(ConfigError) as info:
            load(path)
        assert str(info.value) == f"{what} file not found: {path}"
    with pytest.raises(ConfigError) as info:
        load_apply_file(path)
    assert str(info.value) == f"configuration file not found: {path}"


def test_file_errors_name_the_path(tmp_path: Path) -> None:
    path = write(tmp_path, "fleet.yaml", "type: fleet\nname: gpu\nnode: 2\n")
    with pytest.raises(ConfigError) as info:
        load_fleet_file(path)
    assert str(info.value) == f'unknown key "node" in {path} line 3 (did you mean "nodes"?)'


def test_load_any_file_takes_every_type(tmp_path: Path) -> None:
    assert isinstance(load_any_file(write(tmp_path, "t.yaml", TASK_TEXT)), TaskConfiguration)
    assert isinstance(load_any_file(write(tmp_path, "f.yaml", FLEET_TEXT)), FleetConfiguration)
    assert isinstance(load_any_file(write(tmp_path, "v.yaml", VOLUME_TEXT)), VolumeConfiguration)
    with pytest.raises(ConfigError) as info:
        parse_any_text("- a\n", "x.yaml")
    assert str(info.value) == "x.yaml must be a mapping with type: fleet|task|volume"


def test_apply_takes_fleets_and_volumes(tmp_path: Path) -> None:
    assert load_apply_file(write(tmp_path, "fleet.yaml", FLEET_TEXT)) == fleet(FLEET_TEXT)
    assert load_apply_file(write(tmp_path, "volume.yaml", VOLUME_TEXT)) == volume(VOLUME_TEXT)


def test_apply_refuses_a_task_file(tmp_path: Path) -> None:
    path = write(tmp_path, "task.yaml", TASK_TEXT)
    with pytest.raises(ConfigError) as info:
        load_apply_file(path)
    assert str(info.value) == f"{path} is a task: use dstackctl submit -f {path}"
    assert (info.value.line, info.value.key) == (1, "type")
    with pytest.raises(ConfigError) as info:
        parse_apply_text(TASK_TEXT, "task.yaml")
    assert str(info.value) == "task.yaml is a task: use dstackctl submit -f task.yaml"


def test_apply_refuses_a_task_file_before_checking_it() -> None:
    # A task with mistakes is still answered with the command it needs.
    with pytest.raises(ConfigError) as info:
        parse_apply_text("name: x\nimgae: ubuntu\ntype: task\n", "task.yaml")
    assert str(info.value) == "task.yaml is a task: use dstackctl submit -f task.yaml"
    assert info.value.line == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "x.yaml must be a mapping with type: fleet|volume"),
        ("name: gpu\n", "x.yaml must be a mapping with type: fleet|volume"),
        ("type: flet\n", 'unknown type "flet" in x.yaml line 1 (expected one of: fleet, volume)'),
        ("type: fleet\n  name: [\n", "x.yaml is not valid YAML: "),
        ("type: fleet\nname: gpu\nnodez: 2\n", 'unknown key "nodez" in x.yaml line 3 (did you mean "nodes"?)'),
        ("type: volume\nname: v\nbackend: local\nregion: r\n", 'missing key "path" in x.yaml: a local volume needs'),
    ],
)
def test_apply_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_apply_text(text, "x.yaml")
    assert str(info.value).startswith(message)
