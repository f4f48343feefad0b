"""AWS identity from the EC2 instance metadata service, IMDSv2 (session token) only: v2 is what
AWS recommends and what instances launched with `HttpTokens: required` answer."""

from __future__ import annotations

from agent.facts.cloud._values import word
from agent.facts.cloud.metadata import MetadataClient, MetadataError, base_url
from agent.facts.cloud.model import CloudFacts
from agent.facts.sources import FactSources

TOKEN_PATH = "/latest/api/token"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TOKEN_TTL_S = "21600"  # the maximum; the token is used for a few requests only, the TTL is moot
META = "/latest/meta-data/"

# instance-life-cycle values; anything else (a future purchase option) stays unknown.
SPOT_BY_LIFE_CYCLE = {"spot": True, "on-demand": False, "scheduled": False}


def fetch(sources: FactSources, client: MetadataClient) -> CloudFacts:
    base = base_url(sources.aws_endpoint)
    token_url = base + TOKEN_PATH
    headers = {TOKEN_HEADER: _token(token_url, client.request("PUT", token_url, {TOKEN_TTL_HEADER: TOKEN_TTL_S}))}

    def get(path: str, *, optional: bool = False) -> str | None:
        url = base + META + path
        value = client.request("GET", url, headers, missing_ok=optional)
        return None if value is None else word(url, value)

    region = get("placement/region")
    zone = get("placement/availability-zone")
    # Both are documented for every current instance, but an IMDS without them (older Outposts,
    # emulators) still identifies the instance well enough.
    zone_id = get("placement/availability-zone-id", optional=True)
    instance_type = get("instance-type")
    instance_id = get("instance-id")
    life_cycle = get("instance-life-cycle", optional=True)
    return CloudFacts(
        provider="aws",
        region=region,
        zone=zone,
        zone_id=zone_id,
        instance_type=instance_type,
        instance_id=instance_id,
        spot=SPOT_BY_LIFE_CYCLE.get(life_cycle or ""),
    )


def _token(url: str, value: str | None) -> str:
    # The token is opaque (base64 today); it goes into a header, so only printable ASCII.
    if not value or len(value) > 1024 or not all("!" <= c <= "~" for c in value):
        raise MetadataError(url, f"unexpected token {value[:40]!r}" if value else "empty token")
    return value


def without_metadata(sources: FactSources) -> CloudFacts:
    return CloudFacts(provider="aws")
