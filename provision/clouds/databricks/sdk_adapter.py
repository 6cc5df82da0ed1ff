"""The one place that reaches into databricks-sdk's private API client (pinned exactly in pyproject.toml).

Three things the SDK offers no public switch for: counting and logging every call (as the botocore hooks do
for AWS); not re-sending a request after a connection error, a timeout or a Retry-After answer: a
POST whose response was lost would be created twice, while our retry policy re-reads by name first; and
pacing every HTTP attempt (orchestrator/pacing.py), the SDK's own re-sends of a throttled GET included.
`tests/test_databricks_adapter.py` fails if an SDK upgrade moves what this patches.
"""

from __future__ import annotations

import time
from typing import Any

from provision.errors import DependencyMismatch
from provision.orchestrator.clients import CallStats, OnCall
from provision.orchestrator.pacing import Pacer


def operation_name(method: str, path: str | None) -> str:
    """/api/2.0/accounts/<id>/workspaces/123 -> "GET workspaces"; /api/2.0/token/create -> "POST token/create"."""
    if "/accounts/" in (path or ""):
        parts = (path or "").split("/accounts/", 1)[1].split("/")[1:]
        return f"{method} {parts[0] if parts else path}"
    return f"{method} {(path or '').split('/api/2.0/', 1)[-1]}"


def _base(api_client: Any) -> Any:
    base = getattr(api_client, "_api_client", None)
    if base is None or not hasattr(base, "_is_retryable") or not hasattr(base, "_perform"):
        raise DependencyMismatch("databricks-sdk's ApiClient no longer has _api_client._is_retryable/_perform: review sdk_adapter.py")
    return base


def pace(api_client: Any, pacer: Pacer) -> None:
    """Each HTTP attempt waits its turn with `pacer`; a 429 empties its bucket and, with Retry-After, pauses every
    thread using it. Apply before `no_resends`, which drops a non-GET's Retry-After that this needs to see."""
    base = _base(api_client)
    perform = base._perform

    def paced(method: str, *args: Any, **kwargs: Any) -> Any:
        pacer.acquire(method)
        try:
            return perform(method, *args, **kwargs)
        except Exception as exc:
            if _throttled(exc):
                retry_after = getattr(exc, "retry_after_secs", None)
                pacer.throttled(method, retry_after=float(retry_after) if isinstance(retry_after, (int, float)) else None)
            raise

    base._perform = paced


def _throttled(exc: BaseException) -> bool:
    """A 429 (databricks-sdk's TooManyRequests and its subclasses, whatever the error code)."""
    return any(k.__name__ == "TooManyRequests" for k in type(exc).__mro__) or getattr(exc, "error_code", None) in (
        "TOO_MANY_REQUESTS", "REQUEST_LIMIT_EXCEEDED")


def no_resends(api_client: Any) -> None:
    """Stop the SDK's own retries: each failed call reaches our classifier once."""
    base = _base(api_client)
    base._is_retryable = lambda err: None
    perform = base._perform

    def perform_once(method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return perform(method, *args, **kwargs)
        except Exception as exc:
            # The SDK re-sends any request whose error carries Retry-After (429/503). A 503 on a
            # create may come after the create happened; our retry re-reads by name first instead.
            if method.upper() != "GET" and getattr(exc, "retry_after_secs", None) is not None:
                exc.retry_after_secs = None
            raise

    base._perform = perform_once


def count_calls(api_client: Any, stats: CallStats, on_call: OnCall | None) -> None:
    do = api_client.do

    def counted(method: str, path: str | None = None, *args: Any, **kwargs: Any) -> Any:
        operation = operation_name(method, path)
        began = time.monotonic()
        status: Any = None
        try:
            result = do(method, path, *args, **kwargs)
            status = 200
            return result
        except Exception as exc:
            status = getattr(getattr(exc, "_response", None), "status_code", type(exc).__name__)
            raise
        finally:
            stats.add("databricks", operation)
            if on_call:
                on_call("databricks", operation, time.monotonic() - began, status)

    api_client.do = counted
