"""Typed errors. Library code raises these; only cli.py turns them into messages and exit codes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ProvisionError(Exception):
    """Base of every error the CLI knows how to report. `exit_code` is what the CLI exits with."""

    exit_code = 1


@dataclass(frozen=True)
class FieldProblem:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class GraphError(ProvisionError):
    """A topology's step graph is miswired (a step reads an output it does not need or that its producer does
    not declare): a programming error in provision, never the user's doing."""


class DependencyMismatch(ProvisionError):
    """An installed library is not the one provision was written for (what it relies on moved or changed)."""


class SpecError(ProvisionError):
    """The deployment spec is invalid. Carries every problem found, each naming its field."""

    exit_code = 2

    def __init__(self, source: str, problems: list[FieldProblem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid deployment spec {source}:\n{lines}")


class PreflightError(SpecError):
    """Something the spec names as existing is missing or unusable. Nothing was created."""

    def __init__(self, source: str, problems: list[FieldProblem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        ProvisionError.__init__(self, f"preflight of {source} failed; nothing was created:\n{lines}")


class StateFileError(ProvisionError):
    """The state file is missing, unreadable, corrupt or of an unknown schema. It is never overwritten."""

    exit_code = 2


class UsageError(ProvisionError):
    """The command cannot run as asked (for example `resume` with nothing to resume)."""

    exit_code = 2


class CredentialsError(ProvisionError):
    """No credentials for a cloud could be found before anything was created; the message says how to sign in."""

    exit_code = 2

    def __init__(self, cloud: str, message: str):
        self.cloud = cloud
        super().__init__(message)


class StateLockedError(ProvisionError):
    """Another run holds the state file's lock."""

    exit_code = 3


class StateConflictError(ProvisionError):
    """A state write found the state changed since this run read it (a remote state's ETag moved on): another
    run wrote it. Nothing was overwritten; the run stops (exit 1) and the other run's state stands."""


class LockLostError(StateConflictError):
    """This run's remote state lock was taken over or deleted (it could not refresh its heartbeat in time):
    it must not write the state again."""


class LineageError(ProvisionError):
    """The state is not the one a command expects: another lineage (a different deployment's history), or, for
    a saved plan, a later serial (the state moved on since the plan was made). Nothing was changed."""

    exit_code = 2


class StepFailed(ProvisionError):
    """A step failed; the state file records what exists and the run can be resumed."""

    def __init__(self, step_id: str, cause: BaseException):
        self.step_id = step_id
        self.cause = cause
        # Filled in by the runner, for the message that tells the user how to continue.
        self.state_path: object | None = None
        self.operation: str | None = None
        # Other steps that failed in the same run, on parallel branches.
        self.others: list[str] = []
        super().__init__(f"step {step_id} failed: {describe(cause)}")


def describe(cause: BaseException) -> str:
    """The API's own words; a Databricks error leads with its error code (PERMISSION_DENIED, QUOTA_EXCEEDED),
    which the SDK leaves out of str()."""
    code = getattr(cause, "error_code", None)
    text = str(cause)
    if isinstance(code, str) and code and not text.startswith(code):
        return f"{code}: {text}"
    return text


class RetryDeadlineExceeded(ProvisionError):
    """A retryable error kept happening until the retry deadline."""

    def __init__(self, what: str, reason: str, seconds: float, last_error: BaseException, hint: str = ""):
        self.what = what
        self.reason = reason
        self.last_error = last_error
        message = f"{what}: still failing after {seconds:.0f}s of retries ({reason}): {last_error}"
        if hint:
            message += f"\n{hint}"
        super().__init__(message)


class WaitTimeout(ProvisionError):
    """A resource did not reach its target state in time."""

    def __init__(self, what: str, target: str, last_status: str, seconds: float):
        self.last_status = last_status
        super().__init__(f"{what} did not become {target} within {seconds:.0f}s; last status: {last_status}")


class ResourceFailed(ProvisionError):
    """A resource reached a failure state (for example a workspace in FAILED)."""

    def __init__(self, what: str, status: str, detail: str = ""):
        self.status = status
        self.detail = detail
        super().__init__(f"{what} is {status}" + (f": {detail}" if detail else ""))


class OwnershipConflict(ProvisionError):
    """A resource with our deterministic name exists but is not ours to adopt or change."""


class SandboxError(ProvisionError):
    """The local sandbox cloud could not be started, reached or stopped."""


class InjectedFault(ProvisionError):
    """Raised by a failpoint (PROVISION_FAILPOINTS); `transient` faults are retried like a 503."""

    def __init__(self, where: str, transient: bool):
        self.transient = transient
        kind = "transient" if transient else "terminal"
        super().__init__(f"injected {kind} fault at {where}")


class NotYetPropagated(ProvisionError):
    """A step read an answer that means "not yet" rather than "no" (a storage credential that does not validate
    while its IAM role's trust and policy propagate). The one classifier retries it with `reason` until the
    deadline, logging each retry, and reports the last answer if it never settles."""

    def __init__(self, what: str, reason: str, detail: str):
        self.reason = reason
        super().__init__(f"{what}: {detail}")


class ReplacementRefused(ProvisionError):
    """`up` found resources that differ from the spec in what their API cannot change in place (a VPC's CIDR):
    converging would mean replacing them. Nothing was changed. `drifts` is [(step id, Drift)]."""

    exit_code = 2

    def __init__(self, drifts: Sequence[tuple[str, object]]):
        self.drifts = list(drifts)
        lines = "\n".join(f"  - {step_id}: {drift}: would have to replace it" for step_id, drift in drifts)
        super().__init__(
            "these resources differ from the spec in what cannot change in place; nothing was changed:\n"
            f"{lines}\nRestore them (or the spec), or run `provision teardown` and `up` again."
        )
