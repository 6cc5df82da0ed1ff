"""How Databricks says what went wrong: databricks-sdk's DatabricksError carries `error_code`.

Duck-typed, so this module does not import databricks.sdk (it takes a second to load).
"""

from __future__ import annotations

from provision.orchestrator.retry import (
    IAM_PROPAGATION,
    CloudErrors,
    ErrorInfo,
    ErrorRules,
)

# databricks-sdk errors do not keep the HTTP response: recover the status from the error's class or code (a SCIM
# 404 carries no error code at all, only its class).
_STATUS_BY_CLASS = {"BadRequest": 400, "Unauthenticated": 401, "PermissionDenied": 403, "ResourceConflict": 409, "NotFound": 404, "TooManyRequests": 429, "InternalError": 500, "TemporarilyUnavailable": 503, "DeadlineExceeded": 504}
_STATUS_BY_CODE = {"INTERNAL_ERROR": 500, "BAD_GATEWAY": 502, "SERVICE_UNAVAILABLE": 503, "GATEWAY_TIMEOUT": 504}
# The Account API checks a new credential by assuming the cross-account role: IAM may not have propagated.
_PROPAGATION = "Failed credentials validation checks"

# Refusals that mean "not yet" for a workspace or its metastore, with the reason each retry is logged with.
# A workspace's own API answers this for a while after the workspace turns RUNNING (HTTP 400).
WARMING_UP = "workspace warming up (no worker environments yet)"
_WARMING_UP_TEXT = "does not have any associated worker environments"
# The account's permission-assignment API, until identity federation is on for the workspace: it turns on with
# the metastore assignment, and takes a while after it (HTTP 400 BAD_REQUEST).
FEDERATION = "identity federation not enabled yet (metastore assignment propagating)"
_FEDERATION_TEXT = "Permission assignment APIs are not available for this workspace"
# A workspace's Unity Catalog APIs, until its metastore assignment reaches them (HTTP 404): not "not found",
# since nothing a step looks for is missing, the workspace just does not see its metastore yet.
METASTORE_DOES_NOT_EXIST = "METASTORE_DOES_NOT_EXIST"
METASTORE_PROPAGATING = "metastore assignment propagating"
# Unity Catalog checking a storage credential's IAM role (validate, or an external location's create): while a
# role's trust and policy propagate, it answers PERMISSION_DENIED or one of these. Retried only in the
# PROPAGATING phase, where a step has just written that role; elsewhere they are the user's to fix.
_ROLE_NOT_YET = ("not self-assuming", "is not configured correctly")


def parse(exc: BaseException) -> ErrorInfo | None:
    if not (type(exc).__module__.startswith("databricks.sdk") and hasattr(exc, "error_code")):
        return None
    code = str(getattr(exc, "error_code", "") or "")
    status = int(getattr(getattr(exc, "_response", None), "status_code", 0) or 0)
    if not status:
        status = next((_STATUS_BY_CLASS[k.__name__] for k in type(exc).__mro__ if k.__name__ in _STATUS_BY_CLASS), 0)
    if not status:
        status = _STATUS_BY_CODE.get(code, 0)
    return ErrorInfo(code, str(exc), status)


def _transient(e: ErrorInfo) -> str | None:
    if e.status == 429 or e.code in ("TOO_MANY_REQUESTS", "REQUEST_LIMIT_EXCEEDED"):
        return "throttled (429)"
    if e.status in (502, 503, 504) or e.code == "TEMPORARILY_UNAVAILABLE":
        return f"unavailable ({e.status or e.code})"
    if e.status >= 500:
        return f"server error ({e.status})"
    if _PROPAGATION in e.message:
        return IAM_PROPAGATION
    if e.code == "INVALID_PARAMETER_VALUE" and _WARMING_UP_TEXT in e.message:
        return WARMING_UP
    if e.code == "BAD_REQUEST" and _FEDERATION_TEXT in e.message:
        return FEDERATION
    if e.code == METASTORE_DOES_NOT_EXIST:
        return METASTORE_PROPAGATING
    return None


def _not_found(e: ErrorInfo) -> bool:
    if e.code == METASTORE_DOES_NOT_EXIST:  # a 404 about the workspace's metastore, not the object asked for
        return False
    # Unity Catalog names the kind: CATALOG_DOES_NOT_EXIST, STORAGE_CREDENTIAL_DOES_NOT_EXIST, ...
    return e.code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or e.code.endswith("_DOES_NOT_EXIST") or e.status == 404


def _already_exists(e: ErrorInfo) -> bool:
    # Unity Catalog names the kind here too: CATALOG_ALREADY_EXISTS, SCHEMA_ALREADY_EXISTS, ...
    return e.code in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS") or e.code.endswith("_ALREADY_EXISTS")


def _propagation(e: ErrorInfo) -> bool:
    return e.code == "PERMISSION_DENIED" or any(text in e.message for text in _ROLE_NOT_YET)


ERRORS = CloudErrors(
    cloud="databricks", parse=parse, transient=_transient,
    not_found=_not_found,
    already_exists=_already_exists,
    # The Account API refuses to delete a configuration a workspace still uses, and that never settles by
    # waiting: teardown's order is ours to get right, so it is not retried.
    in_use=lambda e: False,
    propagation=_propagation,
    # A workspace's API warming up, identity federation and a metastore assignment reaching the workspace: the
    # service is not loaded, it is settling; retried at short intervals (RetryPolicy.settling_max_seconds).
    settling=frozenset({WARMING_UP, FEDERATION, METASTORE_PROPAGATING}),
    hints={
        WARMING_UP: "The workspace's API kept answering that it has no worker environments; check the workspace in the account console.",
        METASTORE_PROPAGATING: "The workspace still sees no metastore; check its metastore assignment (`databricks account metastore-assignments get`).",
        FEDERATION: "Identity federation never came on for the workspace; check that a Unity Catalog metastore is assigned to it.",
    },
)
_ALONE = ErrorRules((ERRORS,))


def is_not_found(exc: BaseException) -> bool:
    return _ALONE.is_not_found(exc)


def is_already_exists(exc: BaseException) -> bool:
    return _ALONE.is_already_exists(exc)


def no_metastore(exc: BaseException) -> bool:
    """The workspace has no metastore assigned (W3's refusal), whatever the classifier makes of it."""
    return _ALONE.error_code(exc) == METASTORE_DOES_NOT_EXIST
