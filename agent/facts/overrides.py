"""Operator settings from agent.yaml win over detection, and say so."""

from __future__ import annotations

from agent.config import AgentConfig
from agent.facts.model import HostFacts


def apply_overrides(facts: HostFacts, config: AgentConfig) -> HostFacts:
    for key in ("region", "zone", "fleet"):
        value = getattr(config, key)
        if value:
            setattr(facts, key, value)
            facts.overridden.append(key)
    if config.labels:
        facts.labels = {**facts.labels, **config.labels}
        facts.overridden.append("labels")
    return facts
