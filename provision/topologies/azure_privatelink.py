"""azure-privatelink: an Azure Databricks workspace with VNet injection, secure cluster connectivity and back-end
Private Link (a private endpoint in its own subnet, private DNS managed by Azure), in one run."""

from __future__ import annotations

from typing import Any

from provision.clouds.azure import preflight
from provision.clouds.azure.context import group_id, parse_id
from provision.clouds.azure.spec import AZURE
from provision.clouds.azure.steps.network import (
    ExistingResourceGroup,
    ExistingSubnet,
    ExistingVirtualNetwork,
    NetworkSecurityGroup,
    NsgAssociation,
    ResourceGroup,
    Subnet,
    VirtualNetwork,
)
from provision.clouds.azure.steps.privatelink import (
    BROWSER_AUTHENTICATION,
    PRIVATE_DNS_ZONE,
    UI_API,
    PrivateDnsZone,
    PrivateDnsZoneGroup,
    PrivateEndpoint,
    VirtualNetworkLink,
)
from provision.clouds.azure.steps.workspace import Workspace
from provision.orchestrator.step import Step
from provision.spec import Spec
from provision.topologies.registry import Topology


def _outbound(name: str, priority: int, destination: str) -> dict[str, Any]:
    return {"name": name, "properties": {
        "description": f"Clusters to {destination} over HTTPS (back-end Private Link without Databricks-managed rules)",
        "protocol": "Tcp", "sourceAddressPrefix": "VirtualNetwork", "sourcePortRange": "*",
        "destinationAddressPrefix": destination, "destinationPortRange": "443",
        "access": "Allow", "priority": priority, "direction": "Outbound",
    }}


# With requiredNsgRules = NoAzureDatabricksRules, Databricks adds no rules of its own: the control plane is
# reached through the private endpoint; sign-in (Azure AD) and the web front end (Front Door) stay on 443.
# Azure's default rules already allow traffic inside the VNet and deny inbound traffic from the internet.
# Priorities 200 and up leave 100-199 to the rules Azure Databricks adds to the NSG itself.
BACKEND_RULES = (
    _outbound("AllowAzureActiveDirectoryOutbound", 200, "AzureActiveDirectory"),
    _outbound("AllowAzureFrontDoorOutbound", 201, "AzureFrontDoor.Frontend"),
)


def azure_privatelink(spec: Spec) -> list[Step]:
    a = spec.azure
    net, ws, location, group, d = a.network, a.workspace, spec.region, a.resource_group, spec.name
    steps: list[Step] = [(ExistingResourceGroup if a.resource_group_exists else ResourceGroup)("rg", name=group, location=location)]
    workspace_needs: tuple[str, ...] = ("rg",)
    if net.existing:
        assert net.existing_vnet_id and net.host_subnet and net.container_subnet and net.endpoint_subnet
        parts = parse_id(net.existing_vnet_id)
        vnet_group, vnet_name = parts["resourcegroups"], parts["virtualnetworks"]
        steps += [
            ExistingVirtualNetwork("vnet", group=vnet_group, name=vnet_name),
            *(ExistingSubnet(f"subnet.{role}", group=vnet_group, vnet="vnet", vnet_name=vnet_name, name=name)
              for role, name in (("host", net.host_subnet), ("container", net.container_subnet), ("endpoints", net.endpoint_subnet))),
        ]
    else:
        vnet_name = f"{d}-vnet"
        steps += [
            NetworkSecurityGroup("nsg", group=group, name=f"{d}-nsg", location=location, rules=BACKEND_RULES, needs=("rg",)),
            VirtualNetwork("vnet", group=group, name=vnet_name, location=location, cidr=str(net.vnet_cidr), needs=("rg",)),
        ]
        # ARM takes one write at a time on a VNet's subnets (a second gets AnotherOperationInProgress): the subnet
        # PUTs and the NSG associations run as one chain, and teardown unwinds it in reverse.
        previous: tuple[str, ...] = ()
        for role, cidr, delegated in (
            ("host", net.host_subnet_cidr, True), ("container", net.container_subnet_cidr, True), ("endpoints", net.endpoint_subnet_cidr, False),
        ):
            steps.append(Subnet(f"subnet.{role}", group=group, vnet="vnet", vnet_name=vnet_name, name=f"{d}-{role}", cidr=str(cidr),
                                delegated=delegated, needs=previous))
            previous = (f"subnet.{role}",)
            if delegated:
                steps.append(NsgAssociation(f"nsg.{role}", group=group, vnet_name=vnet_name, subnet=f"subnet.{role}",
                                            subnet_name=f"{d}-{role}", nsg="nsg"))
                previous = (f"nsg.{role}",)
        workspace_needs += ("nsg.host", "nsg.container")
    steps += [
        Workspace(
            "workspace", group=group, name=ws.name, location=location, sku=ws.sku,
            managed_group_id=group_id(a.subscription_id, ws.managed_resource_group),
            vnet="vnet", host_subnet="subnet.host", container_subnet="subnet.container", needs=workspace_needs,
        ),
        PrivateDnsZone("dns.zone", group=group, needs=("rg",)),
        VirtualNetworkLink("dns.link", group=group, name=f"{d}-link", zone="dns.zone", zone_name=PRIVATE_DNS_ZONE, vnet="vnet"),
        PrivateEndpoint("pe.ui_api", group=group, name=f"{d}-pe-ui-api", location=location, subnet="subnet.endpoints",
                        workspace="workspace", group_id=UI_API),
        PrivateDnsZoneGroup("pe.ui_api.dns", group=group, endpoint="pe.ui_api", endpoint_name=f"{d}-pe-ui-api", zone="dns.zone", needs=("dns.link",)),
    ]
    if a.browser_authentication:
        # After the UI/API endpoint: ARM takes one write at a time on the workspace.
        steps += [
            PrivateEndpoint("pe.browser_auth", group=group, name=f"{d}-pe-browser-auth", location=location, subnet="subnet.endpoints",
                            workspace="workspace", group_id=BROWSER_AUTHENTICATION, needs=("pe.ui_api",)),
            PrivateDnsZoneGroup("pe.browser_auth.dns", group=group, endpoint="pe.browser_auth", endpoint_name=f"{d}-pe-browser-auth",
                                zone="dns.zone", needs=("dns.link",)),
        ]
    return steps


def azure_lines(d: dict[str, Any]) -> list[str]:
    a = d["azure"]
    net, ws = a["network"], a["workspace"]
    lines = [f"subscription {a['subscription_id']}; resource group {a['resource_group']}" + (" (existing)" if a["resource_group_exists"] else "")]
    if net["existing_vnet_id"]:
        lines.append(f"existing vnet {net['existing_vnet_id']}; subnets {net['host_subnet']}, {net['container_subnet']}, {net['endpoint_subnet']}")
    else:
        lines.append(f"vnet {net['vnet_cidr']}; host subnet {net['host_subnet_cidr']}; container subnet {net['container_subnet_cidr']}; endpoint subnet {net['endpoint_subnet_cidr']}")
    endpoints = "databricks_ui_api" + (", browser_authentication" if a["browser_authentication"] else "")
    lines.append(f"workspace {ws['name']} ({ws['sku']}); managed resource group {ws['managed_resource_group']}; private endpoints {endpoints}")
    return lines


TOPOLOGY = Topology(
    name="azure-privatelink", cloud="azure",
    summary="Azure Databricks with VNet injection, no public IPs and back-end Private Link (endpoint and private DNS), in one run",
    sections=(AZURE,), build=azure_privatelink,
    immutable=(
        "topology", "azure.subscription_id", "azure.location", "azure.resource_group", "azure.resource_group_exists",
        "azure.browser_authentication", "azure.network", "azure.workspace",
    ),
    workspaces=lambda spec: [(spec.azure.workspace.name, "workspace")],
    example="azure-privatelink.toml", describe=azure_lines, preflight=preflight.check, uses=(),
)
