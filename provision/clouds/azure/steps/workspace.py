"""The Azure Databricks workspace, an ARM resource (`Microsoft.Databricks/workspaces`): VNet injection into the
host ("public") and container ("private") subnets, secure cluster connectivity (no public IP), and no NSG rules
managed by Databricks, since the back-end private endpoint carries the control-plane traffic.

Azure Databricks creates the managed resource group itself: we name it, never pre-create it, and it goes with
the workspace. ARM refuses a second write while the workspace is updating, so every write that touches it (the
workspace PUT, each private endpoint to it) runs one after another in the graph.
"""

from __future__ import annotations

from typing import Any

from provision.clouds.azure import context as az
from provision.clouds.azure.steps.arm import ArmResource
from provision.orchestrator.step import Context, Outputs, Ref

# Required on create since API 2026-01-01, and immutable: classic compute in the customer's VNet.
COMPUTE_MODE = "Hybrid"
REQUIRED_NSG_RULES = "NoAzureDatabricksRules"


class Workspace(ArmResource):
    kind = "azure.databricks_workspace"
    what = "Azure Databricks workspace"
    typical_seconds = 300.0
    produces = (
        "workspace_resource_id", "workspace_id", "workspace_url", "workspace_status", "workspace_name", "managed_resource_group_id",
    )

    def __init__(
        self, step_id: str, *, group: str, name: str, location: str, sku: str, managed_group_id: str, vnet: str,
        host_subnet: str, container_subnet: str, needs: tuple[str, ...] = (),
    ):
        super().__init__(step_id, group=group, name=name, needs=(vnet, host_subnet, container_subnet, *needs))
        self.location, self.sku, self.managed_group_id = location, sku, managed_group_id
        self.vnet_id = Ref(vnet, "vnet_id")
        self.host_subnet, self.container_subnet = Ref(host_subnet, "name"), Ref(container_subnet, "name")

    def get(self, ctx: Context) -> Any:
        return az.arm(ctx).databricks.workspaces.get(self.group, self.name)

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        return az.arm(ctx).databricks.workspaces.begin_create_or_update(self.group, self.name, body, polling=False)

    def remove(self, ctx: Context) -> Any:
        return az.arm(ctx).databricks.workspaces.begin_delete(self.group, self.name, polling=False)

    def body(self, ctx: Context) -> dict[str, Any]:
        return {
            "location": self.location,
            "sku": {"name": self.sku},
            "tags": az.tags(ctx, self.id),
            "properties": {
                "managedResourceGroupId": self.managed_group_id,
                "computeMode": COMPUTE_MODE,
                "publicNetworkAccess": "Enabled",
                "requiredNsgRules": REQUIRED_NSG_RULES,
                "parameters": {
                    "customVirtualNetworkId": {"value": ctx.out(self.vnet_id)},
                    "customPublicSubnetName": {"value": ctx.out(self.host_subnet)},
                    "customPrivateSubnetName": {"value": ctx.out(self.container_subnet)},
                    "enableNoPublicIp": {"value": True},
                },
            },
        }

    def timeout(self, ctx: Context) -> float | None:
        return ctx.spec.timeouts.workspace_seconds

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        p = az.props(resource)
        url = p.get("workspaceUrl")
        return {
            "workspace_resource_id": resource["id"],
            "workspace_id": p.get("workspaceId"),
            "workspace_url": f"https://{url}" if url else None,
            "workspace_status": az.provisioning_state(resource),
            "workspace_name": resource.get("name"),
            "managed_resource_group_id": p.get("managedResourceGroupId"),
        }

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        super().wait_deleted(ctx, out)
        # The managed resource group goes with the workspace, a little after it; teardown is done when both are.
        managed = az.parse_id(out.get("managed_resource_group_id") or self.managed_group_id).get("resourcegroups")
        if managed:
            ctx.wait_gone(lambda: az.as_json(az.arm(ctx).resource.resource_groups.get(managed)), what=f"managed resource group {managed}",
                          status_of=az.provisioning_state, timeout_seconds=self.timeout(ctx))
