"""Where a command's state lives, and the remote state's settings: the runner's state handling that is not
run order. A path or s3://bucket/key; --state first, then the spec's [state] backend, then DEFAULT_STATE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provision.errors import UsageError
from provision.spec import Spec
from provision.state.backend import Backend, LocalBackend, is_remote, open_backend

DEFAULT_STATE = Path("provision.state.json")


def locate(location: Path | str | None, spec: Spec | None, sandbox: bool) -> Backend:
    """The state's backend. An s3:// state in the sandbox uses the sandbox's S3 endpoint and dummy keys; on
    the real cloud, boto3's own configuration (profiles, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)."""
    settings = spec.state if spec is not None else None
    location = location or (settings.backend if settings is not None and settings.backend else None) or DEFAULT_STATE
    if not is_remote(location):
        return LocalBackend(Path(location))
    options: dict[str, Any] = {"sandbox": sandbox, "region": None if sandbox or spec is None else spec.region}
    if sandbox:
        options["endpoint_url"] = _sandbox_aws_endpoint()
    if settings is not None:
        options.update(kms_key_id=settings.kms_key_id, lock_ttl_seconds=settings.lock_ttl_seconds)
    return open_backend(str(location), **options)


def _sandbox_aws_endpoint() -> str:
    from provision.sandbox import daemon

    info, _ = daemon.start()
    return info.aws_endpoint_url


def adopt_state_settings(backend: Backend, spec: Spec) -> None:
    """A command that learns the spec from the state (resume, teardown) writes as `up` did: with its KMS key."""
    options = getattr(backend, "options", None)
    if options is not None and spec.state is not None and options.kms_key_id is None:
        options.kms_key_id = spec.state.kms_key_id


def unlock(backend: Backend, lock_id: str) -> dict[str, Any]:
    """Remove a remote state's lock that names `lock_id` (a run that cannot be taken over: another host's,
    within the TTL); the holder it named."""
    if isinstance(backend, LocalBackend):
        raise UsageError(
            f"state {backend.describe()} is a local file: its lock is the kernel's, released when the run holding it ends; "
            "there is nothing to force"
        )
    from provision.state.s3 import S3Backend, force_unlock

    assert isinstance(backend, S3Backend)
    return force_unlock(backend, lock_id)
