"""GCP identity from the Compute Engine metadata server, one plain-text key per request."""

from __future__ import annotations

from agent.facts.cloud._values import word
from agent.facts.cloud.metadata import MetadataClient, MetadataError, base_url
from agent.facts.cloud.model import CloudFacts
from agent.facts.sources import FactSources

INSTANCE = "/computeMetadata/v1/instance/"
FLAVOR = {"Metadata-Flavor": "Google"}


def fetch(sources: FactSources, client: MetadataClient) -> CloudFacts:
    base = base_url(sources.gcp_endpoint) + INSTANCE

    def get(path: str, *, optional: bool = False) -> str | None:
        # The server sends Metadata-Flavor back; without it whatever answered is not the
        # metadata server (a captive portal, or a resolver that sends the metadata host name elsewhere).
        return client.request("GET", base + path, FLAVOR, missing_ok=optional, expect_headers=FLAVOR)

    zone = _last_segment(base + "zone", get("zone"))
    if "-" not in zone:
        raise MetadataError(base + "zone", f"unexpected zone {zone!r}")
    machine_type = _last_segment(base + "machine-type", get("machine-type"))
    instance_id = word(base + "id", get("id"))
    preemptible = get("scheduling/preemptible")
    if preemptible not in ("TRUE", "FALSE"):
        raise MetadataError(base + "scheduling/preemptible", f"unexpected answer {preemptible!r}")
    # Spot VMs are the successor of preemptible ones; the provisioning model names them even
    # where `preemptible` says FALSE. Older metadata servers lack the key.
    spot = preemptible == "TRUE" or get("scheduling/provisioning-model", optional=True) == "SPOT"
    return CloudFacts(
        provider="gcp",
        region=zone.rsplit("-", 1)[0],  # us-central1-a -> us-central1
        zone=zone,
        instance_type=machine_type,
        instance_id=instance_id,
        spot=spot,
    )


def without_metadata(sources: FactSources) -> CloudFacts:
    return CloudFacts(provider="gcp")


def _last_segment(url: str, value: str | None) -> str:
    # Zone and machine type come as full resource paths: projects/123/zones/us-central1-a.
    return word(url, (value or "").rsplit("/", 1)[-1] or None)
