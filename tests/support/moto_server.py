"""moto's AWS API on loopback (ThreadedMotoServer, in this process) for the AWS backend's tests.

Nothing here talks to AWS: every client points at the server's 127.0.0.1 endpoint, credentials
are fake, the instance metadata service is switched off and shared config files are hidden, so
boto3 neither finds a real profile nor asks the instance metadata service for an instance role."""

from __future__ import annotations

import datetime as dt
import os
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config

ACCOUNT_ID = "123456789012"  # moto's default account: what it reports as the owner of registered images

# Set before moto is imported (moto.settings reads some of these once, at import) and kept for the session.
ENV: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/dstack-test-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/dstack-test-aws-credentials",
    # RunInstances refuses instance types the region does not offer, as AWS does.
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
    "MOTO_ENABLE_AMI_VALIDATION": "true",
    # Only the images a test registers exist: "no image matches" is testable, and each region's
    # backend starts fast after a reset (the default AMIs cost a volume and a snapshot each). Of
    # those defaults only two are Canonical's (trusty and xenial, hvm-ssd, amd64); neither matches
    # the noble filter, and the xenial one is among the registered decoys.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}
UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL")


@contextmanager
def aws_test_env() -> Iterator[None]:
    """ENV set and real-profile variables unset for the duration; the previous values come back after."""
    saved = {name: os.environ.get(name) for name in (*ENV, *UNSET)}
    os.environ.update(ENV)
    for name in UNSET:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class MotoServer:
    """A started ThreadedMotoServer on 127.0.0.1 with a free port; `url` is its endpoint."""

    def __init__(self) -> None:
        from moto import settings
        from moto.server import ThreadedMotoServer

        # moto.settings may have been imported before ENV was set (by another test module).
        settings.EC2_ENABLE_INSTANCE_TYPE_VALIDATION = True
        # RunInstances refuses an AMI id that does not exist, as AWS does.
        settings.ENABLE_AMI_VALIDATION = True
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forgets every resource (moto's POST /moto-api/reset)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def client(self, service: str, region: str) -> Any:
        return boto3.session.Session().client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=ENV["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )

    def register_image(
        self,
        region: str,
        name: str,
        arch: str,
        created: dt.datetime,
        root_device_name: str = "/dev/sda1",
        state: str = "available",
        owner: str = ACCOUNT_ID,
        description: str = "",
    ) -> str:
        """Registers an AMI in `region`, owned by `owner` (this account unless another is named, as
        Canonical's images are); returns its id. `arch` is the API's word (x86_64, arm64). moto's
        RegisterImage takes only a name and a description, so the owner, architecture, root device,
        creation date and state are set on moto's record of the image (the server runs in this
        process); DescribeImages then reports them as AWS would."""
        image_id: str = self.client("ec2", region).register_image(Name=name, Description=description or name)["ImageId"]
        from moto.ec2.models import ec2_backends

        ami = ec2_backends[ACCOUNT_ID][region].amis[image_id]
        if owner != ACCOUNT_ID:
            ami.owner_id = owner
            ami.launch_permissions.append({"Group": "all"})  # seen from this account only as a public image
        ami.architecture = arch
        ami.root_device_name = root_device_name
        ami.root_device_type = "ebs"
        ami.virtualization_type = "hvm"
        ami.creation_date = created.astimezone(dt.timezone.utc)
        ami.state = state
        return image_id

    def register_canonical_images(self, region: str) -> dict[str, str]:
        """Every image of tests/support/canonical_images.py in `region`, owned by Canonical's
        account; returns name -> image id."""
        from tests.support.canonical_images import CANONICAL_AMIS, CANONICAL_OWNER

        return {
            ami.name: self.register_image(
                region, ami.name, ami.architecture, ami.created, owner=CANONICAL_OWNER, description=ami.description
            )
            for ami in CANONICAL_AMIS
        }

    def tag_subnet(self, region: str, zone: str, key: str, cidr: str) -> str:
        """A new subnet in the default VPC in `zone`, tagged `key`; returns its id."""
        ec2 = self.client("ec2", region)
        vpc_id = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        subnet_id: str = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        ec2.create_tags(Resources=[subnet_id], Tags=[{"Key": key, "Value": "1"}])
        return subnet_id


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    with aws_test_env():
        server = MotoServer()
        try:
            yield server
        finally:
            server.stop()
