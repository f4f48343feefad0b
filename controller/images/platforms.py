"""Which platforms an image has, asked of its registry (OCI distribution API), cached.

Used to place a task without an explicit arch only where its image runs natively. A
failed lookup returns None: the agent's own check still refuses a mismatch."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from dstack_hybrid.shared.image_reference import ImageReference, parse_reference

log = logging.getLogger(__name__)

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
LIST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


@dataclass(frozen=True)
class LookupSettings:
    enabled: bool = True
    # Docker Hub images are looked up here instead (a pull-through mirror), e.g. http://127.0.0.1:5000
    docker_hub_mirror: str = ""
    timeout_s: float = 3.0
    ttl_s: float = 600.0
    negative_ttl_s: float = 30.0


class PlatformLookup:
    def __init__(self, settings: LookupSettings) -> None:
        self.settings = settings
        self._cache: dict[str, tuple[float, frozenset[str] | None]] = {}
        self._lock = threading.Lock()

    def platforms(self, image: str, now: float | None = None) -> frozenset[str] | None:
        """E.g. frozenset({"linux/amd64", "linux/arm64"}); None when unknown. Blocking: call off the loop."""
        if not self.settings.enabled:
            return None
        now = time.time() if now is None else now
        with self._lock:
            hit = self._cache.get(image)
        if hit and hit[0] > now:
            return hit[1]
        try:
            found: frozenset[str] | None = frozenset(self._fetch(parse_reference(image)))
            ttl = self.settings.ttl_s
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as exc:
            log.info("image platform lookup for %s failed: %s", image, exc)
            found, ttl = None, self.settings.negative_ttl_s
        with self._lock:
            self._cache[image] = (now + ttl, found)
        return found

    def _base_url(self, ref: ImageReference) -> str:
        if ref.is_docker_hub:
            return self.settings.docker_hub_mirror.rstrip("/") or "https://registry-1.docker.io"
        # The engine treats loopback registries as insecure (plain HTTP) by default; so do we.
        return f"{'http' if ref.is_loopback else 'https'}://{ref.registry}"

    def _fetch(self, ref: ImageReference) -> set[str]:
        base = self._base_url(ref)
        manifest, media_type = self._get_json(base, ref, f"manifests/{ref.reference}", MANIFEST_TYPES)
        if media_type in LIST_TYPES or "manifests" in manifest:
            found = set()
            for entry in manifest["manifests"]:
                p = entry.get("platform") or {}
                if p.get("os") in (None, "unknown") or p.get("architecture") in (None, "unknown"):
                    continue  # attestation manifests carry unknown/unknown
                found.add(f"{p['os']}/{p['architecture']}")
            return found
        config, _ = self._get_json(base, ref, f"blobs/{manifest['config']['digest']}", "*/*")
        return {f"{config['os']}/{config['architecture']}"}

    def _get_json(self, base: str, ref: ImageReference, path: str, accept: str) -> tuple[dict[str, Any], str]:
        url = f"{base}/v2/{ref.repository}/{path}"
        headers = {"Accept": accept}
        try:
            return self._open(url, headers)
        except urllib.error.HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "") if exc.code == 401 else ""
            if not challenge.lower().startswith("bearer "):
                raise
            headers["Authorization"] = f"Bearer {self._anonymous_token(challenge, ref)}"
            return self._open(url, headers)

    def _open(self, url: str, headers: dict[str, str]) -> tuple[dict[str, Any], str]:
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=self.settings.timeout_s) as resp:
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            body = json.loads(resp.read())
        if not isinstance(body, dict):
            raise ValueError(f"{url} answered {type(body).__name__}, not a JSON object")
        return body, media_type

    def _anonymous_token(self, challenge: str, ref: ImageReference) -> str:
        params = dict(part.split("=", 1) for part in challenge[len("bearer ") :].split(",") if "=" in part)
        params = {k.strip(): v.strip().strip('"') for k, v in params.items()}
        realm = params.pop("realm")
        params.setdefault("scope", f"repository:{ref.repository}:pull")
        url = f"{realm}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=self.settings.timeout_s) as resp:
            body = json.loads(resp.read())
        return str(body.get("token") or body["access_token"])


def native_arches(platforms: frozenset[str]) -> frozenset[str]:
    """The linux arches we run natively (amd64/arm64) among an image's platforms."""
    return frozenset(p.split("/", 1)[1].split("/")[0] for p in platforms if p.startswith("linux/"))
