"""Image references by the OCI distribution grammar: what real task files use passes, and each kind
of malformed reference is named by the part that is wrong; the task model refuses it at submit."""

from __future__ import annotations

from pathlib import Path

import pytest
from dstack_hybrid.shared.image_reference import reference_problem
from pydantic import ValidationError

from controller.configs.loader import ConfigError, parse_task_text
from controller.configs.task import TaskConfiguration

EXAMPLES = Path(__file__).parent.parent / "fixtures" / "dstack-examples"
SHA256 = "sha256:" + "0123456789abcdef" * 4

VALID = [
    "docker.io/library/ubuntu:24.04",
    "nvcr.io/nvidia/pytorch:24.01-py3",
    f"ghcr.io/x/y@{SHA256}",
    f"ghcr.io/x/y:1.0@{SHA256}",
    "localhost:5000/a/b",
    "localhost:5000",  # docker.io/library/localhost, tag 5000
    "dstackai/base:py3.12-0.7-cuda-12.1",
    "python:3.11",
    "ubuntu",
    "127.0.0.1:5000/dstack-test/busybox:amd64",
    "[::1]:5000/a/b:c",
    "registry.example.com:443/team/app:v1_2.3-rc",
    "quay.io/prometheus/node-exporter:v1.8.2",
    "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04:latest",
    "public.ecr.aws/lambda/python:3.12",
    "a__b/c---d:_x",
    "MyRegistry/app",  # an upper-case first part is a registry host to the engine
    f"busybox@sha512:{'ab' * 64}",
]


@pytest.mark.parametrize("image", VALID)
def test_real_world_references_pass(image: str) -> None:
    assert reference_problem(image) is None


def test_every_image_in_dstacks_examples_passes() -> None:
    images = (EXAMPLES / "image-references.txt").read_text().split()
    assert len(images) >= 50
    assert {image: reference_problem(image) for image in images if reference_problem(image)} == {}


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("UPPER/../x:@@", '".." is not a repository name part'),
        ("Ubuntu:24.04", 'repository "Ubuntu" must be lower-case'),
        ("ghcr.io/MyOrg/app", 'repository "MyOrg/app" must be lower-case'),
        ("ubuntu:", 'tag "" is not 1 to 128'),
        ("ubuntu:-rc", 'tag "-rc" is not 1 to 128'),
        ("ubuntu:" + "t" * 129, "is not 1 to 128"),
        ("ubuntu:a@b", 'digest "b" is not ALGORITHM:HEX'),
        ("ubuntu@sha256:abc", 'digest "sha256:abc" needs 64 lower-case hexadecimal digits'),
        ("ubuntu@sha256:" + "AB" * 32, "needs 64 lower-case hexadecimal digits"),
        ("ubuntu@md5:" + "ab" * 16, "with an algorithm of sha256, sha384, sha512"),
        ("a//b", "an empty part is not a repository name part"),
        ("a/b/", "an empty part is not a repository name part"),
        ("/a", "an empty part is not a repository name part"),
        (":24.04", "the repository name is missing"),
        ("-ubuntu", '"-ubuntu" is not a repository name part'),
        ("a_-b", '"a_-b" is not a repository name part'),
        ("a___b", '"a___b" is not a repository name part'),
        ("ghcr.io:x/app", 'registry "ghcr.io:x" is not a host name'),
        ("registry..example.com/app", 'registry "registry..example.com" is not a host name'),
        ("-registry.io/app", 'registry "-registry.io" is not a host name'),
        ("ubuntu 24.04", "cannot contain spaces"),
        ("a/b:c:d", '"b:c" is not a repository name part'),
        ("a" * 256, "longer than 255 characters"),
        ("ab" * 32, "is an image id, not a reference"),
    ],
)
def test_malformed_references_name_the_wrong_part(image: str, problem: str) -> None:
    found = reference_problem(image)
    assert found is not None and problem in found, found


def test_long_parts_are_cut_in_the_sentence() -> None:
    found = reference_problem("ubuntu:" + "-" * 10_000)
    assert found is not None and len(found) < 200


def test_a_task_file_with_a_malformed_image_is_refused_quoting_it() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_task_text('type: task\nimage: "UPPER/../x:@@"\n', "task.yaml")
    assert str(refused.value) == (
        'invalid image "UPPER/../x:@@" in task.yaml line 2: not an image reference: ".." is not a repository '
        'name part (lower-case letters and digits, joined by ".", "_", "__" or dashes)'
    )


def test_the_controller_refuses_it_in_the_json_a_client_sends() -> None:
    with pytest.raises(ValidationError, match="not an image reference"):
        TaskConfiguration.model_validate_json('{"type": "task", "image": "UPPER/../x:@@"}')
    assert TaskConfiguration.model_validate_json('{"image": "python:3.11"}').image == "python:3.11"
