"""boto3's clients, made in one place per backend, and how the API's tag lists read.

Only this package imports boto3. The facade connects once and hands the clients to the parts
(catalog, pricing, images, compute, volumes), so each can be built alone around any clients. A
client is made on its first use, one per service and region, from the backend's own Session:
handlers registered on the session before then (the tests' request hooks) reach every client."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore import xform_name  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

from controller.backends.aws.errors import SDK_ERRORS, backend_error
from controller.backends.config import AWSAccessKeyCreds, AWSBackendConfig

KIND = "aws"  # the backend's name in every record it makes (sizes, instances, volumes)


class AwsClients:
    """The configured endpoint and credentials, as one client per (service, region)."""

    def __init__(self, config: AWSBackendConfig) -> None:
        self.endpoint_url = config.endpoint_url
        self.creds = config.creds
        self.session = boto3.session.Session()
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}

    @property
    def default_region(self) -> str | None:
        """The SDK's own default region (AWS_DEFAULT_REGION, ~/.aws/config), if any."""
        region: str | None = self.session.region_name
        return region

    def client(self, service: str, region: str) -> Any:
        with self._lock:  # a boto3 Session is not thread-safe; the clients it makes are
            client = self._clients.get((service, region))
            if client is None:
                kwargs: dict[str, Any] = {}
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                if isinstance(self.creds, AWSAccessKeyCreds):
                    kwargs["aws_access_key_id"] = self.creds.access_key
                    kwargs["aws_secret_access_key"] = self.creds.secret_key
                # Prices are a nicety (unknown ones rank by size): one retry for the Price List API.
                attempts = 2 if service == "pricing" else 4
                config = Config(
                    retries={"mode": "standard", "max_attempts": attempts},
                    connect_timeout=10,
                    read_timeout=60,
                    user_agent_extra="dstack-hybrid",
                )
                client = self.session.client(service, region_name=region, config=config, **kwargs)
                self._clients[(service, region)] = client
            return client

    def call(self, region: str, operation: str, service: str = "ec2", **params: Any) -> dict[str, Any]:
        """One API call by its operation name (RunInstances); SDK errors become BackendErrors."""
        try:
            result: dict[str, Any] = getattr(self.client(service, region), xform_name(operation))(**params)
        except SDK_ERRORS as exc:
            raise backend_error(region, operation, exc) from exc
        return result

    def pages(self, region: str, operation: str, service: str = "ec2", **params: Any) -> list[dict[str, Any]]:
        """Every page of a paginated call; SDK errors become BackendErrors."""
        try:
            paginator = self.client(service, region).get_paginator(xform_name(operation))
            return list(paginator.paginate(**params))
        except SDK_ERRORS as exc:
            raise backend_error(region, operation, exc) from exc


def tags_from_api(items: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in items or []}


def tags_to_api(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]
