"""The ARM emulator's state: every resource by its (lower-cased) ARM id in one lock-protected store, the
long-running operations, ARM's error shape, and the id helpers every family shares.

A record is the ARM-shaped JSON a GET returns (id, name, type, location, tags, properties...) plus private
bookkeeping under keys starting with "_" that never leave the store:
  _kind   the inventory kind ("virtual_networks", ...)
  _seq    creation order (listings keep it, as ARM's do)
  _due    when the pending transition applies (None once settled); applied lazily on read, by time
  _then   what it becomes then: "Succeeded", "Failed" or "deleted"
  _op     the operation id that transition completes
Back-references (a subnet's private endpoints, an NSG's subnets, a workspace's private endpoint
connections, a zone's A records) are not stored: each family computes them on read, so they can never
go stale.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
import time
import uuid
from typing import Any

KINDS = (
    "resource_groups",
    "virtual_networks",
    "subnets",
    "network_security_groups",
    "private_endpoints",
    "private_dns_zone_groups",
    "private_dns_zones",
    "virtual_network_links",
    "workspaces",
)
# Kept and served (GET, list, generic listing) but not an inventory kind: a private endpoint's NIC comes
# and goes with its endpoint.
INTERNAL_KINDS = ("network_interfaces",)

NOT_FOUND_HELP = "For more details please go to https://aka.ms/ARMResourceNotFoundFix"


class ArmError(Exception):
    """An error answered as {"error": {"code", "message"[, "details"]}} with ARM's status and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: list[dict] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details

    def body(self) -> dict:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


def bad_request(code: str, message: str, details: list[dict] | None = None) -> ArmError:
    return ArmError(400, code, message, details=details)


def resource_not_found(type_path: str, rg: str) -> ArmError:
    """ARM's own 404 for a missing tracked resource: type_path is 'Microsoft.Network/virtualNetworks/x'."""
    return ArmError(
        404, "ResourceNotFound", f"The Resource '{type_path}' under resource group '{rg}' was not found. {NOT_FOUND_HELP}"
    )


def child_not_found(rid: str) -> ArmError:
    """The network resource provider's 404 for a missing child resource (subnet, DNS zone group...)."""
    return ArmError(404, "NotFound", f"Resource {rid} not found.")


def rg_not_found(rg: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")


def invalid_reference(target: str, referrer: str) -> ArmError:
    """NRP's answer to a body reference (subnet, NSG, private link resource) that does not exist."""
    return bad_request(
        "InvalidResourceReference",
        f"Resource {target} referenced by resource {referrer} was not found. Please make sure that the "
        "referenced resource exists, and that both resources are in the same region.",
        details=[{"code": "NotFound", "message": f"Resource {target} not found."}],
    )


class Store:
    """Every emulated resource by lower-cased id, and every long-running operation by id."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.records: dict[str, dict] = {}
        self.operations: dict[str, dict] = {}
        self._seq = itertools.count()

    def clear(self) -> None:
        with self.lock:
            self.records.clear()
            self.operations.clear()

    def get(self, rid: str | None) -> dict | None:
        return self.records.get(rid.lower()) if rid else None

    def add(self, record: dict) -> dict:
        record.setdefault("_seq", next(self._seq))
        self.records[record["id"].lower()] = record
        return record

    def remove(self, rid: str) -> None:
        self.records.pop(rid.lower(), None)

    def of_kind(self, kind: str) -> list[dict]:
        return sorted((r for r in self.records.values() if r["_kind"] == kind), key=lambda r: r["_seq"])

    def children(self, parent_id: str, kind: str) -> list[dict]:
        prefix = parent_id.lower() + "/"
        return [r for r in self.of_kind(kind) if r["id"].lower().startswith(prefix)]

    def in_group(self, sub: str, rg: str) -> list[dict]:
        prefix = f"/subscriptions/{sub}/resourcegroups/{rg}/".lower()
        return sorted(
            (r for r in self.records.values() if r["id"].lower().startswith(prefix)), key=lambda r: r["_seq"]
        )


STORE = Store()


def public(record: dict) -> dict:
    """The record as ARM answers it: a deep copy without the private keys."""
    return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}


def now() -> float:
    return time.time()


def new_guid() -> str:
    return str(uuid.uuid4())


def etag() -> str:
    return f'W/"{new_guid()}"'


def same(a: str | None, b: str | None) -> bool:
    """ARM compares ids and names without regard to case."""
    return (a or "").lower() == (b or "").lower()


# --- ARM ids ------------------------------------------------------------------------------------------

_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/(?P<ns>[^/]+)/(?P<rest>[^?#]+?)/?$",
    re.IGNORECASE,
)
_GROUP_ID = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/?$", re.IGNORECASE)


def group_id(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def provider_id(sub: str, rg: str, ns: str, *type_name_pairs: str) -> str:
    """provider_id(s, rg, "Microsoft.Network", "virtualNetworks", "v", "subnets", "a")."""
    return f"{group_id(sub, rg)}/providers/{ns}/" + "/".join(type_name_pairs)


def parse_id(rid: Any) -> dict | None:
    """{sub, rg, ns, types: [...], names: [...]} of a provider resource id, or None when it is not one."""
    if not isinstance(rid, str):
        return None
    match = _RESOURCE_ID.match(rid.strip())
    if not match:
        return None
    parts = match["rest"].split("/")
    if len(parts) % 2:
        return None
    return {"sub": match["sub"], "rg": match["rg"], "ns": match["ns"], "types": parts[0::2], "names": parts[1::2]}


def parse_group_id(rid: Any) -> tuple[str, str] | None:
    if not isinstance(rid, str):
        return None
    match = _GROUP_ID.match(rid.strip())
    return (match["sub"], match["rg"]) if match else None


def id_of(ref: Any) -> str | None:
    """The id in a {"id": ...} reference, or None."""
    return ref.get("id") if isinstance(ref, dict) and isinstance(ref.get("id"), str) else None


def name_of(rid: str) -> str:
    return rid.rstrip("/").rsplit("/", 1)[-1]


def group_of(rid: str) -> str:
    """The resource group name in an id (as the id spells it)."""
    parts = rid.split("/")
    return parts[4] if len(parts) > 4 else ""


def state_of(record: dict | None) -> str | None:
    if record is None:
        return None
    return (record.get("properties") or {}).get("provisioningState")


def busy(record: dict | None) -> bool:
    """A pending operation not yet applied."""
    return bool(record and record.get("_due") is not None)


def deleting(record: dict | None) -> bool:
    return bool(record and record.get("_then") == "deleted")
