"""The ranking among hosts that pass every rule: bin-packing. The host left with the least free CPU,
then memory, then GPUs wins, so big hosts stay free for big tasks and GPU hosts for GPU tasks; name and
then id break ties, so the same inputs always give the same answer whatever order they come in."""

from __future__ import annotations

from controller.placement.model import HostView, Requirements
from controller.placement.rules.gpu import to_allocate

RankKey = tuple[float, int, int, str, str]


def rank_key(req: Requirements, host: HostView) -> RankKey:
    return (
        host.cpu_free - req.cpu,
        host.memory_free_bytes - req.memory_bytes,
        host.gpus_free - to_allocate(req),
        host.name,
        host.id,
    )
