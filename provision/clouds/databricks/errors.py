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

# databricks-sdk errors do not keep the HTTP response: recover the status from the error's class or code.
_STATUS_BY_CLASS = {"TooManyRequests": 429, "InternalError": 500, "TemporarilyUnavailable": 503, "DeadlineExceeded": 504}
_STATUS_BY_CODE = {"INTERNAL_ERROR": 500, "BAD_GATEWAY": 502, "SERVICE_UNAVAILABLE": 503, "GATEWAY_TIMEOUT": 504}
# The Account API checks a new credential by assuming the cross-account role: IAM may not have propagated.
_PROPAGATION = "Failed credentials validation checks"


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
    return None


ERRORS = CloudErrors(
    cloud="databricks", parse=parse, transient=_transient,
    not_found=lambda e: e.code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or e.status == 404,
    already_exists=lambda e: e.code in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"),
    # The Account API refuses to delete a configuration a workspace still uses, and that never settles by
    # waiting: teardown's order is ours to get right, so it is not retried.
    in_use=lambda e: False,
)
_ALONE = ErrorRules((ERRORS,))


def is_not_found(exc: BaseException) -> bool:
    return _ALONE.is_not_found(exc)
