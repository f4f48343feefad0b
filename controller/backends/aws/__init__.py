"""The AWS backend, one module per part: catalog, pricing, images, compute, volumes, errors and
the SDK's clients (sdk.py), behind the AWSBackend facade (backend.py)."""

from controller.backends.aws.backend import AWSBackend

__all__ = ["AWSBackend"]
