"""What an Azure step needs from its context: the run's ARM clients, ownership tags in ARM's shape (a dict),
resource ids, and reading ARM's answers as the REST JSON they are.

The engine's Context is cloud-neutral; these helpers read it the Azure way, so a step still reads like the ARM
call it wraps: `arm(ctx).network.virtual_networks.begin_create_or_update(group, name, body, polling=False)`.
"""

from __future__ import annotations

from typing import Any

from provision.errors import OwnershipConflict
from provision.orchestrator.step import TAG_DEPLOYMENT, TAG_STEP, Context

READY = "Succeeded"
FAILED = frozenset({"Failed", "Canceled"})


def arm(ctx: Context) -> Any:
    """The run's AzureClients (real ARM or the sandbox's emulator), retries off, calls counted."""
    return ctx.clients["azure"]


def tags(ctx: Context, step_id: str) -> dict[str, str]:
    """Every tagged Azure resource carries the deployment and the step id, plus the spec's tags."""
    return {**ctx.spec.tags, TAG_DEPLOYMENT: ctx.spec.name, TAG_STEP: step_id}


def as_json(resource: Any) -> dict[str, Any]:
    """An SDK model as ARM's REST JSON (camelCase, with `properties`)."""
    if resource is None:
        return {}
    return resource.as_dict() if hasattr(resource, "as_dict") else dict(resource)


def props(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("properties") or {}


def provisioning_state(resource: dict[str, Any]) -> str:
    return str(props(resource).get("provisioningState") or "Succeeded")


def check_owner(ctx: Context, step_id: str, resource: dict[str, Any], what: str) -> None:
    """A resource found at our deterministic name is ours only if it carries our deployment tag, or if we
    attempted its create and it lost its tags (never the case with ARM, where tags come in the same PUT)."""
    owner = (resource.get("tags") or {}).get(TAG_DEPLOYMENT)
    if owner == ctx.deployment or (owner is None and step_id in ctx.claimed):
        return
    whose = f"deployment {owner!r}" if owner else "no provision deployment"
    raise OwnershipConflict(
        f"{what} {resource.get('id') or resource.get('name')} already exists and belongs to {whose}; choose other names "
        "(azure.resource_group, azure.workspace.name) or remove it"
    )


def group_id(subscription_id: str, group: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{group}"


def resource_id(subscription_id: str, group: str, type_path: str, *names: str) -> str:
    """`type_path` like "Microsoft.Network/virtualNetworks/subnets"; `names` one per type segment."""
    provider, *types = type_path.split("/")
    parts = "/".join(f"{t}/{n}" for t, n in zip(types, names))
    return f"{group_id(subscription_id, group)}/providers/{provider}/{parts}"


def parse_id(resource: str) -> dict[str, str]:
    """The resource group, provider and name parts of an ARM id, keyed by lowercased segment name."""
    parts = [p for p in resource.split("/") if p]
    return {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}
