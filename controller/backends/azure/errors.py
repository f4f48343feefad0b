"""What the Azure SDK raises, as the BackendError sentences every backend speaks.

Each part wraps its SDK calls in `guard(region, what)`: the burst reconciler then tells a capacity
refusal (try the next offering) from an operator's mistake (say so) from anything else, and never
sees an SDK exception."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from controller.backends.model import BackendConfigError, BackendError, CapacityError

# ARM error codes that mean "no capacity or no quota for this offering now": block it, try the next.
CAPACITY_CODES = frozenset(
    {
        "SkuNotAvailable",
        "ZonalAllocationFailed",
        "AllocationFailed",
        "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest",
        "OperationNotAllowed",  # what ARM answers when the cores quota would be exceeded
        "QuotaExceeded",
    }
)
# ARM error codes an operator fixes in the configuration or the subscription.
CONFIG_CODES = frozenset(
    {
        "AuthenticationFailed",
        "AuthorizationFailed",
        "LinkedAuthorizationFailed",
        "InvalidAuthenticationToken",
        "InvalidAuthenticationTokenTenant",
        "ExpiredAuthenticationToken",
        "SubscriptionNotFound",
        "InvalidSubscriptionId",
        "ResourceGroupNotFound",
        "MissingSubscriptionRegistration",
    }
)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_code(err: HttpResponseError) -> str:
    """ARM's error code: from the parsed error, else the body's JSON, else the HTTP status."""
    if err.error is not None and err.error.code:
        return str(err.error.code)
    response = err.response
    if response is not None:
        try:
            body = json.loads(response.text())
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and error.get("code"):
                return str(error["code"])
        except (ValueError, AttributeError):
            pass
    return str(err.status_code or "") or type(err).__name__


def error_message(err: AzureError) -> str:
    if isinstance(err, HttpResponseError) and err.error is not None and err.error.message:
        return one_line(str(err.error.message))
    return one_line(str(err.message if getattr(err, "message", None) else err))


def where(region: str | None) -> str:
    """The sentence's subject: "azure eastus2", or "azure" for calls that span regions."""
    return f"azure {region}" if region else "azure"


def not_found(err: BackendError) -> bool:
    """Whether a guarded call failed because the resource does not exist (ARM's 404)."""
    return isinstance(err.__cause__, ResourceNotFoundError)


@contextmanager
def guard(region: str | None, what: str) -> Iterator[None]:
    """Turns whatever the SDK raises into one BackendError sentence."""
    try:
        yield
    except BackendError:
        raise
    except ClientAuthenticationError as err:  # Entra refused the credentials, or ARM the token
        code = str(err.error.code) if err.error is not None and err.error.code else "authentication"
        raise BackendConfigError(f"{where(region)}: {what} failed: {code}: {error_message(err)}") from err
    except HttpResponseError as err:
        code = error_code(err)
        sentence = f"{where(region)}: {what} failed: {code}: {error_message(err)}"
        if code in CAPACITY_CODES:
            raise CapacityError(sentence) from err
        if code in CONFIG_CODES:
            raise BackendConfigError(sentence) from err
        raise BackendError(sentence) from err
    except AzureError as err:
        raise BackendError(f"{where(region)}: {what} failed: {error_message(err)}") from err
    except ValueError as err:  # msal's answer to an authority it cannot discover
        raise BackendConfigError(f"{where(region)}: {what} failed: {one_line(str(err))}") from err
