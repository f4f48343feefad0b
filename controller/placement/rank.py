"""The ranking among hosts that pass every rule: bin-packing. The host left with the least free CPU,
then memory, then GPUs wins, so big hosts stay free for big tasks and GPU hosts for GPU tasks; name and
then id break ties, so the same inputs always give the same answer whatever order they come in."""

from __future__ import annotations

from controller.placement.model import HostView, Requirements
from controller.placement.rules.gpu import to_allocate

# (free CPU, free memory, free GPUs, name, id): a host's place in the order before any task. HostIndex
# keeps hosts sorted by it; subtracting a task's share keeps the order (exactly for the integers, and
# never reversed for the CPU float), which is what lets the index stop scanning early.
PackOrder = tuple[float, int, int, str, str]
RankKey = PackOrder


def pack_order(host: HostView) -> PackOrder:
    return (host.cpu_free, host.memory_free_bytes, host.gpus_free, host.name, host.id)


def after(req: Requirements, order: PackOrder, gpus: int) -> RankKey:
    """The order once the task's share (`gpus` = to_allocate(req)) is taken: what is left is compared."""
    cpu, memory, free_gpus, name, host_id = order
    return (cpu - req.cpu, memory - req.memory_bytes, free_gpus - gpus, name, host_id)


def rank_key(req: Requirements, host: HostView) -> RankKey:
    return after(req, pack_order(host), to_allocate(req))
