"""How Azure says what went wrong: azure-core's HttpResponseError carries ARM's `{"error": {"code", "message"}}`,
its HTTP status and headers; ServiceRequestError / ServiceResponseError are connections that failed before or
after the request was sent.

Duck-typed on the exception's class names and attributes, so this module does not import azure-core.
"""

from __future__ import annotations

from provision.orchestrator.retry import CloudErrors, ErrorInfo, ErrorRules

# The resource (or the one it hangs on) is busy with another operation: ARM serialises writes per resource.
_BUSY = {
    "AnotherOperationInProgress", "RetryableError", "RetryableErrorDueToAnotherOperation", "ReferencedResourceNotProvisioned",
    "ConcurrentUpdateError", "ResourceGroupBeingDeleted", "PutSubnetOperationInProgress", "CanceledAndSupersededDueToAnotherOperation",
}
_NOT_FOUND = {"ResourceNotFound", "ResourceGroupNotFound", "NotFound", "ParentResourceNotFound"}
# A 404 that is not "this resource is gone" but a wrong subscription: never counts as deleted.
_NOT_GONE = {"SubscriptionNotFound", "InvalidSubscriptionId"}
# A delete refused while something still uses the resource (a workspace its subnets and NSG, an endpoint its
# subnet); released once the user is gone, which ARM reports late.
_IN_USE = {
    "InUseSubnetCannotBeDeleted", "InUseNetworkSecurityGroupCannotBeDeleted", "NetworkSecurityGroupCannotBeRemovedDueToNipOnSubnet",
    "SubnetDelegationsCannotChangeWhenSubnetUsedByResource", "CannotDeleteResource", "ResourceGroupDeletionBlocked",
}
_CONNECTION = {"ServiceRequestError", "ServiceResponseError", "ServiceRequestTimeoutError", "ServiceResponseTimeoutError"}


def _retry_after(response: object) -> float | None:
    headers = getattr(response, "headers", None) or {}
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return float(value) if value else None
    except (TypeError, ValueError, AttributeError):
        return None


def parse(exc: BaseException) -> ErrorInfo | None:
    names = {c.__name__ for c in type(exc).__mro__}
    if "AzureError" not in names:
        return None
    if names & _CONNECTION and "HttpResponseError" not in names:
        if "non-TLS" in str(exc):  # azure-core refused to send a token over plain HTTP: a setup error, never transient
            return ErrorInfo("InsecureTransport", str(exc), 0)
        return ErrorInfo(type(exc).__name__, str(exc), 0)
    status = int(getattr(exc, "status_code", 0) or 0)
    error = getattr(exc, "error", None)
    code = str(getattr(error, "code", "") or "") or str(getattr(exc, "reason", "") or "")
    message = str(getattr(error, "message", "") or "") or str(getattr(exc, "message", "") or exc)
    return ErrorInfo(code, message, status, _retry_after(getattr(exc, "response", None)))


def _transient(e: ErrorInfo) -> str | None:
    if e.code in _CONNECTION:
        return f"connection ({e.code})"
    if e.status == 429:
        return f"throttled ({e.code or 429})"
    if e.status >= 500:
        return f"server error ({e.code or e.status})"
    if e.code in _BUSY:
        return f"another operation in progress ({e.code})"
    return None


def _not_found(e: ErrorInfo) -> bool:
    # Only ARM's own word: a bare 404 (a proxy's page, a wrong provider or api-version) is not "gone".
    if e.code in _NOT_GONE:
        return False
    return e.code in _NOT_FOUND or e.code.endswith("NotFound")


ERRORS = CloudErrors(
    cloud="azure", parse=parse, transient=_transient, not_found=_not_found,
    # A PUT is idempotent: ARM has no "already exists" to re-read.
    already_exists=lambda e: False,
    in_use=lambda e: e.code in _IN_USE,
)
_ALONE = ErrorRules((ERRORS,))


def error_code(exc: BaseException) -> str | None:
    """ARM's error code of `exc`, if it is an Azure error."""
    return _ALONE.error_code(exc)


def is_not_found(exc: BaseException) -> bool:
    return _ALONE.is_not_found(exc)
