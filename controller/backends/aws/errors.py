"""What boto3 raises, as the BackendError sentences every backend speaks.

Every API call goes through the clients in sdk.py, which turn an SDK error into one of these: the
burst reconciler then tells a capacity refusal (try the next offering) from an operator's mistake
(say so) from anything else, and never sees an SDK exception."""

from __future__ import annotations

from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError  # type: ignore[import-untyped]

from controller.backends.model import BackendConfigError, BackendError, CapacityError

# RunInstances refusals that mean "not here, not now": the offering is blocked for a while and the
# next one is tried. `Unsupported` is AWS's answer for a type not sold in the subnet's zone.
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "SpotMaxPriceTooLow",
        "InsufficientFreeAddressesInSubnet",
        "Unsupported",
    }
)
# Refusals an operator fixes in the configuration or the account: credentials, permissions, regions.
CONFIG_CODES = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "UnauthorizedOperation",
        "AccessDeniedException",
        "OptInRequired",
    }
)
# What boto3 raises: ClientError (the API said no), BotoCoreError (no answer, bad parameters, no
# credentials) and ResponseParserError (an answer that is not XML or JSON), which is neither.
SDK_ERRORS = (ClientError, BotoCoreError, ResponseParserError)


def backend_error(region: str, operation: str, exc: Exception) -> BackendError:
    """One sentence for an SDK error: CapacityError for RunInstances' capacity and quota codes,
    BackendConfigError for credentials and permissions, BackendError otherwise."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "") or "")
        message = str(error.get("Message", "") or "") or str(exc)
        text = f"aws {region}: {operation} failed: {message}" + (f" ({code})" if code else "")
        if operation == "RunInstances" and code in CAPACITY_CODES:
            return CapacityError(text)
        if code in CONFIG_CODES:
            return BackendConfigError(text)
        return BackendError(text)
    text = f"aws {region}: {operation} failed: {exc}"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return BackendConfigError(text)
    return BackendError(text)


def error_code(exc: BaseException) -> str:
    """The AWS error code behind a BackendError raised from a ClientError ("" when none)."""
    cause = exc.__cause__
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code", "") or "")
    return ""
