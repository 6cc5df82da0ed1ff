"""The resource group, the workspace VNet, its subnets, the NSG and the NSG's association with the subnets.

Names are deterministic (the topology gives them), so `find` is a GET by name. Subnets are sub-resources of
the VNet: created one PUT each (never inlined in the VNet's PUT, which would replace the subnet list).
"""

from __future__ import annotations

from typing import Any

from provision.clouds.azure import context as az
from provision.clouds.azure.steps.arm import ArmResource
from provision.orchestrator.step import Context, Outputs, Ref

DATABRICKS_DELEGATION = "Microsoft.Databricks/workspaces"
# The subnet fields a PUT may carry; a GET returns read-only ones too (ipConfigurations, provisioningState).
_SUBNET_WRITABLE = (
    "addressPrefix", "addressPrefixes", "delegations", "networkSecurityGroup", "routeTable", "natGateway", "serviceEndpoints",
    "serviceEndpointPolicies", "privateEndpointNetworkPolicies", "privateLinkServiceNetworkPolicies", "defaultOutboundAccess",
)


class ResourceGroup(ArmResource):
    kind = "azure.resource_group"
    what = "resource group"
    produces = ("group_id", "location")

    def __init__(self, step_id: str, *, name: str, location: str):
        super().__init__(step_id, group=name, name=name)
        self.location = location

    def get(self, ctx: Context) -> Any:
        return az.arm(ctx).resource.resource_groups.get(self.name)

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        return az.arm(ctx).resource.resource_groups.create_or_update(self.name, body)

    def remove(self, ctx: Context) -> Any:
        # Deleting a group deletes what is left in it: only ever a group this deployment created (tagged).
        return az.arm(ctx).resource.resource_groups.begin_delete(self.name, polling=False)

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"location": self.location, "tags": az.tags(ctx, self.id)}

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        return {"group_id": resource["id"], "location": resource.get("location")}


class ExistingResourceGroup(ResourceGroup):
    """The user's resource group: read, never modified, never deleted (preflight checked its location)."""

    kind = "azure.resource_group.existing"
    external = True
    tagged = False

    def create(self, ctx: Context) -> Outputs:
        raise LookupError(f"resource group {self.name} does not exist")


class NetworkSecurityGroup(ArmResource):
    kind = "azure.nsg"
    what = "network security group"
    produces = ("nsg_id",)

    def __init__(self, step_id: str, *, group: str, name: str, location: str, rules: tuple[dict[str, Any], ...], needs: tuple[str, ...] = ()):
        super().__init__(step_id, group=group, name=name, needs=needs)
        self.location, self.rules = location, rules

    def get(self, ctx: Context) -> Any:
        return az.arm(ctx).network.network_security_groups.get(self.group, self.name)

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        return az.arm(ctx).network.network_security_groups.begin_create_or_update(self.group, self.name, body, polling=False)

    def remove(self, ctx: Context) -> Any:
        return az.arm(ctx).network.network_security_groups.begin_delete(self.group, self.name, polling=False)

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"location": self.location, "tags": az.tags(ctx, self.id), "properties": {"securityRules": [dict(r) for r in self.rules]}}

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        return {"nsg_id": resource["id"]}


class VirtualNetwork(ArmResource):
    kind = "azure.vnet"
    what = "virtual network"
    produces = ("vnet_id", "address_prefixes")

    def __init__(self, step_id: str, *, group: str, name: str, location: str, cidr: str, needs: tuple[str, ...] = ()):
        super().__init__(step_id, group=group, name=name, needs=needs)
        self.location, self.cidr = location, cidr

    def get(self, ctx: Context) -> Any:
        return az.arm(ctx).network.virtual_networks.get(self.group, self.name)

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        return az.arm(ctx).network.virtual_networks.begin_create_or_update(self.group, self.name, body, polling=False)

    def remove(self, ctx: Context) -> Any:
        return az.arm(ctx).network.virtual_networks.begin_delete(self.group, self.name, polling=False)

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"location": self.location, "tags": az.tags(ctx, self.id), "properties": {"addressSpace": {"addressPrefixes": [self.cidr]}}}

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        return {"vnet_id": resource["id"], "address_prefixes": list((az.props(resource).get("addressSpace") or {}).get("addressPrefixes") or [])}


class ExistingVirtualNetwork(VirtualNetwork):
    """The user's VNet: read, never modified, never deleted."""

    kind = "azure.vnet.existing"
    external = True
    tagged = False

    def __init__(self, step_id: str, *, group: str, name: str):
        super().__init__(step_id, group=group, name=name, location="", cidr="")

    def create(self, ctx: Context) -> Outputs:
        raise LookupError(f"virtual network {self.name} does not exist")


class Subnet(ArmResource):
    """A subnet of the workspace VNet: delegated to Azure Databricks (host and container subnets), or the
    endpoint subnet, undelegated with private endpoint network policies off."""

    kind = "azure.subnet"
    what = "subnet"
    tagged = False
    produces = ("subnet_id", "cidr", "name")

    def __init__(self, step_id: str, *, group: str, vnet: str, vnet_name: str, name: str, cidr: str, delegated: bool,
                 needs: tuple[str, ...] = ()):
        super().__init__(step_id, group=group, name=name, needs=(vnet, *needs))
        self.vnet_name, self.cidr, self.delegated = vnet_name, cidr, delegated
        self.vnet_id = Ref(vnet, "vnet_id")

    def get(self, ctx: Context) -> Any:
        return az.arm(ctx).network.subnets.get(self.group, self.vnet_name, self.name)

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        return az.arm(ctx).network.subnets.begin_create_or_update(self.group, self.vnet_name, self.name, body, polling=False)

    def remove(self, ctx: Context) -> Any:
        return az.arm(ctx).network.subnets.begin_delete(self.group, self.vnet_name, self.name, polling=False)

    def body(self, ctx: Context) -> dict[str, Any]:
        properties: dict[str, Any] = {"addressPrefix": self.cidr}
        if self.delegated:
            properties["delegations"] = [{"name": "databricks", "properties": {"serviceName": DATABRICKS_DELEGATION}}]
        else:
            properties["privateEndpointNetworkPolicies"] = "Disabled"
        return {"properties": properties}

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        p = az.props(resource)
        return {"subnet_id": resource["id"], "cidr": p.get("addressPrefix") or (p.get("addressPrefixes") or [None])[0], "name": resource.get("name")}


class ExistingSubnet(Subnet):
    """A subnet of the user's VNet: read only (preflight checked its delegation and NSG)."""

    kind = "azure.subnet.existing"
    external = True

    def __init__(self, step_id: str, *, group: str, vnet: str, vnet_name: str, name: str):
        super().__init__(step_id, group=group, vnet=vnet, vnet_name=vnet_name, name=name, cidr="", delegated=False)

    def create(self, ctx: Context) -> Outputs:
        raise LookupError(f"subnet {self.name} does not exist")


def subnet_body(subnet: dict[str, Any], nsg_id: str | None) -> dict[str, Any]:
    """A subnet as read, with only its writable fields, and the NSG set (or removed, for None)."""
    current = az.props(subnet)
    properties = {k: current[k] for k in _SUBNET_WRITABLE if current.get(k) is not None}
    if "delegations" in properties:
        properties["delegations"] = [{"name": d.get("name"), "properties": {"serviceName": (d.get("properties") or {}).get("serviceName")}}
                                     for d in properties["delegations"]]
    properties.pop("networkSecurityGroup", None)
    if nsg_id:
        properties["networkSecurityGroup"] = {"id": nsg_id}
    return {"properties": properties}


class NsgAssociation(ArmResource):
    """The NSG set on a subnet (a PUT of the subnet as it is, plus the NSG); deleting it takes the NSG off."""

    kind = "azure.nsg_association"
    what = "NSG association of subnet"
    tagged = False
    produces = ("subnet_id", "nsg_id")

    def __init__(self, step_id: str, *, group: str, vnet_name: str, subnet: str, subnet_name: str, nsg: str, needs: tuple[str, ...] = ()):
        super().__init__(step_id, group=group, name=subnet_name, needs=(subnet, nsg, *needs))
        self.vnet_name = vnet_name
        self.subnet_id, self.nsg_id = Ref(subnet, "subnet_id"), Ref(nsg, "nsg_id")

    def get(self, ctx: Context) -> Any:
        return az.arm(ctx).network.subnets.get(self.group, self.vnet_name, self.name)

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        return az.arm(ctx).network.subnets.begin_create_or_update(self.group, self.vnet_name, self.name, body, polling=False)

    def body(self, ctx: Context) -> dict[str, Any]:
        return subnet_body(az.as_json(self.get(ctx)), ctx.out(self.nsg_id))

    def find(self, ctx: Context) -> Outputs | None:
        subnet = self.read(ctx)
        wanted = ctx.out_if_known(self.nsg_id)
        current = (az.props(subnet or {}).get("networkSecurityGroup") or {}).get("id")
        if subnet is None or current is None or (wanted is not None and current.lower() != wanted.lower()):
            return None
        return self.outputs(subnet)

    def status_of(self, resource: dict[str, Any]) -> str:
        state = az.provisioning_state(resource)
        return state if (az.props(resource).get("networkSecurityGroup") or {}).get("id") else f"{state} (no NSG yet)"

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        return {"subnet_id": resource["id"], "nsg_id": (az.props(resource).get("networkSecurityGroup") or {}).get("id")}

    def delete(self, ctx: Context, out: Outputs) -> None:
        # Read first: a retried removal whose first answer was lost finds the NSG already off.
        subnet = az.as_json(self.get(ctx))
        if (az.props(subnet).get("networkSecurityGroup") or {}).get("id"):
            self.put(ctx, subnet_body(subnet, None))

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait(
            lambda: self.read(ctx), what=f"NSG removal from subnet {self.name}",
            status_of=lambda s: "gone" if s is None or not (az.props(s).get("networkSecurityGroup")) and az.provisioning_state(s) == az.READY else "present",
            target={"gone"},
        )
