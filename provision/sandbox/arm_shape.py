"""What ARM's answers look like when the sandbox's fault injector speaks for it: the operation a request is
(in ARM's own authorization terms, `Microsoft.Network/virtualNetworks/write`), and its error shape
`{"error": {"code", "message"}}` with the headers ARM sends."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

_VERBS = {"PUT": "write", "PATCH": "write", "DELETE": "delete", "GET": "read", "HEAD": "read", "POST": "action"}
STATUS_TEXT = {400: "Bad Request", 403: "Forbidden", 409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def arm_operation(method: str, path: str) -> str:
    """The RBAC action a request needs: PUT .../providers/Microsoft.Network/virtualNetworks/v/subnets/s ->
    "Microsoft.Network/virtualNetworks/subnets/write"; PUT /subscriptions/x/resourcegroups/g ->
    "Microsoft.Resources/subscriptions/resourceGroups/write"."""
    parts = [p for p in path.split("/") if p]
    lowered = [p.lower() for p in parts]
    verb = _VERBS.get(method.upper(), "action")
    if "providers" in lowered:
        i = lowered.index("providers")
        provider, rest = (parts[i + 1] if len(parts) > i + 1 else ""), parts[i + 2:]
        types = rest[0::2]
        return "/".join([provider, *types, verb])
    if "resourcegroups" in lowered:
        return f"Microsoft.Resources/subscriptions/resourceGroups/{verb}"
    return f"Microsoft.Resources/subscriptions/{verb}"


def scope_of(path: str) -> str:
    return path.split("?", 1)[0].rstrip("/")


def arm_error(start_response: Callable, status: int, code: str, message: str, retry_after: int | None = None) -> list[bytes]:
    data = json.dumps({"error": {"code": code, "message": message}}).encode()
    request_id = str(uuid.uuid4())
    headers = [
        ("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(data))),
        ("x-ms-request-id", request_id), ("x-ms-correlation-request-id", request_id),
        ("x-ms-failure-cause", "gateway" if status in (429, 503) else "service"),
    ]
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    start_response(f"{status} {STATUS_TEXT.get(status, 'Error')}", headers)
    return [data]


SANDBOX_PRINCIPAL = "00000000-0000-4000-8000-00000000a11c"


def arm_refusal(start_response: Callable, kind: str, operation: str, path: str) -> list[bytes]:
    """A terminal refusal as ARM words it: authorization, a bad parameter, or a quota."""
    if kind == "access_denied":
        return arm_error(
            start_response, 403, "AuthorizationFailed",
            f"The client '{SANDBOX_PRINCIPAL}' with object id '{SANDBOX_PRINCIPAL}' does not have authorization to perform "
            f"action '{operation}' over scope '{scope_of(path)}' or the scope is invalid. If access was recently granted, "
            "please refresh your credentials. (sandbox refusal)",
        )
    if kind == "invalid_parameter":
        return arm_error(start_response, 400, "InvalidParameter", f"A parameter of '{operation}' is invalid. (sandbox refusal)")
    return arm_error(
        start_response, 409, "QuotaExceeded",
        f"Operation '{operation}' could not be completed as it results in exceeding approved quota. (sandbox refusal)",
    )
