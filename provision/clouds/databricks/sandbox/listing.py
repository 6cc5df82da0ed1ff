"""What the Databricks emulator holds for an account, read back over its real HTTP API (client side, for
app/inventory.py; the server-side dump is app.inventory()). Kinds are named `databricks_<API path>`."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

ACCOUNT_KINDS = (
    "credentials", "storage-configurations", "networks", "workspaces", "vpc-endpoints", "private-access-settings", "customer-managed-keys",
)


def _get(host: str, token: str, path: str) -> Any:
    request = urllib.request.Request(f"{host}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def list_account(host: str, token: str, account_id: str) -> dict[str, list[dict]]:
    """Every account object by kind, then the tokens of every running workspace (through each
    workspace's own API: an orphaned token is a leak too), each with its workspace_id."""
    found: dict[str, list[dict]] = {
        f"databricks_{kind}": _get(host, token, f"/api/2.0/accounts/{account_id}/{kind}") for kind in ACCOUNT_KINDS
    }
    found["databricks_tokens"] = [
        {**item, "workspace_id": ws["workspace_id"]}
        for ws in found["databricks_workspaces"] if ws.get("workspace_status") == "RUNNING"
        for item in _get(host, token, f"/workspaces/{ws['deployment_name']}/api/2.0/token/list").get("token_infos", [])
    ]
    return found
