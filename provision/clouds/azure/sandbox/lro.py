"""Long-running operations the way ARM speaks them, computed from time on read (no background thread).

A mutating call schedules one transition on its record (_due/_then/_op, see store.py) and one operation:
- PUT answers 201 (new) or 200 (existing) with the resource body, `Azure-AsyncOperation: <operation status
  URL>` and `Retry-After`; the status resource answers {"status": "InProgress"} until the delay has passed,
  then "Succeeded", or "Failed" with the error an asynchronous validation decided when the call was made.
- DELETE answers 202 with `Location: <operation result URL>` (and Azure-AsyncOperation where the provider
  sends one) and `Retry-After`; the result URL answers 202 until done, then 200 (or the failure's status).
Every request first applies every due transition (`advance`), in due order, so a GET, a listing, an
operation poll and inventory() all see the same world. Families register what happens when a record
settles (`SETTLED[kind]`) and how a deletion completes (`FINISH_DELETE[kind]`, default: forget it).

Retry-After is the whole seconds left, at most 10 (ARM's own values are 10-60): below one second it is 0,
which the SDK's poller reads as "use your polling_interval", so small test delays poll quickly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from provision.clouds.azure.sandbox.store import STORE, new_guid

SETTLED: dict[str, Callable[[dict], None]] = {}
FINISH_DELETE: dict[str, Callable[[dict, dict | None], None]] = {}
# kind -> the ids of the resources that use a record (a subnet's NICs and workspaces, an NSG's subnets):
# what must go first, and what blocks a resource group deletion when it lives in another group.
USERS: dict[str, Callable[[dict], list[str]]] = {}
# Namespaces whose operation URLs carry an Azure-AsyncOperation header on DELETE too.
_ASYNC_DELETE = {"microsoft.network", "microsoft.databricks"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def schedule(
    record: dict,
    at: float,
    seconds: float,
    then: str,
    *,
    ns: str,
    location: str,
    error: dict | None = None,
    fail_status: int = 400,
) -> dict:
    """Start an operation on record finishing `seconds` after `at` as `then` ("Succeeded", "Failed" or
    "deleted"); error is the failure the status resource will report."""
    op_id = new_guid()
    due = at + max(0.0, seconds)
    record["_due"], record["_then"], record["_op"] = due, then, op_id
    op = {
        "id": op_id,
        "rid": record["id"],
        "ns": ns,
        "location": (location or "global").replace(" ", "").lower(),
        "started": at,
        "due": due,
        "error": error,
        "fail_status": fail_status,
    }
    STORE.operations[op_id] = op
    return op


def settle_now(record: dict, state: str = "Succeeded") -> None:
    record["_due"] = record["_then"] = None
    record.setdefault("properties", {})["provisioningState"] = state


def advance(at: float) -> None:
    """Apply every transition due by `at`, earliest first (a hook may settle or remove others)."""
    while True:
        due = [r for r in STORE.records.values() if r.get("_due") is not None and r["_due"] <= at]
        if not due:
            return
        record = min(due, key=lambda r: (r["_due"], r["_seq"]))
        then, op = record["_then"], STORE.operations.get(record.get("_op") or "")
        record["_due"] = record["_then"] = None
        if then == "deleted":
            FINISH_DELETE.get(record["_kind"], _forget)(record, op)
        else:
            record["properties"]["provisioningState"] = then
            hook = SETTLED.get(record["_kind"])
            if hook:
                hook(record)


def _forget(record: dict, op: dict | None) -> None:
    STORE.remove(record["id"])


def status_of(op: dict, at: float) -> str:
    if at < op["due"]:
        return "InProgress"
    return "Failed" if op.get("error") else "Succeeded"


def retry_after(op: dict, at: float) -> str:
    return str(max(0, min(10, math.floor(op["due"] - at))))


def status_url(base: str, sub: str, op: dict, api_version: str) -> str:
    return f"{base}/subscriptions/{sub}/providers/{op['ns']}/locations/{op['location']}/operations/{op['id']}?api-version={api_version}"


def result_url(base: str, sub: str, op: dict, api_version: str) -> str:
    if op["ns"] == "Microsoft.Resources":
        return f"{base}/subscriptions/{sub}/operationresults/{op['id']}?api-version={api_version}"
    return f"{base}/subscriptions/{sub}/providers/{op['ns']}/locations/{op['location']}/operationResults/{op['id']}?api-version={api_version}"


def put_headers(base: str, sub: str, op: dict, api_version: str, at: float, with_location: bool = False) -> dict:
    headers = {"Azure-AsyncOperation": status_url(base, sub, op, api_version), "Retry-After": retry_after(op, at)}
    if with_location:
        headers["Location"] = result_url(base, sub, op, api_version)
    return headers


def delete_headers(base: str, sub: str, op: dict, api_version: str, at: float) -> dict:
    headers = {"Location": result_url(base, sub, op, api_version), "Retry-After": retry_after(op, at)}
    if op["ns"].lower() in _ASYNC_DELETE:
        headers["Azure-AsyncOperation"] = status_url(base, sub, op, api_version)
    return headers


def status_body(op: dict, at: float) -> dict[str, Any]:
    status = status_of(op, at)
    body: dict[str, Any] = {"id": op["id"], "name": op["id"], "status": status, "startTime": iso(op["started"])}
    if status != "InProgress":
        body["endTime"] = iso(op["due"])
    if status == "Failed":
        body["error"] = op["error"]
    return body


# --- replies shared by the resource providers ---------------------------------------------------------


def reply_put(ctx: Any, body: dict, op: dict, created: bool, with_location: bool = False) -> tuple[int, Any, dict]:
    return (201 if created else 200), body, put_headers(ctx.base, ctx.sub, op, ctx.api_version, ctx.at, with_location)


def reply_delete(ctx: Any, op: dict) -> tuple[int, Any, dict]:
    return 202, None, delete_headers(ctx.base, ctx.sub, op, ctx.api_version, ctx.at)


def ensure_idle(ctx: Any, records: list[dict | None]) -> None:
    """The network resource provider runs one operation at a time on a resource and what depends on it:
    409 AnotherOperationInProgress (with the pending operation's status URL) otherwise, as
    Azure/terraform-provider-azapi#503 shows it (older API versions answered 429, hashicorp/terraform#7153)."""
    import provision.clouds.azure.sandbox.rules as rules  # noqa: PLR0402
    from provision.clouds.azure.sandbox.store import ArmError

    if not rules.enforced("one-operation-at-a-time"):
        return
    for record in records:
        if record is not None and record.get("_due") is not None:
            op = STORE.operations.get(record.get("_op") or "")
            url = status_url(ctx.base, ctx.sub, op, ctx.api_version) if op else record["id"]
            raise ArmError(
                409,
                "AnotherOperationInProgress",
                f"Another operation on this or dependent resource is in progress. To retrieve status of the "
                f"operation use uri: {url}.",
                {"Retry-After": retry_after(op, ctx.at) if op else "1"},
                details=[],
            )
