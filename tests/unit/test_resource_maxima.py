"""Resource amounts no machine can have are refused at submit, naming the field and the maximum,
in the YAML dstackctl reads and in the JSON the controller receives; the maxima themselves pass."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from controller.configs.fleet import FleetConfiguration
from controller.configs.loader import ConfigError, parse_task_text
from controller.configs.task import TaskConfiguration


def resources(line: str) -> str:
    return f"type: task\nimage: ubuntu:24.04\nresources:\n  {line}\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("cpu: 1e29", 'invalid resources.cpu "1e+29" in task.yaml line 4: cpu count above the maximum of 4096'),
        ("cpu: 4097", "cpu count above the maximum of 4096"),
        ("cpu: arm:2..100000", "cpu count above the maximum of 4096"),
        ("cpu: {count: {min: 1e29}}", "cpu count above the maximum of 4096"),
        ("cpu: " + "9" * 400, "cpu count above the maximum of 4096"),
        ("cpu: .inf", "cpu count above the maximum of 4096"),
        ("memory: 1e30", 'invalid resources.memory "1e+30" in task.yaml line 4: memory above the maximum of 64TB'),
        ("memory: 1000000000000000000000000000000GB", "memory above the maximum of 64TB"),
        ("memory: 8GB..65TB", "memory above the maximum of 64TB"),
        ("memory: 1e30GB", 'invalid size "1e30GB"'),  # no exponents in sizes: refused as a size
        ("gpu: 100000", 'invalid resources.gpu "100000" in task.yaml line 4: gpu count above the maximum of 64'),
        ("gpu: A100:80GB:100000", "gpu count above the maximum of 64"),
        ("gpu: {count: 1e20}", "gpu count above the maximum of 64"),
        ("gpu: H100:80000GB", "gpu memory above the maximum of 16TB"),
        ("disk: 99999999TB", "disk size above the maximum of 16384TB"),
        ("shm_size: 100TB", 'resources.shm_size "100TB" in task.yaml line 4: shm_size above the maximum of 64TB'),
    ],
)
def test_impossible_amounts_are_refused_naming_the_field_and_maximum(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_task_text(resources(line), "task.yaml")
    assert message in str(refused.value)


@pytest.mark.parametrize(
    "line",
    [
        "cpu: 4096",
        "cpu: arm:64..4096",
        "memory: 64TB",
        "memory: 2TB..",
        "gpu: 64",
        "gpu: H200:141GB:8",
        "gpu: 16TB",
        "disk: 16384TB",
        "shm_size: 64TB",
    ],
)
def test_the_maxima_themselves_and_real_amounts_pass(line: str) -> None:
    parse_task_text(resources(line), "task.yaml")


def test_the_controller_applies_the_maxima_to_the_json_it_receives() -> None:
    """A client that skips dstackctl: pydantic's JSON mode, where 1e29 is a JSON number."""
    for value, error in (
        ({"cpu": 1e29}, "cpu count above the maximum of 4096"),
        ({"cpu": {"count": {"min": 2, "max": 10**30}}}, "cpu count above the maximum of 4096"),
        ({"memory": "1e30"}, "invalid size"),
        ({"memory": {"min": "1TB", "max": "100TB"}}, "memory above the maximum of 64TB"),
        ({"gpu": {"count": 100000}}, "gpu count above the maximum of 64"),
    ):
        with pytest.raises(ValidationError, match=error):
            TaskConfiguration.model_validate_json(json.dumps({"image": "x", "resources": value}))


def test_a_fleets_resources_have_the_same_maxima() -> None:
    with pytest.raises(ValidationError, match="gpu count above the maximum of 64"):
        FleetConfiguration.model_validate({"type": "fleet", "name": "f", "resources": {"gpu": 65}})


def test_a_task_round_trips_through_json_with_the_new_range_types() -> None:
    """dstackctl sends model_dump_json(); the controller must read back the same task."""
    config = parse_task_text(resources("cpu: arm:4..4096\n  memory: 8GB..64TB\n  gpu: A100:80GB:1..8"), "t.yaml")
    assert TaskConfiguration.model_validate_json(config.model_dump_json()) == config
