"""Where facts are read from. Every path and endpoint can be pointed elsewhere
(INTERFACES.md test seams), so detection runs on fixture trees and loopback servers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The clouds' documented link-local metadata endpoints: used only on a host whose DMI data
# names that cloud (an on-prem host asks none of them).
DEFAULT_AWS_ENDPOINT = "http://169.254.169.254"
DEFAULT_AZURE_ENDPOINT = "http://169.254.169.254"
DEFAULT_GCP_ENDPOINT = "http://metadata.google.internal"


@dataclass(frozen=True)
class FactSources:
    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")
    machine: str = ""  # uname -m; empty: ask the kernel
    aws_endpoint: str = DEFAULT_AWS_ENDPOINT
    azure_endpoint: str = DEFAULT_AZURE_ENDPOINT
    gcp_endpoint: str = DEFAULT_GCP_ENDPOINT
    path: str | None = None  # PATH searched for nvidia-smi, rocm-smi, amd-smi; None: the process's
    metadata_timeout_s: float = 1.0  # per metadata request

    @classmethod
    def from_env(cls) -> FactSources:
        env = os.environ
        return cls(
            sysfs=Path(env.get("DSTACK_AGENT_SYSFS", "/sys")),
            procfs=Path(env.get("DSTACK_AGENT_PROCFS", "/proc")),
            machine=env.get("DSTACK_AGENT_UNAME_M", ""),
            # AWS SDKs' own variable for the IMDS endpoint.
            aws_endpoint=env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", DEFAULT_AWS_ENDPOINT),
            azure_endpoint=env.get("DSTACK_AGENT_AZURE_IMDS_ENDPOINT", DEFAULT_AZURE_ENDPOINT),
            gcp_endpoint=env.get("DSTACK_AGENT_GCP_METADATA_ENDPOINT", DEFAULT_GCP_ENDPOINT),
        )


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None
