"""The configured backends, built on first use.

The SDK of a cloud is imported here, inside `build`, and only for a backend of that kind in the
config file: a controller with no `backends:` never loads boto3 or the Azure SDK (they take
seconds and tens of megabytes), and one without the `cloud` extra installed says what to install."""

from __future__ import annotations

from controller.backends.config import AWSBackendConfig, AzureBackendConfig, BackendConfig
from controller.backends.model import BackendConfigError, CloudBackend


def build(config: BackendConfig) -> CloudBackend:
    try:
        if isinstance(config, AWSBackendConfig):
            from controller.backends.aws import AWSBackend

            return AWSBackend(config)
        if isinstance(config, AzureBackendConfig):
            from controller.backends.azure import AzureBackend

            return AzureBackend(config)
    except ImportError as exc:
        raise BackendConfigError(
            f"the {config.type} backend needs the cloud SDKs ({exc.name} is missing): "
            "install dstack-hybrid[cloud] (the dstack-controller package has them)"
        ) from None
    raise BackendConfigError(f"unknown backend type {config.type}")


class Backends:
    """One instance per configured backend, by kind, made when first asked for."""

    def __init__(self, configs: list[BackendConfig]) -> None:
        self.configs = {c.type: c for c in configs}
        self._built: dict[str, CloudBackend] = {}

    @property
    def kinds(self) -> list[str]:
        return list(self.configs)

    def get(self, kind: str) -> CloudBackend:
        if kind not in self.configs:
            raise BackendConfigError(
                f"no {kind} backend is configured (add one under backends: in the controller's config file)"
            )
        if kind not in self._built:
            self._built[kind] = build(self.configs[kind])
        return self._built[kind]
