"""Back-end Private Link: a private endpoint to the workspace in the endpoint subnet, the private DNS zone
`privatelink.azuredatabricks.net` linked to the VNet, and a DNS zone group on the endpoint, so Azure itself keeps
the endpoint's A records in the zone (no record is written by hand, none is left behind)."""

from __future__ import annotations

from typing import Any

from provision.clouds.azure import context as az
from provision.clouds.azure.steps.arm import ArmResource
from provision.orchestrator.step import Context, Outputs, Ref

PRIVATE_DNS_ZONE = "privatelink.azuredatabricks.net"
# The workspace's private link sub-resources: the front-end/back-end API, and browser (SSO) authentication.
UI_API = "databricks_ui_api"
BROWSER_AUTHENTICATION = "browser_authentication"
GROUP_IDS = (UI_API, BROWSER_AUTHENTICATION)


class PrivateDnsZone(ArmResource):
    kind = "azure.private_dns_zone"
    what = "private DNS zone"
    produces = ("zone_id",)
    typical_seconds = 30.0

    def __init__(self, step_id: str, *, group: str, name: str = PRIVATE_DNS_ZONE, needs: tuple[str, ...] = ()):
        super().__init__(step_id, group=group, name=name, needs=needs)

    def get(self, ctx: Context) -> Any:
        return az.arm(ctx).dns.private_zones.get(self.group, self.name)

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        return az.arm(ctx).dns.private_zones.begin_create_or_update(self.group, self.name, body, polling=False)

    def remove(self, ctx: Context) -> Any:
        return az.arm(ctx).dns.private_zones.begin_delete(self.group, self.name, polling=False)

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"location": "global", "tags": az.tags(ctx, self.id)}

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        return {"zone_id": resource["id"]}


class VirtualNetworkLink(ArmResource):
    """The zone linked to the workspace VNet, so its clusters resolve the workspace to the endpoint's IP.
    Auto-registration stays off: the zone holds only the records Azure manages through the zone group."""

    kind = "azure.private_dns_link"
    what = "private DNS zone link"
    produces = ("link_id",)

    def __init__(self, step_id: str, *, group: str, name: str, zone: str, zone_name: str, vnet: str):
        super().__init__(step_id, group=group, name=name, needs=(zone, vnet))
        self.zone_name = zone_name
        self.vnet_id = Ref(vnet, "vnet_id")

    def get(self, ctx: Context) -> Any:
        return az.arm(ctx).dns.virtual_network_links.get(self.group, self.zone_name, self.name)

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        return az.arm(ctx).dns.virtual_network_links.begin_create_or_update(self.group, self.zone_name, self.name, body, polling=False)

    def remove(self, ctx: Context) -> Any:
        return az.arm(ctx).dns.virtual_network_links.begin_delete(self.group, self.zone_name, self.name, polling=False)

    def body(self, ctx: Context) -> dict[str, Any]:
        return {
            "location": "global", "tags": az.tags(ctx, self.id),
            "properties": {"virtualNetwork": {"id": ctx.out(self.vnet_id)}, "registrationEnabled": False},
        }

    def status_of(self, resource: dict[str, Any]) -> str:
        state = az.provisioning_state(resource)
        link = az.props(resource).get("virtualNetworkLinkState")
        return state if state != az.READY or link in (None, "Completed") else f"link {link}"

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        return {"link_id": resource["id"]}


class PrivateEndpoint(ArmResource):
    """A private endpoint to one of the workspace's private link sub-resources. In the workspace's own
    subscription the connection is approved at once; a connection left Pending or Rejected fails the step."""

    kind = "azure.private_endpoint"
    what = "private endpoint"
    produces = ("endpoint_id", "private_ip", "connection_status")
    typical_seconds = 60.0

    def __init__(self, step_id: str, *, group: str, name: str, location: str, subnet: str, workspace: str, group_id: str,
                 needs: tuple[str, ...] = ()):
        assert group_id in GROUP_IDS, group_id
        super().__init__(step_id, group=group, name=name, needs=(subnet, workspace, *needs))
        self.location, self.group_id = location, group_id
        self.subnet_id, self.workspace_id = Ref(subnet, "subnet_id"), Ref(workspace, "workspace_resource_id")

    def get(self, ctx: Context) -> Any:
        return az.arm(ctx).network.private_endpoints.get(self.group, self.name)

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        return az.arm(ctx).network.private_endpoints.begin_create_or_update(self.group, self.name, body, polling=False)

    def remove(self, ctx: Context) -> Any:
        return az.arm(ctx).network.private_endpoints.begin_delete(self.group, self.name, polling=False)

    def body(self, ctx: Context) -> dict[str, Any]:
        return {
            "location": self.location, "tags": az.tags(ctx, self.id),
            "properties": {
                "subnet": {"id": ctx.out(self.subnet_id)},
                "privateLinkServiceConnections": [{
                    "name": self.name,
                    "properties": {"privateLinkServiceId": ctx.out(self.workspace_id), "groupIds": [self.group_id]},
                }],
            },
        }

    @staticmethod
    def _connection(resource: dict[str, Any]) -> dict[str, Any]:
        p = az.props(resource)
        connections = p.get("privateLinkServiceConnections") or p.get("manualPrivateLinkServiceConnections") or [{}]
        return (connections[0].get("properties") or {}).get("privateLinkServiceConnectionState") or {}

    def status_of(self, resource: dict[str, Any]) -> str:
        state = az.provisioning_state(resource)
        if state != az.READY:
            return state
        status = self._connection(resource).get("status") or "Pending"
        return az.READY if status == "Approved" else f"connection {status}"

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found.get("connection_status") == "Disconnected"

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        current = ctx.call(lambda: self.read(ctx), f"{self.id} read")
        if current is not None and self._connection(current).get("status") == "Disconnected":
            # Its workspace was deleted (and perhaps made anew): the connection never comes back, the endpoint must
            # be made again. Its DNS zone group goes with it, and its step makes that again too.
            ctx.log.warning("private endpoint connection is Disconnected; making the endpoint again", resource_id=current.get("id"))
            ctx.call(lambda: self.remove(ctx), f"{self.id} delete")
            self.wait_deleted(ctx, out)
            ctx.call(lambda: self.put(ctx, self.body(ctx)), f"{self.id} put again")
        resource = ctx.wait(
            lambda: az.as_json(self.get(ctx)), status_of=self.status_of, target={az.READY},
            failure={*az.FAILED, "connection Rejected", "connection Disconnected"},
            what=f"{self.what} {self.name}",
            detail_of=lambda r: str(self._connection(r).get("description") or az.provisioning_state(r)),
        )
        return self.outputs(resource)

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        p = az.props(resource)
        ips = [ip for c in p.get("customDnsConfigs") or [] for ip in c.get("ipAddresses") or []]
        ips += [
            (c.get("properties") or {}).get("privateIPAddress")
            for c in p.get("ipConfigurations") or [] if (c.get("properties") or {}).get("privateIPAddress")
        ]
        return {"endpoint_id": resource["id"], "private_ip": ips[0] if ips else None, "connection_status": self._connection(resource).get("status")}


class PrivateDnsZoneGroup(ArmResource):
    """The endpoint's DNS zone group: Azure writes (and removes) the endpoint's A records in the zone."""

    kind = "azure.private_dns_zone_group"
    what = "private DNS zone group"
    tagged = False
    produces = ("zone_group_id",)

    def __init__(self, step_id: str, *, group: str, endpoint: str, endpoint_name: str, zone: str, name: str = "default",
                 needs: tuple[str, ...] = ()):
        super().__init__(step_id, group=group, name=name, needs=(endpoint, zone, *needs))
        self.endpoint_name = endpoint_name
        self.zone_id = Ref(zone, "zone_id")

    def get(self, ctx: Context) -> Any:
        return az.arm(ctx).network.private_dns_zone_groups.get(self.group, self.endpoint_name, self.name)

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        return az.arm(ctx).network.private_dns_zone_groups.begin_create_or_update(self.group, self.endpoint_name, self.name, body, polling=False)

    def remove(self, ctx: Context) -> Any:
        return az.arm(ctx).network.private_dns_zone_groups.begin_delete(self.group, self.endpoint_name, self.name, polling=False)

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"properties": {"privateDnsZoneConfigs": [
            {"name": PRIVATE_DNS_ZONE.replace(".", "-"), "properties": {"privateDnsZoneId": ctx.out(self.zone_id)}},
        ]}}

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        return {"zone_group_id": resource["id"]}
