"""Ubuntu images as Canonical publishes them on AWS and Azure: the one list the cloud fakes serve.

Nothing here follows the code's own patterns; each entry is a name seen in the clouds' answers, so
a default filter or URN that would find nothing on the real clouds finds nothing here either.

AWS (owner 099720109477, Canonical's account). The names put Debian's architecture word in the
name (amd64, arm64) while DescribeImages' `Architecture` says x86_64 or arm64. Sources:
- DescribeImages answers quoted in public repositories (`aws ec2 describe-images --image-ids
  ami-0811349cae530179a`: Name ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250610,
  Description "Canonical, Ubuntu, 24.04, amd64 noble image", Architecture x86_64, /dev/sda1; and
  ami-09ed9bca6a01cd74a, the arm64 one of the same serial, Architecture arm64); ami-079cb33ef719a7b78
  and ami-04474687c34a061cf for serial 20241218; the minimal image's answer with Architecture x86_64
  and Description "Canonical, Ubuntu Minimal, 24.04 LTS, amd64 noble image build on 2024-07-04".
- Names pinned in public Terraform and Packer files with owners ["099720109477"]: the 20240423
  release serial, 20240701.1, pro-server, minimal, images-testing (daily) and ubuntu-eks names.
- moto's own default AMIs (moto/ec2/resources/amis.json.gz), gathered from AWS: Canonical's
  ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721, Architecture x86_64.
- Canonical's SSM parameters spell the architecture the same way:
  /aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id.
CreationDate is the serial's day (Canonical registers an image the day it is built).

Azure (publisher Canonical, offer ubuntu-24_04-lts). SKUs as Canonical's own Juju looks them up
(its imageutils tests list server, server-gen1, server-arm64 and minimal, minimal-gen1,
minimal-arm64 from the SKU listing) and as Microsoft's CLI aliases name them (Ubuntu2404 =
Canonical:ubuntu-24_04-lts:server, Ubuntu2404Pro = ...:ubuntu-pro); versions as they appear in
pinned URNs (24.04.202404230, 24.04.202409120, 24.04.202411030). No `ubuntu-24_04-lts` SKU is
called `server-gen2` or `24_04-lts-gen2` (that was the jammy offer's naming).
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

CANONICAL_OWNER = "099720109477"


class PublishedAMI(NamedTuple):
    name: str
    architecture: str  # the API's word: x86_64 or arm64
    description: str = ""  # only where an answer quoting it was seen; moto shows the name otherwise

    @property
    def created(self) -> dt.datetime:
        serial = self.name.rsplit("-", 1)[1].split(".")[0]
        return dt.datetime.strptime(serial, "%Y%m%d").replace(hour=8, tzinfo=dt.timezone.utc)


def _server(arch: str, serial: str) -> PublishedAMI:
    api = {"amd64": "x86_64", "arm64": "arm64"}[arch]
    return PublishedAMI(
        f"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-{serial}",
        api,
        f"Canonical, Ubuntu, 24.04, {arch} noble image",
    )


# The ordinary server images: what the default filter must find, newest per architecture winning.
NOBLE_SERVER = [
    _server("amd64", "20240423"),
    _server("amd64", "20241218"),
    _server("amd64", "20250610"),
    _server("arm64", "20240701.1"),
    _server("arm64", "20241218"),
    _server("arm64", "20250610"),
]
NEWEST_NOBLE_SERVER = {
    "amd64": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250610",
    "arm64": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20250610",
}

# Everything else Canonical publishes under the same account, several of them newer than the
# server images above and carrying the same release and architecture words: none may be chosen.
DECOYS = [
    PublishedAMI(
        "ubuntu-pro-server/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-pro-server-20250819",
        "x86_64",
    ),
    PublishedAMI(
        "ubuntu-pro-server/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-pro-server-20251001",
        "arm64",
    ),
    PublishedAMI(
        "ubuntu-minimal/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-minimal-20241012",
        "x86_64",
    ),
    PublishedAMI(
        "ubuntu-minimal/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-minimal-20240824",
        "arm64",
    ),
    PublishedAMI(
        "ubuntu/images-testing/hvm-ssd-gp3/ubuntu-noble-daily-amd64-server-20250927",
        "x86_64",
    ),
    PublishedAMI(
        "ubuntu-eks/k8s_1.31/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20250626",
        "x86_64",
    ),
    PublishedAMI(
        "ubuntu-eks-pro/k8s_1.32/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20250607",
        "arm64",
    ),
    PublishedAMI(
        "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721",
        "x86_64",
    ),
]

CANONICAL_AMIS = NOBLE_SERVER + DECOYS


# ---- Azure: (publisher, offer, sku) -> what the image is, and its published versions (oldest first).
AZURE_VERSIONS = ["24.04.202404230", "24.04.202409120", "24.04.202411030"]


def _azure(generation: str, arch: str) -> dict[str, object]:
    # Canonical's Gen2 images carry DiskControllerTypes "SCSI, NVMe"; Gen1 boots from SCSI only.
    controllers = ["SCSI", "NVMe"] if generation == "V2" else ["SCSI"]
    return {"generation": generation, "arch": arch, "controllers": controllers, "versions": list(AZURE_VERSIONS)}


AZURE_CANONICAL_IMAGES: dict[tuple[str, str, str], dict[str, object]] = {
    ("Canonical", "ubuntu-24_04-lts", "server"): _azure("V2", "x64"),
    ("Canonical", "ubuntu-24_04-lts", "server-gen1"): _azure("V1", "x64"),
    ("Canonical", "ubuntu-24_04-lts", "server-arm64"): _azure("V2", "Arm64"),
    ("Canonical", "ubuntu-24_04-lts", "minimal"): _azure("V2", "x64"),
    ("Canonical", "ubuntu-24_04-lts", "minimal-gen1"): _azure("V1", "x64"),
    ("Canonical", "ubuntu-24_04-lts", "minimal-arm64"): _azure("V2", "Arm64"),
    ("Canonical", "ubuntu-24_04-lts", "ubuntu-pro"): _azure("V2", "x64"),
}
