"""List what the sandbox holds, independently of any state file: the ground truth for tests and for the
crash-matrix script. Everything is read through the real AWS, Azure and Databricks APIs.

The kinds are composed from each cloud's declarations: every AWS sandbox fidelity family lists its own
(clouds/aws/sandbox/listing.py, `@lists`), the Databricks emulator's account objects and workspace tokens are
read by clouds/databricks/sandbox/listing.py, and the ARM emulator's resources (prefixed `azure_`) by
clouds/azure/sandbox/listing.py, through the azure-mgmt clients' own list operations."""

from __future__ import annotations

from collections import Counter
from typing import Any

import provision.clouds.aws.sandbox.app  # noqa: F401  (imports every family, so all their kinds are registered)
import provision.clouds.aws.sandbox.listing as aws_listing
import provision.clouds.databricks.sandbox.listing as databricks_listing

# The Azure kinds whose resources must carry our ownership tag (sub-resources have no tags; a managed resource
# group is Azure Databricks', not ours).
AZURE_OWNED = (
    "azure_resource_groups", "azure_virtual_networks", "azure_network_security_groups", "azure_private_endpoints",
    "azure_private_dns_zones", "azure_virtual_network_links", "azure_workspaces",
)


def azure_inventory(info: Any) -> dict[str, list[dict]]:
    """Every resource in the sandbox's Azure subscription, by kind, read through the SDK clients."""
    from provision.clouds.azure.clients import AzureClients
    from provision.clouds.azure.sandbox.listing import list_via_api
    from provision.orchestrator.clients import SANDBOX, CallStats, Target

    target = Target(SANDBOX, {"azure": info.azure_endpoint_url}, {"azure": info.azure_token})
    clients = AzureClients(subscription_id=info.azure_subscription_id, target=target, stats=CallStats())
    return {f"azure_{kind}": items for kind, items in list_via_api(clients).items()}


def inventory(info: Any, *, account_id: str | None = None, region: str = "us-east-1") -> dict[str, list[dict]]:
    """Every non-default resource in the sandbox, by kind (live ones: deleted NATs, endpoints, TGW
    resources and secrets scheduled for deletion are history, not inventory). Databricks account objects
    are listed for `account_id`, if given."""
    found = aws_listing.list_all(aws_listing.sandbox_clients(info.aws_endpoint_url, region))
    if account_id:
        found.update(databricks_listing.list_account(info.databricks_host, info.databricks_token, account_id))
    found.update(azure_inventory(info))
    return found


def counts(found: dict[str, list[dict]]) -> Counter:
    return Counter({kind: len(items) for kind, items in found.items() if items})


def owned_kinds() -> tuple[str, ...]:
    """The kinds whose resources must carry our ownership tag."""
    return tuple(name for name, kind in aws_listing.KINDS.items() if kind.owned) + AZURE_OWNED


def _owner(item: dict) -> str | None:
    tags = item.get("Tags")
    if isinstance(tags, list):
        return {t["Key"]: t["Value"] for t in tags}.get("provision:deployment")
    return (item.get("tags") or {}).get("provision:deployment")


def untagged(found: dict[str, list[dict]], deployment: str) -> list[str]:
    """Owned resources without our ownership tag for `deployment` (there must be none)."""
    missing = []
    for kind in owned_kinds():
        for item in found.get(kind, []):
            if kind == "azure_resource_groups" and item.get("managedBy"):
                continue
            if _owner(item) != deployment:
                missing.append(f"{kind}:{item.get('VpcId') or item.get('id') or item}")
    return missing
