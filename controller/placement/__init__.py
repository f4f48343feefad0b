"""Pure placement: requirements x host views -> decision with reasons. No I/O, no clock."""

from controller.placement.core import explain, first_rejection, place
from controller.placement.index import HostIndex
from controller.placement.model import (
    Decision,
    GpuInfo,
    GpuReq,
    HostView,
    MountReq,
    Rejection,
    Requirements,
    VolumeOption,
)

__all__ = [
    "Decision",
    "GpuInfo",
    "GpuReq",
    "HostIndex",
    "HostView",
    "MountReq",
    "Rejection",
    "Requirements",
    "VolumeOption",
    "explain",
    "first_rejection",
    "place",
]
