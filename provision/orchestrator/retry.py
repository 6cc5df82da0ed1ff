"""Retry policy: one classifier decides what is retryable and why; tenacity does the backing off.

`classify(exc)` returns a short reason string for a transient error and None for a terminal one, in the
manner of databricks-sdk's retries.py. The clock and sleep are injectable so retry tests take no real time.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

import tenacity

from provision.orchestrator.errors import InjectedFault, RetryDeadlineExceeded

T = TypeVar("T")

IAM_PROPAGATION = "iam-propagation"

_AWS_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
    "EC2ThrottledException",
}
_AWS_SERVER = {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "InternalServerError"}
# S3 refuses to re-create a bucket name while its recent deletion is still settling.
_AWS_CONFLICTING = {"OperationAborted", "IncorrectState", "ConcurrentModification", "ConcurrentModificationException"}
# AWS refuses a just-created IAM principal until it has propagated; these (code, message fragment) pairs
# are what that looks like from the services we call.
_AWS_PROPAGATION = (
    ("MalformedPolicy", "Invalid principal"),
    ("MalformedPolicyDocument", "Invalid principal"),
    ("InvalidParameterValue", "Invalid IAM Instance Profile"),
    ("InvalidParameterValueException", "cannot be assumed"),
    ("AccessDenied", "is not authorized to perform: sts:AssumeRole"),
)
_DATABRICKS_PROPAGATION = "Failed credentials validation checks"

_NOT_FOUND_CODES = {
    "NoSuchBucket",
    "NoSuchEntity",
    "NotFound",
    "ResourceNotFoundException",
    "NoSuchBucketPolicy",
}


def _aws_error(exc: BaseException) -> tuple[str, str, int] | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return None
    error = response.get("Error") or {}
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    return str(error.get("Code", "")), str(error.get("Message", "")), status


# databricks-sdk errors do not keep the HTTP response: recover the status from the error's class or code.
_DBX_STATUS_BY_CLASS = {"TooManyRequests": 429, "InternalError": 500, "TemporarilyUnavailable": 503, "DeadlineExceeded": 504}
_DBX_STATUS_BY_CODE = {"INTERNAL_ERROR": 500, "BAD_GATEWAY": 502, "SERVICE_UNAVAILABLE": 503, "GATEWAY_TIMEOUT": 504}


def _databricks_error(exc: BaseException) -> tuple[str, str, int] | None:
    # Duck-typed so this module does not import databricks.sdk.
    if not (type(exc).__module__.startswith("databricks.sdk") and hasattr(exc, "error_code")):
        return None
    code = str(getattr(exc, "error_code", "") or "")
    status = int(getattr(getattr(exc, "_response", None), "status_code", 0) or 0)
    if not status:
        status = next((_DBX_STATUS_BY_CLASS[k.__name__] for k in type(exc).__mro__ if k.__name__ in _DBX_STATUS_BY_CLASS), 0)
    if not status:
        status = _DBX_STATUS_BY_CODE.get(code, 0)
    return code, str(exc), status


def classify(exc: BaseException) -> str | None:
    """Why `exc` is worth retrying, or None if it is terminal."""
    if isinstance(exc, InjectedFault):
        return "injected transient fault" if exc.transient else None
    aws = _aws_error(exc)
    if aws:
        code, message, status = aws
        if code in _AWS_THROTTLING:
            return f"throttled ({code})"
        if code in _AWS_SERVER or status >= 500:
            return f"server error ({code or status})"
        if code in _AWS_CONFLICTING:
            return f"conflicting operation in progress ({code})"
        for prop_code, fragment in _AWS_PROPAGATION:
            if code == prop_code and fragment in message:
                return IAM_PROPAGATION
        return None
    dbx = _databricks_error(exc)
    if dbx:
        code, message, status = dbx
        if status == 429 or code in ("TOO_MANY_REQUESTS", "REQUEST_LIMIT_EXCEEDED"):
            return "throttled (429)"
        if status in (502, 503, 504) or code in ("TEMPORARILY_UNAVAILABLE",):
            return f"unavailable ({status or code})"
        if status >= 500:
            return f"server error ({status})"
        if _DATABRICKS_PROPAGATION in message:
            return IAM_PROPAGATION
        return None
    name = type(exc).__name__
    # Connection-level trouble from botocore/urllib3/requests; the SDK's own "Timed out after" wraps
    # its exhausted 429/503/connection retries.
    if name in (
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ConnectionError",
        "ProxyConnectionError",
    ):
        return f"connection ({name})"
    if name == "ResponseParserError":  # an HTML error page from a proxy or load balancer instead of the API's answer
        return "unparseable response"
    if isinstance(exc, TimeoutError) and exc.__cause__ is not None:
        inner = classify(exc.__cause__)
        return inner or None
    return None


# What the step is doing changes what is transient. Right after a create, EC2 and IAM are eventually
# consistent: the new id can be NotFound for seconds. During a delete, AWS keeps refusing with
# DependencyViolation while a deleted dependency's network interfaces are released.
CONVERGING = "converging"
DELETING = "deleting"
EVENTUAL_CONSISTENCY = "eventual consistency (new resource not visible yet)"
DEPENDENCY_RELEASE = "dependency still being released"
_phase: contextvars.ContextVar[str | None] = contextvars.ContextVar("provision_phase", default=None)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    token = _phase.set(name)
    try:
        yield
    finally:
        _phase.reset(token)


def classify_in_phase(exc: BaseException) -> str | None:
    """`classify`, plus what is transient only in the current phase."""
    reason = classify(exc)
    if reason is not None:
        return reason
    current = _phase.get()
    if current == CONVERGING and is_not_found(exc):
        return EVENTUAL_CONSISTENCY
    if current == DELETING and error_code(exc) == "DependencyViolation":
        return DEPENDENCY_RELEASE
    return None


def error_code(exc: BaseException) -> str | None:
    """The AWS error code or Databricks error_code of `exc`, if it has one."""
    found = _aws_error(exc) or _databricks_error(exc)
    return found[0] if found else None


def is_not_found(exc: BaseException) -> bool:
    """True when a read or delete says the resource is not there (delete then counts as done)."""
    aws = _aws_error(exc)
    if aws:
        code, _, status = aws
        return code in _NOT_FOUND_CODES or code.endswith(".NotFound") or code.endswith("NotFound") or status == 404
    dbx = _databricks_error(exc)
    if dbx:
        code, _, status = dbx
        return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or status == 404
    return False


PROPAGATION_HINT = (
    "IAM did not let Databricks assume the cross-account role. Check the role's trust policy: principal "
    "arn:aws:iam::414351767826:root with condition sts:ExternalId = your Databricks account id; and that the "
    "role's inline policy is attached."
)


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter up to a deadline. `clock` and `sleep` are injectable."""

    deadline_seconds: float = 300.0
    initial_seconds: float = 1.0
    max_seconds: float = 20.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    # Reasons that only bridge a short settling time get a shorter budget than the deadline, so a real
    # error (a wrong id, a teardown-order bug) is reported in seconds, not minutes.
    reason_limits: dict[str, float] = field(default_factory=lambda: {EVENTUAL_CONSISTENCY: 120.0, DEPENDENCY_RELEASE: 600.0})

    def call(
        self,
        fn: Callable[[], T],
        *,
        what: str,
        on_retry: Callable[[str, int, float, BaseException], None] | None = None,
        classifier: Callable[[BaseException], str | None] = classify_in_phase,
        deadline_seconds: float | None = None,
    ) -> T:
        """Run fn, retrying what `classifier` calls transient until the deadline."""
        start = self.clock()
        deadline = self.deadline_seconds if deadline_seconds is None else deadline_seconds
        reasons: list[str] = []

        def should_retry(exc: BaseException) -> bool:
            reason = classifier(exc)
            if reason is not None:
                reasons.append(reason)
            return reason is not None

        def backoff(state: tenacity.RetryCallState) -> float:
            ceiling = min(self.max_seconds, self.initial_seconds * (2 ** min(state.attempt_number - 1, 30)))
            delay = self.rng.uniform(ceiling / 2, ceiling)
            retry_after = getattr(state.outcome.exception(), "retry_after_secs", None) if state.outcome else None
            if retry_after:
                delay = max(delay, float(retry_after))
            remaining = deadline - (self.clock() - start)
            return max(0.0, min(delay, remaining))

        def out_of_time(state: tenacity.RetryCallState) -> bool:
            limit = min(deadline, self.reason_limits.get(reasons[-1], deadline)) if reasons else deadline
            return self.clock() - start >= limit

        def log_retry(state: tenacity.RetryCallState) -> None:
            if on_retry and state.outcome is not None and state.next_action is not None:
                on_retry(reasons[-1], state.attempt_number, state.next_action.sleep, state.outcome.exception())

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(should_retry),
            wait=backoff,
            stop=out_of_time,
            sleep=self.sleep,
            before_sleep=log_retry,
            reraise=False,
        )
        try:
            return retrying(fn)
        except tenacity.RetryError as gave_up:
            last = gave_up.last_attempt.exception()
            assert last is not None
            reason = reasons[-1] if reasons else "transient"
            hint = PROPAGATION_HINT if reason == IAM_PROPAGATION else ""
            raise RetryDeadlineExceeded(what, reason, self.clock() - start, last, hint) from last
