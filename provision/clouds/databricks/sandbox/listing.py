"""What the Databricks emulator holds for an account, read back over its real HTTP API (client side, for
app/inventory.py; the server-side dump is app.inventory()). Kinds are named `databricks_<API path>`.

Account side: the provisioning objects; Unity Catalog metastores and each workspace's metastore assignment;
SCIM users (not the sandbox admin), service principals and groups, each service principal's OAuth secrets
(never values) and each workspace's permission assignments; network policies (not `default-policy`), the
workspace network options that bind another policy, NCCs and their live (not deactivated) private endpoint
rules. Workspace side, through each RUNNING workspace's own API (retrying its warm-up refusal for up to 5 s):
its tokens and cluster policies (not Databricks' defaults), and, once per assigned metastore, the catalogs
(not system ones), schemas (not information_schema), external locations and storage credentials."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from provision.clouds.databricks.sandbox.identity_api import admin_user_id
from provision.clouds.databricks.sandbox.network_api import DEFAULT_POLICY

ACCOUNT_KINDS = (
    "credentials", "storage-configurations", "networks", "workspaces", "vpc-endpoints", "private-access-settings", "customer-managed-keys",
)
_SCIM_KINDS = {"users": "Users", "service-principals": "ServicePrincipals", "groups": "Groups"}
_WARMUP = "does not have any associated worker environments"
_WARMUP_SECONDS = 5.0
_SYSTEM_CATALOG_TYPES = {"SYSTEM_CATALOG", "INTERNAL_CATALOG"}


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _get(host: str, token: str, path: str, query: dict | None = None) -> Any:
    url = f"{host}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read() or b"{}")
        except ValueError:
            body = {}
        raise _HttpError(e.code, str(body.get("error_code", "")), str(body.get("message", body.get("detail", "")))) from None


def _pages(host: str, token: str, path: str, field: str, query: dict | None = None) -> list[dict]:
    """Every item of a list answered in pages with next_page_token."""
    items: list[dict] = []
    query = dict(query or {})
    while True:
        page = _get(host, token, path, query)
        items += page.get(field, [])
        if not page.get("next_page_token"):
            return items
        query["page_token"] = page["next_page_token"]


def _scim(host: str, token: str, path: str) -> list[dict]:
    items: list[dict] = []
    while True:
        page = _get(host, token, path, {"startIndex": len(items) + 1, "count": 100})
        resources = page.get("Resources") or []
        if not resources:
            return items
        items += resources


def _optional(call: Any) -> Any:
    """The answer, or None for a 404 (the object does not exist)."""
    try:
        return call()
    except _HttpError as e:
        if e.status == 404:
            return None
        raise


def _federated(call: Any, deadline: float) -> Any:
    """The permission-assignment API refuses (W2) while identity federation switches on: retry it a while."""
    while True:
        try:
            return call()
        except _HttpError as e:
            if e.code != "BAD_REQUEST" or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _warm(call: Any) -> Any:
    """A workspace API call, retried while the new workspace warms up (W1)."""
    deadline = time.monotonic() + _WARMUP_SECONDS
    while True:
        try:
            return call()
        except _HttpError as e:
            if _WARMUP not in e.message or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _account_identities(host: str, token: str, account_id: str, base: str, workspaces: list[dict]) -> dict[str, list[dict]]:
    found = {f"databricks_{kind}": _scim(host, token, f"{base}/scim/v2/{rtype}") for kind, rtype in _SCIM_KINDS.items()}
    admin = admin_user_id(account_id)
    found["databricks_users"] = [u for u in found["databricks_users"] if u.get("id") != admin]
    found["databricks_service-principal-secrets"] = [
        {**secret, "service_principal_id": sp["id"]}
        for sp in found["databricks_service-principals"]
        for secret in _pages(host, token, f"{base}/servicePrincipals/{sp['id']}/credentials/secrets", "secrets")
    ]
    assignments: list[dict] = []
    deadline = time.monotonic() + _WARMUP_SECONDS
    for ws in workspaces:
        if ws.get("_metastore") is None:
            continue  # no identity federation, so no permission assignments (the API refuses W2)
        path = f"{base}/workspaces/{ws['workspace_id']}/permissionassignments"
        listed = _federated(lambda path=path: _get(host, token, path), deadline)
        assignments += [{**a, "workspace_id": ws["workspace_id"]} for a in listed.get("permission_assignments", [])]
    found["databricks_permission-assignments"] = assignments
    return found


def _account_network(host: str, token: str, base: str, workspaces: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {
        "databricks_network-policies": [
            p for p in _pages(host, token, f"{base}/network-policies", "items") if p.get("network_policy_id") != DEFAULT_POLICY
        ],
    }
    options = [_get(host, token, f"{base}/workspaces/{ws['workspace_id']}/network") for ws in workspaces]
    found["databricks_workspace-network-options"] = [o for o in options if o.get("network_policy_id") != DEFAULT_POLICY]
    nccs = _pages(host, token, f"{base}/network-connectivity-configs", "items")
    found["databricks_network-connectivity-configs"] = nccs
    found["databricks_private-endpoint-rules"] = [
        rule
        for ncc in nccs
        for rule in _pages(host, token, f"{base}/network-connectivity-configs/{ncc['network_connectivity_config_id']}/private-endpoint-rules", "items")
        if not rule.get("deactivated")
    ]
    return found


def _workspace_objects(host: str, token: str, account_id: str, workspaces: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {
        kind: [] for kind in ("databricks_tokens", "databricks_cluster-policies", "databricks_catalogs", "databricks_schemas",
                              "databricks_external-locations", "databricks_storage-credentials")
    }
    seen_metastores: set[str] = set()
    for ws in workspaces:
        if ws.get("workspace_status") != "RUNNING":
            continue
        prefix = f"/workspaces/{urllib.parse.quote(ws['deployment_name'], safe='')}/api"
        workspace_id = ws["workspace_id"]

        def get(path: str, field: str, query: dict | None = None, prefix: str = prefix) -> list[dict]:
            return _warm(lambda: _pages(host, token, f"{prefix}{path}", field, query))

        found["databricks_tokens"] += [{**t, "workspace_id": workspace_id} for t in get("/2.0/token/list", "token_infos")]
        found["databricks_cluster-policies"] += [
            {**p, "workspace_id": workspace_id} for p in get("/2.0/policies/clusters/list", "policies") if not p.get("is_default")
        ]
        metastore_id = ws.get("_metastore")
        if metastore_id is None or metastore_id in seen_metastores:
            continue
        seen_metastores.add(metastore_id)
        unity = "/2.1/unity-catalog"
        catalogs = [c for c in get(f"{unity}/catalogs", "catalogs") if c.get("catalog_type") not in _SYSTEM_CATALOG_TYPES]
        found["databricks_catalogs"] += catalogs
        for catalog in catalogs:
            found["databricks_schemas"] += [
                s for s in get(f"{unity}/schemas", "schemas", {"catalog_name": catalog["name"]}) if s.get("name") != "information_schema"
            ]
        found["databricks_external-locations"] += get(f"{unity}/external-locations", "external_locations")
        found["databricks_storage-credentials"] += get(f"{unity}/storage-credentials", "storage_credentials")
    # A metastore no running workspace reaches (adopted, then its workspace torn down) has no API to list its
    # objects through: the sandbox's control endpoint shows them, so a catalog left in it is a leak the tests see.
    try:
        by_metastore = _get(host, token, "/_sandbox/databricks/metastore-objects", {"account_id": account_id})
    except _HttpError as e:
        if e.status != 404:
            raise
        by_metastore = {}  # the emulator alone, without the daemon's control endpoints (an in-process test)
    for metastore_id, kinds in by_metastore.items():
        if metastore_id not in seen_metastores:
            for kind, objects in kinds.items():
                found[kind] += objects
    return found


def list_account(host: str, token: str, account_id: str) -> dict[str, list[dict]]:
    """Every account object by kind, then what every running workspace holds (an orphaned token, policy or
    catalog is a leak too), each workspace object with its workspace_id."""
    base = f"/api/2.0/accounts/{account_id}"
    found: dict[str, list[dict]] = {f"databricks_{kind}": _get(host, token, f"{base}/{kind}") for kind in ACCOUNT_KINDS}
    found["databricks_metastores"] = _get(host, token, f"{base}/metastores").get("metastores", [])
    workspaces = []
    assignments = []
    for ws in found["databricks_workspaces"]:
        listed = _optional(lambda ws=ws: _get(host, token, f"{base}/workspaces/{ws['workspace_id']}/metastore"))
        assignment = (listed or {}).get("metastore_assignment")
        if assignment:
            assignments.append(assignment)
        workspaces.append({**ws, "_metastore": (assignment or {}).get("metastore_id")})
    found["databricks_metastore-assignments"] = assignments
    found.update(_account_identities(host, token, account_id, base, workspaces))
    found.update(_account_network(host, token, base, workspaces))
    found.update(_workspace_objects(host, token, account_id, workspaces))
    return found
