"""The Azure backend, one module per part: catalog, pricing, images, network, compute, disks,
errors, behind the AzureBackend facade (backend.py)."""

from controller.backends.azure.backend import AzureBackend

__all__ = ["AzureBackend"]
