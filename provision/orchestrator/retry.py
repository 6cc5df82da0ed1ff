"""Retry policy: one classifier decides what is retryable and why; tenacity does the backing off.

`ErrorRules.classify(exc)` returns a short reason string for a transient error and None for a terminal one,
in the manner of databricks-sdk's retries.py. Each cloud brings its own rules (`clouds/<cloud>/errors.py`);
the composition root hands the run's clouds' rules to the policy, so this module knows no cloud. The
clock and sleep are injectable so retry tests take no real time.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

import tenacity

from provision.errors import InjectedFault, NotYetPropagated, RetryDeadlineExceeded

T = TypeVar("T")

IAM_PROPAGATION = "iam-propagation"


@dataclass(frozen=True)
class ErrorInfo:
    """What a cloud's error says, in one shape: its code, message and HTTP status (0 if unknown)."""

    code: str
    message: str
    status: int
    # Seconds the service asked us to wait before trying again (HTTP Retry-After), if it said.
    retry_after: float | None = None


@dataclass(frozen=True)
class CloudErrors:
    """One cloud's error classification (each cloud's `errors.py` makes one). `parse` recognises the
    cloud's own exceptions; the rest judge what `parse` found."""

    cloud: str
    parse: Callable[[BaseException], ErrorInfo | None]
    # Why the error is worth retrying (throttled, a 5xx, propagation), or None if it is terminal.
    transient: Callable[[ErrorInfo], str | None]
    not_found: Callable[[ErrorInfo], bool]
    already_exists: Callable[[ErrorInfo], bool]
    # A delete refused because something still uses the resource (released late by the cloud).
    in_use: Callable[[ErrorInfo], bool]
    # Shown when a retry on this reason gives up (e.g. what to check in an IAM trust policy).
    hints: dict[str, str] = field(default_factory=dict)
    # A refusal that means "not yet" only while a step waits for a grant it just made to propagate (the
    # PROPAGATING phase): elsewhere the same refusal (PERMISSION_DENIED) is terminal.
    propagation: Callable[[ErrorInfo], bool] = lambda e: False
    # This cloud's reasons that wait out a settling time (RetryPolicy.settling_reasons), not a loaded service.
    settling: frozenset[str] = frozenset()


_CONNECTION_ERRORS = (
    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError", "ConnectionError",
    "ProxyConnectionError",
)


@dataclass(frozen=True)
class ErrorRules:
    """The one classifier: the run's clouds' rules, plus what is transient whatever the cloud."""

    clouds: tuple[CloudErrors, ...] = ()

    def _find(self, exc: BaseException) -> tuple[CloudErrors, ErrorInfo] | None:
        for cloud in self.clouds:
            info = cloud.parse(exc)
            if info is not None:
                return cloud, info
        return None

    def classify(self, exc: BaseException) -> str | None:
        """Why `exc` is worth retrying, or None if it is terminal."""
        if isinstance(exc, InjectedFault):
            return "injected transient fault" if exc.transient else None
        if isinstance(exc, NotYetPropagated):
            return exc.reason
        found = self._find(exc)
        if found:
            cloud, info = found
            return cloud.transient(info)
        name = type(exc).__name__
        # Connection-level trouble from botocore/urllib3/requests; the SDK's own "Timed out after" wraps
        # its exhausted 429/503/connection retries.
        if name in _CONNECTION_ERRORS:
            return f"connection ({name})"
        if name == "ResponseParserError":  # an HTML error page from a proxy or load balancer instead of the API's answer
            return "unparseable response"
        if isinstance(exc, TimeoutError) and exc.__cause__ is not None:
            return self.classify(exc.__cause__)
        return None

    def classify_in_phase(self, exc: BaseException) -> str | None:
        """`classify`, plus what is transient only in the current phase."""
        reason = self.classify(exc)
        if reason is not None:
            return reason
        current = _phase.get()
        if current == CONVERGING and self.is_not_found(exc):
            return EVENTUAL_CONSISTENCY
        if current == DELETING and self.is_in_use(exc):
            return DEPENDENCY_RELEASE
        if current == PROPAGATING:
            found = self._find(exc)
            if found and found[0].propagation(found[1]):
                return IAM_PROPAGATION
        return None

    def error_code(self, exc: BaseException) -> str | None:
        found = self._find(exc)
        return found[1].code if found else None

    def is_not_found(self, exc: BaseException) -> bool:
        """True when a read or delete says the resource is not there (delete then counts as done)."""
        found = self._find(exc)
        return bool(found and found[0].not_found(found[1]))

    def is_already_exists(self, exc: BaseException) -> bool:
        found = self._find(exc)
        return bool(found and found[0].already_exists(found[1]))

    def is_in_use(self, exc: BaseException) -> bool:
        found = self._find(exc)
        return bool(found and found[0].in_use(found[1]))

    def refused(self, exc: BaseException) -> bool:
        """The service answered and turned the request down (HTTP 4xx): nothing of it was applied. A 5xx, a
        dropped connection or a timeout may have come after the request took effect (a lost response)."""
        found = self._find(exc)
        return bool(found and 400 <= found[1].status < 500)

    def retry_after(self, exc: BaseException) -> float | None:
        """How long the service asked to wait (Retry-After), if it said: from the cloud's own error, or an
        SDK's `retry_after_secs` (databricks-sdk)."""
        found = self._find(exc)
        if found and found[1].retry_after:
            return found[1].retry_after
        value = getattr(exc, "retry_after_secs", None)
        return float(value) if isinstance(value, (int, float)) and value > 0 else None

    def hint(self, reason: str) -> str:
        return next((c.hints[reason] for c in self.clouds if reason in c.hints), "")


# What the step is doing changes what is transient. Right after a create, EC2 and IAM are eventually
# consistent: the new id can be NotFound for seconds. During a delete, AWS keeps refusing with
# DependencyViolation while a deleted dependency's network interfaces are released.
CONVERGING = "converging"
DELETING = "deleting"
# A step waits for an IAM change it just made to reach a service that checks it (Unity Catalog validating a
# storage credential's role): the cloud's `propagation` refusals are retried as IAM propagation.
PROPAGATING = "propagating"
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


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter up to a deadline. `clock` and `sleep` are injectable."""

    # The run's clouds' error rules, from the composition root: without them nothing cloud-specific retries.
    errors: ErrorRules
    deadline_seconds: float = 300.0
    initial_seconds: float = 1.0
    max_seconds: float = 20.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    # Reasons that only bridge a short settling time get a shorter budget than the deadline, so a real
    # error (a wrong id, a teardown-order bug) is reported in seconds, not minutes.
    reason_limits: dict[str, float] = field(default_factory=lambda: {EVENTUAL_CONSISTENCY: 120.0, DEPENDENCY_RELEASE: 600.0})
    # Reasons that wait out a settling time rather than a loaded service (a role reaching STS, a new id reaching
    # every endpoint, a deleted endpoint's interfaces being released) back off to a shorter ceiling: what it costs is a cheap refused call, and a step on the
    # critical path then notices the change within a few seconds instead of up to max_seconds late.
    settling_reasons: frozenset[str] = frozenset({IAM_PROPAGATION, EVENTUAL_CONSISTENCY, DEPENDENCY_RELEASE})
    settling_max_seconds: float = 2.0

    def call(
        self,
        fn: Callable[[], T],
        *,
        what: str,
        on_retry: Callable[[str, int, float, BaseException], None] | None = None,
        classifier: Callable[[BaseException], str | None] | None = None,
        deadline_seconds: float | None = None,
    ) -> T:
        """Run fn, retrying what `classifier` calls transient until the deadline."""
        classifier = classifier or self.errors.classify_in_phase
        start = self.clock()
        deadline = self.deadline_seconds if deadline_seconds is None else deadline_seconds
        reasons: list[str] = []

        def should_retry(exc: BaseException) -> bool:
            reason = classifier(exc)
            if reason is not None:
                reasons.append(reason)
            return reason is not None

        def settling(reason: str) -> bool:
            return reason in self.settling_reasons or any(reason in c.settling for c in self.errors.clouds)

        def backoff(state: tenacity.RetryCallState) -> float:
            cap = min(self.max_seconds, self.settling_max_seconds) if reasons and settling(reasons[-1]) else self.max_seconds
            ceiling = min(cap, self.initial_seconds * (2 ** min(state.attempt_number - 1, 30)))
            delay = self.rng.uniform(ceiling / 2, ceiling)
            failed = state.outcome.exception() if state.outcome else None
            retry_after = self.errors.retry_after(failed) if failed is not None else None
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
            hint = self.errors.hint(reason)
            raise RetryDeadlineExceeded(what, reason, self.clock() - start, last, hint) from last
