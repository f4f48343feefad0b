"""`resources:` of a task: ranges, sizes, CPU, memory, GPU and disk, with dstack's short forms.

Each model parses its own short form in a `mode="before"` validator, so `cpu: arm:4..`
and `cpu: {arch: arm, count: 4..}` produce the same `CPUSpec`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BeforeValidator, PlainSerializer, field_validator, model_validator

from controller.configs.common import ConfigModel

T = TypeVar("T", int, float)

Arch = Literal["amd64", "arm64"]
GPUVendor = Literal["nvidia", "amd", "google", "intel"]

# Binary multiples, as dstack uses: 1GB is 1024**3 bytes.
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
_SIZE_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?b)?")
# A count token in the CPU and GPU short forms: `4`, `2..`, `..8`, `2..8`.
_COUNT_RE = re.compile(r"\d+|\d*\.\.\d*")


def parse_size(value: Any) -> int:
    """Bytes from `"512MB"`, `"1.5GB"`, `"2TB"`; a bare number is gigabytes, as in dstack."""
    if isinstance(value, bool):
        raise ValueError(f'invalid size "{value}" (expected a number with MB, GB or TB)')
    if isinstance(value, int | float):
        number, multiplier = Decimal(str(value)), _SIZE_UNITS["gb"]
    elif isinstance(value, str) and (match := _SIZE_RE.fullmatch(value.strip().lower())):
        number, multiplier = Decimal(match.group(1)), _SIZE_UNITS[match.group(2) or "gb"]
    else:
        raise ValueError(f'invalid size "{value}" (expected a number with MB, GB or TB)')
    try:
        size = int((number * multiplier).to_integral_value())
    except (InvalidOperation, OverflowError, ValueError) as exc:  # .inf and .nan from YAML
        raise ValueError(f'invalid size "{value}"') from exc
    if size < 0:
        raise ValueError(f'size "{value}" must not be negative')
    return size


def format_size(size: int) -> str:
    """The shortest unit-suffixed form that parses back to exactly `size` bytes (`1.5GB`, `512MB`)."""
    if size == 0:
        return "0GB"
    candidates = [f"{size}B"]
    for unit in ("TB", "GB", "MB", "KB"):
        text = f"{size / _SIZE_UNITS[unit.lower()]:.3f}".rstrip("0").rstrip(".") + unit
        if parse_size(text) == size:
            candidates.append(text)
    # Shortest first; on a tie a whole number ("512MB") reads better than a fraction ("0.5GB").
    return min(candidates, key=lambda text: (len(text), "." in text))


# Serialized back as a string ("8GB") because a bare number would be read back as gigabytes.
ByteSize = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]


class Range(ConfigModel, Generic[T]):
    """An inclusive range; `None` leaves that end open. `"4"` is `4..4`, `"2.."` is at least 2.

    A subclass for one resource sets `maximum` (and `what`, its name in the sentence): neither end
    may pass it, so `cpu: 1e29` is refused at submit instead of pending forever.
    """

    maximum: ClassVar[int | None] = None
    what: ClassVar[str] = "value"

    min: T | None = None
    max: T | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse_short_form(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f'invalid range "{value}" (expected a number or a range like 2..8)')
        if isinstance(value, int | float):
            return {"min": value, "max": value}
        if isinstance(value, str):
            text = value.replace(" ", "")
            if not text or "..." in text or text.count("..") > 1:
                raise ValueError(f'invalid range "{value}" (expected a number or a range like 2..8)')
            if ".." not in text:
                return {"min": text, "max": text}
            low, _, high = text.partition("..")
            return {"min": low or None, "max": high or None}
        return value

    @field_validator("min", "max", mode="before")
    @classmethod
    def _no_bools(cls, value: Any) -> Any:
        # pydantic reads true as 1; in a resource range that is always a mistake.
        if isinstance(value, bool):
            raise ValueError(f'"{value}" is not a number')
        # Before the conversion to int, which fails on 1e29 with a message about string parsing.
        if cls._raw_is_too_large(value):
            raise ValueError(cls._too_large())
        return value

    @classmethod
    def _raw_is_too_large(cls, value: Any) -> bool:
        """Whether a number as written already passes the maximum (for counts, it is the count)."""
        return cls.maximum is not None and isinstance(value, int | float) and value > cls.maximum

    @classmethod
    def _too_large(cls) -> str:
        return f"{cls.what} above the maximum of {cls._format_maximum()}"

    @classmethod
    def _format_maximum(cls) -> str:
        return str(cls.maximum)

    @model_validator(mode="after")
    def _check_bounds(self) -> Range[T]:
        if self.min is None and self.max is None:
            raise ValueError('empty range ".." (give at least one end, like 2..)')
        for end in (self.min, self.max):
            if end is not None and end < 0:
                raise ValueError(f"range {self} must not be negative")
            if end is not None and self.maximum is not None and end > self.maximum:
                raise ValueError(self._too_large())
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range {self} has its minimum above its maximum")
        return self

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def _format(self, end: T) -> str:
        return str(end)

    def __str__(self) -> str:
        if self.min is not None and self.min == self.max:
            return self._format(self.min)
        low = "" if self.min is None else self._format(self.min)
        high = "" if self.max is None else self._format(self.max)
        return f"{low}..{high}"


class ByteRange(Range[ByteSize]):
    """A range of bytes written with units: `"8GB.."`, `"512MB"`, `"1.5GB..4GB"`, `16` (GB)."""

    def _format(self, end: int) -> str:
        return format_size(end)

    @classmethod
    def _raw_is_too_large(cls, value: Any) -> bool:
        return False  # a bare number is gigabytes: compared once converted to bytes

    @classmethod
    def _format_maximum(cls) -> str:
        return format_size(cls.maximum or 0)


# Maxima no real machine comes within orders of magnitude of (the largest today: 1920 hardware
# threads, 32 TB of memory, 8 to 16 GPUs of at most 288 GB each). Each is for one host, as a
# task's resources are.
MAX_CPUS = 4096
MAX_MEMORY = 64 * _SIZE_UNITS["tb"]
MAX_GPUS = 64
MAX_GPU_MEMORY = 16 * _SIZE_UNITS["tb"]  # of each GPU
MAX_DISK = 16384 * _SIZE_UNITS["tb"]
MAX_SHM = MAX_MEMORY  # shared memory is memory


class CPUCount(Range[int]):
    maximum = MAX_CPUS
    what = "cpu count"


class GPUCount(Range[int]):
    maximum = MAX_GPUS
    what = "gpu count"


class MemoryRange(ByteRange):
    maximum = MAX_MEMORY
    what = "memory"


class GPUMemoryRange(ByteRange):
    maximum = MAX_GPU_MEMORY
    what = "gpu memory"


class DiskRange(ByteRange):
    maximum = MAX_DISK
    what = "disk size"


# Memory is a byte range with a maximum; the name is dstack's.
MemorySpec = MemoryRange

_ARCH_ALIASES: dict[str, Arch] = {
    "amd64": "amd64",
    "x86_64": "amd64",
    "x86": "amd64",
    "arm64": "arm64",
    "aarch64": "arm64",
    "arm": "arm64",
}


def normalize_arch(value: str) -> Arch:
    """`arm`, `aarch64`, `x86_64`, ... -> `arm64` / `amd64`."""
    arch = _ARCH_ALIASES.get(value.strip().lower())
    if arch is None:
        raise ValueError(f'unknown CPU architecture "{value}" (expected one of: {", ".join(_ARCH_ALIASES)})')
    return arch


class CPUSpec(ConfigModel):
    """`4`, `2..`, `arm:4..`, `x86:2..8`, `arm`, or `{arch: arm, count: 4..}`."""

    arch: Arch | None = None
    count: CPUCount = CPUCount(min=1)

    @model_validator(mode="before")
    @classmethod
    def _parse_short_form(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f'invalid CPU spec "{value}"')
        if isinstance(value, int | float):
            return {"count": value}
        # dstack's older form, a bare range mapping: {min: 2, max: 4}.
        if isinstance(value, dict) and value and set(value) <= {"min", "max"}:
            return {"count": value}
        if not isinstance(value, str):
            return value
        spec: dict[str, str] = {}
        tokens = value.replace(" ", "").split(":")
        if len(tokens) > 2:
            raise ValueError(f'invalid CPU spec "{value}" (expected ARCH:COUNT, like arm:4..)')
        for token in tokens:
            if not token:
                raise ValueError(f'invalid CPU spec "{value}": empty part')
            if _COUNT_RE.fullmatch(token):
                key = "count"
            elif token[0].isalpha():
                key = "arch"
                normalize_arch(token)  # here, so "arm:x" names "x" rather than a second arch
            else:
                raise ValueError(f'invalid CPU spec "{value}": "{token}" is neither an architecture nor a count')
            if key in spec:
                raise ValueError(f'invalid CPU spec "{value}": {key} given twice')
            spec[key] = token
        return spec

    @field_validator("arch", mode="before")
    @classmethod
    def _normalize_arch(cls, value: Any) -> Any:
        return normalize_arch(value) if isinstance(value, str) else value

    def __str__(self) -> str:
        return f"{self.arch}:{self.count}" if self.arch else str(self.count)


_VENDOR_ALIASES: dict[str, GPUVendor] = {
    "nvidia": "nvidia",
    "amd": "amd",
    "google": "google",
    "tpu": "google",
    "intel": "intel",
}
_GPU_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def _normalize_vendor(value: str) -> GPUVendor:
    vendor = _VENDOR_ALIASES.get(value.strip().lower())
    if vendor is None:
        raise ValueError(f'unknown GPU vendor "{value}" (expected one of: {", ".join(_VENDOR_ALIASES)})')
    return vendor


class GPUSpec(ConfigModel):
    """`2`, `A100`, `A100:80GB:2`, `nvidia:1..`, `24GB..`, `H100,A100:2`, `nvidia:A100:40GB..:1..2`.

    Tokens are told apart the way dstack does: a vendor word, then a name (starts with
    a letter), a memory size (has a unit), or a count; each at most once, in any order.
    """

    vendor: GPUVendor | None = None
    # One of these names is required (dstack's field name is the singular `name`).
    name: list[str] | None = None
    # Memory of each GPU, in bytes.
    memory: GPUMemoryRange | None = None
    # dstack's default: at least one GPU.
    count: GPUCount = GPUCount(min=1)

    @model_validator(mode="before")
    @classmethod
    def _parse_short_form(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f'invalid GPU spec "{value}"')
        if isinstance(value, int):
            return {"count": value}
        if not isinstance(value, str):
            return value
        spec: dict[str, Any] = {}
        for token in value.replace(" ", "").split(":"):
            if not token:
                raise ValueError(f'invalid GPU spec "{value}": empty part')
            if token.lower() in _VENDOR_ALIASES:
                key = "vendor"
            elif token[0].isalpha():
                key = "name"
            elif any(c.isalpha() for c in token):
                key = "memory"  # memory always carries a unit
            elif _COUNT_RE.fullmatch(token):
                key = "count"
            else:
                raise ValueError(f'invalid GPU spec "{value}": "{token}" is not a vendor, name, memory or count')
            if key in spec:
                raise ValueError(f'invalid GPU spec "{value}": {key} given twice')
            spec[key] = token.split(",") if key == "name" else token
        return spec

    @field_validator("vendor", mode="before")
    @classmethod
    def _normalize_vendor(cls, value: Any) -> Any:
        return _normalize_vendor(value) if isinstance(value, str) else value

    @field_validator("name", mode="before")
    @classmethod
    def _check_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.replace(" ", "").split(",")
        if isinstance(value, list):
            if not value:
                raise ValueError("the GPU name list is empty")
            for name in value:
                if not isinstance(name, str) or not _GPU_NAME_RE.fullmatch(name):
                    raise ValueError(f'invalid GPU name "{name}"')
        return value

    def __str__(self) -> str:
        parts = [self.vendor, ",".join(self.name) if self.name else None]
        parts += [str(self.memory) if self.memory else None, str(self.count)]
        return ":".join(part for part in parts if part)


class DiskSpec(ConfigModel):
    """`100GB..`, `200GB`, `50` (GB) or `{size: 100GB..}`."""

    size: DiskRange

    @model_validator(mode="before")
    @classmethod
    def _parse_short_form(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return {"size": value}
        return value

    def __str__(self) -> str:
        return str(self.size)


class ResourcesSpec(ConfigModel):
    cpu: CPUSpec = CPUSpec()
    memory: MemoryRange = MemoryRange.model_validate("0.5GB..")
    # None: the task needs no GPU (and gets none).
    gpu: GPUSpec | None = None
    # None: any disk will do.
    disk: DiskSpec | None = None
    shm_size: ByteSize | None = None
    # An extension to dstack: the host must have a local NVMe device (instance store, Azure local disk).
    nvme: bool = False

    @field_validator("shm_size")
    @classmethod
    def _shm_below_maximum(cls, value: int | None) -> int | None:
        if value is not None and value > MAX_SHM:
            raise ValueError(f"shm_size above the maximum of {format_size(MAX_SHM)}")
        return value

    def __str__(self) -> str:
        parts = [f"cpu={self.cpu}", f"memory={self.memory}"]
        if self.gpu:
            parts.append(f"gpu={self.gpu}")
        if self.disk:
            parts.append(f"disk={self.disk}")
        if self.shm_size is not None:
            parts.append(f"shm_size={format_size(self.shm_size)}")
        if self.nvme:
            parts.append("nvme=true")
        return " ".join(parts)
