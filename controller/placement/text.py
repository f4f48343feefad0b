"""How placement writes numbers, sizes and lists in its reasons: one place, so every rule and
summary spells `2GB`, `0.5` and `[a, b]` the same way (the strings are what `dstackctl offers` shows)."""

from __future__ import annotations

from collections.abc import Iterable

GIB = 1024**3


def format_bytes(n: int) -> str:
    for unit, size in (("TB", 1024**4), ("GB", GIB), ("MB", 1024**2)):
        if n >= size:
            return f"{num(n / size)}{unit}"
    return f"{n}B"


def num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def arch_text(arches: frozenset[str]) -> str:
    return " or ".join(sorted(arches)) if arches else "an arch no host has"


def bracketed(items: Iterable[str]) -> str:
    """`[a, b]`, sorted, so a reason does not change with set iteration order."""
    return "[" + ", ".join(sorted(items)) + "]"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def names_text(names: Iterable[str]) -> str:
    """`vol-a` alone, or `any of vol-a, vol-b` (in the given order: it is the user's preference)."""
    listed = list(names)
    return listed[0] if len(listed) == 1 else "any of " + ", ".join(listed)
