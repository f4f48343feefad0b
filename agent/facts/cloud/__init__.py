"""Cloud identity: DMI says which cloud (if any), then only that cloud's metadata service is
asked. An on-prem host makes no network request; a failing metadata service costs at most a
few seconds and one warning, never the rest of the facts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.facts.cloud import aws, azure, dmi, gcp
from agent.facts.cloud.metadata import MetadataClient, MetadataError
from agent.facts.cloud.model import CloudFacts
from agent.facts.sources import FactSources

__all__ = ["MODES", "CloudFacts", "detect"]

log = logging.getLogger("dstack.agent.facts")


@dataclass(frozen=True)
class _Provider:
    fetch: Callable[[FactSources, MetadataClient], CloudFacts]
    without_metadata: Callable[[FactSources], CloudFacts]  # what is known when the service fails
    endpoint: Callable[[FactSources], str]  # for the warning only


PROVIDERS = {
    "aws": _Provider(aws.fetch, aws.without_metadata, lambda s: s.aws_endpoint),
    "azure": _Provider(azure.fetch, azure.without_metadata, lambda s: s.azure_endpoint),
    "gcp": _Provider(gcp.fetch, gcp.without_metadata, lambda s: s.gcp_endpoint),
}
MODES = ("auto", "off", *PROVIDERS)  # agent.yaml's `cloud:` values


def detect(sources: FactSources, mode: str = "auto") -> CloudFacts | None:
    """This host's cloud identity, or None on a host no cloud claims (or with mode "off").

    mode "auto" asks DMI; "aws" / "azure" / "gcp" skip DMI and ask that cloud's metadata
    service (for hosts whose DMI a hypervisor hides); "off" does no I/O at all."""
    if mode not in MODES:
        raise ValueError(f"unknown cloud mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "off":
        return None
    name = dmi.identify(sources.sysfs) if mode == "auto" else mode
    if name is None:
        return None
    provider = PROVIDERS[name]
    # One client per detection: its budget bounds the whole detection, and the first error
    # (a timeout included) ends it, so a dead service costs one timeout, not one per key.
    client = MetadataClient(sources.metadata_timeout_s)
    try:
        return provider.fetch(sources, client)
    except MetadataError as e:
        log.warning(
            "%s metadata service at %s failed: %s (asked %s); region, zone and instance type stay unknown",
            name,
            provider.endpoint(sources),
            e.reason,
            e.url,
        )
        return provider.without_metadata(sources)
