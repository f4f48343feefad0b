"""The Azure SDK's clients, made once per backend, and how its models read.

Only this package imports the Azure SDK (azure-identity, azure-mgmt-compute >= 38 for its typed
request bodies and models, azure-mgmt-network). The facade connects once and hands the clients to
the parts (catalog, images, compute, disks), so each can be built alone around any client."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from azure.core.credentials import TokenCredential
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient

from controller.backends.azure.errors import one_line
from controller.backends.config import AzureBackendConfig, AzureClientCreds
from controller.backends.model import BackendConfigError


def word(value: object) -> str:
    """A model field as its wire string: the SDK's enums print as Class.MEMBER, their value is the word."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


@dataclass
class AzureClients:
    credential: TokenCredential
    compute: ComputeManagementClient
    network: NetworkManagementClient

    def close(self) -> None:
        """Closes the clients' connections (they are unusable after)."""
        self.compute.close()
        self.network.close()
        close = getattr(self.credential, "close", None)
        if callable(close):
            close()


def connect(config: AzureBackendConfig) -> AzureClients:
    """The credential and the clients the config names (endpoint, CA bundle); no request yet."""
    transport: dict[str, Any] = {}
    if config.ca_bundle:
        transport["connection_verify"] = config.ca_bundle
    try:
        credential = _credential(config, transport)
    except ValueError as err:  # a malformed authority_host
        raise BackendConfigError(f"azure: credentials: {one_line(str(err))}") from None
    clients: dict[str, Any] = dict(transport)
    if config.base_url:
        base = config.base_url.rstrip("/")
        clients["base_url"] = base
        clients["credential_scopes"] = [base + "/.default"]
    return AzureClients(
        credential=credential,
        compute=ComputeManagementClient(credential, config.subscription_id, **clients),
        network=NetworkManagementClient(credential, config.subscription_id, **clients),
    )


def _credential(config: AzureBackendConfig, transport: dict[str, Any]) -> TokenCredential:
    creds = config.creds
    if isinstance(creds, AzureClientCreds):
        kwargs: dict[str, Any] = dict(transport)
        if creds.authority_host:
            # A sovereign cloud or a loopback server: no instance discovery at Microsoft's host.
            kwargs["authority"] = creds.authority_host
            kwargs["disable_instance_discovery"] = True
        return ClientSecretCredential(config.tenant_id, creds.client_id, creds.client_secret, **kwargs)
    return DefaultAzureCredential(**transport)
