"""Configuration files (dstack-compatible YAML): the models are the only place a field is defined."""

from controller.configs.common import parse_duration, parse_off_duration, validate_resource_name
from controller.configs.loader import (
    CONFIGURATION_TYPES,
    ConfigError,
    load_config_file,
    load_task_file,
    parse_config_text,
    parse_task_text,
)
from controller.configs.resources import (
    Arch,
    ByteRange,
    CPUSpec,
    DiskSpec,
    GPUSpec,
    GPUVendor,
    MemorySpec,
    Range,
    ResourcesSpec,
    format_size,
    normalize_arch,
    parse_size,
)
from controller.configs.task import MountPoint, TaskConfiguration

__all__ = [
    "CONFIGURATION_TYPES",
    "Arch",
    "ByteRange",
    "CPUSpec",
    "ConfigError",
    "DiskSpec",
    "GPUSpec",
    "GPUVendor",
    "MemorySpec",
    "MountPoint",
    "Range",
    "ResourcesSpec",
    "TaskConfiguration",
    "format_size",
    "load_config_file",
    "load_task_file",
    "normalize_arch",
    "parse_config_text",
    "parse_duration",
    "parse_off_duration",
    "parse_size",
    "parse_task_text",
    "validate_resource_name",
]
