"""Transit gateway, its VPC attachments, route tables and routes: the hub-and-spoke backbone.

Default route table association and propagation are off: routing is explicit, one table for the spokes
(default route to the hub) and one for the hub (a return route per spoke CIDR), so adding a spoke adds
its own attachment and routes and changes nothing else.
"""

from __future__ import annotations

from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code
from provision.orchestrator.step import Context, Outputs, Ref, Step, single

LIVE = ["pending", "available", "modifying"]


class TransitGateway(Step):
    typical_seconds = 120.0  # pending -> available
    kind = "ec2.transit_gateway"
    produces = ("tgw_id",)

    def _outputs(self, tgw: dict[str, Any]) -> Outputs:
        return {"tgw_id": tgw["TransitGatewayId"]}

    def find(self, ctx: Context) -> Outputs | None:
        found = aws.find_owned(ctx, self.id, "describe_transit_gateways", "TransitGateways", [{"Name": "state", "Values": LIVE}])
        tgw = single(found, "transit gateway", self.id)
        return self._outputs(tgw) if tgw else None

    def create(self, ctx: Context) -> Outputs:
        tgw = aws.ec2(ctx).create_transit_gateway(
            Description=f"{ctx.deployment} hub-and-spoke",
            Options={
                "DefaultRouteTableAssociation": "disable", "DefaultRouteTablePropagation": "disable",
                "AutoAcceptSharedAttachments": "disable", "DnsSupport": "enable", "VpnEcmpSupport": "enable",
            },
            TagSpecifications=aws.tag_spec(ctx, "transit-gateway", self.id),
        )["TransitGateway"]
        return self._outputs(tgw)

    def _read(self, ctx: Context, tgw_id: str) -> dict[str, Any] | None:
        found = aws.ec2(ctx).describe_transit_gateways(TransitGatewayIds=[tgw_id])["TransitGateways"]
        return found[0] if found else None

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        ctx.wait(lambda: self._read(ctx, out["tgw_id"]) or {"State": "missing"}, status_of=lambda t: t["State"],
                 target={"available"}, failure={"deleting", "deleted", "missing"}, what=f"transit gateway {out['tgw_id']}")
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.ec2(ctx).delete_transit_gateway(TransitGatewayId=out["tgw_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self._read(ctx, out["tgw_id"]), status_of=lambda t: t["State"], gone_states={"deleted"},
                      what=f"transit gateway {out['tgw_id']}")


class TransitGatewayRouteTable(Step):
    kind = "ec2.transit_gateway_route_table"
    produces = ("tgw_route_table_id",)

    def __init__(self, step_id: str, *, tgw: str):
        super().__init__(step_id, needs=(tgw,))
        self.tgw_id = Ref(tgw, "tgw_id")

    def find(self, ctx: Context) -> Outputs | None:
        found = aws.find_owned(ctx, self.id, "describe_transit_gateway_route_tables", "TransitGatewayRouteTables",
                               [{"Name": "state", "Values": ["pending", "available"]}])
        table = single(found, "TGW route table", self.id)
        return {"tgw_route_table_id": table["TransitGatewayRouteTableId"]} if table else None

    def create(self, ctx: Context) -> Outputs:
        table = aws.ec2(ctx).create_transit_gateway_route_table(
            TransitGatewayId=ctx.out(self.tgw_id), TagSpecifications=aws.tag_spec(ctx, "transit-gateway-route-table", self.id),
        )["TransitGatewayRouteTable"]
        return {"tgw_route_table_id": table["TransitGatewayRouteTableId"]}

    def _read(self, ctx: Context, table_id: str) -> dict[str, Any] | None:
        found = aws.ec2(ctx).describe_transit_gateway_route_tables(TransitGatewayRouteTableIds=[table_id])["TransitGatewayRouteTables"]
        return found[0] if found else None

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        table_id = out["tgw_route_table_id"]
        ctx.wait(lambda: self._read(ctx, table_id) or {"State": "missing"}, status_of=lambda t: t["State"],
                 target={"available"}, failure={"deleting", "deleted", "missing"}, what=f"TGW route table {table_id}")
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.ec2(ctx).delete_transit_gateway_route_table(TransitGatewayRouteTableId=out["tgw_route_table_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self._read(ctx, out["tgw_route_table_id"]), status_of=lambda t: t["State"],
                      gone_states={"deleted"}, what=f"TGW route table {out['tgw_route_table_id']}")


class TransitGatewayAttachment(Step):
    """A VPC attachment in the given subnets, associated with one TGW route table."""
    typical_seconds = 60.0  # pending -> available

    kind = "ec2.transit_gateway_vpc_attachment"
    produces = ("attachment_id",)

    def __init__(self, step_id: str, *, tgw: str, vpc: str, subnets: list[str], route_table: str):
        super().__init__(step_id, needs=(tgw, vpc, *subnets, route_table))
        self.tgw_id, self.vpc_id = Ref(tgw, "tgw_id"), Ref(vpc, "vpc_id")
        self.subnet_ids, self.route_table_id = [Ref(s, "subnet_id") for s in subnets], Ref(route_table, "tgw_route_table_id")

    def find(self, ctx: Context) -> Outputs | None:
        found = aws.find_owned(ctx, self.id, "describe_transit_gateway_vpc_attachments", "TransitGatewayVpcAttachments",
                               [{"Name": "state", "Values": LIVE + ["pendingAcceptance"]}])
        attachment = single(found, "TGW attachment", self.id)
        return {"attachment_id": attachment["TransitGatewayAttachmentId"]} if attachment else None

    def create(self, ctx: Context) -> Outputs:
        attachment = aws.ec2(ctx).create_transit_gateway_vpc_attachment(
            TransitGatewayId=ctx.out(self.tgw_id), VpcId=ctx.out(self.vpc_id),
            SubnetIds=[ctx.out(s) for s in self.subnet_ids],
            TagSpecifications=aws.tag_spec(ctx, "transit-gateway-attachment", self.id),
        )["TransitGatewayVpcAttachment"]
        return {"attachment_id": attachment["TransitGatewayAttachmentId"]}

    def _read(self, ctx: Context, attachment_id: str) -> dict[str, Any] | None:
        found = aws.ec2(ctx).describe_transit_gateway_vpc_attachments(TransitGatewayAttachmentIds=[attachment_id])["TransitGatewayVpcAttachments"]
        return found[0] if found else None

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        attachment_id = out["attachment_id"]
        ctx.wait(lambda: self._read(ctx, attachment_id) or {"State": "missing"}, status_of=lambda a: a["State"],
                 target={"available"}, failure={"failed", "rejected", "deleting", "deleted", "missing"}, what=f"TGW attachment {attachment_id}")
        table_id = ctx.out(self.route_table_id)
        associations = ctx.call(
            lambda: aws.ec2(ctx).get_transit_gateway_route_table_associations(TransitGatewayRouteTableId=table_id)["Associations"],
            f"{self.id} associations",
        )
        if not any(a.get("TransitGatewayAttachmentId") == attachment_id for a in associations):
            ctx.call(
                lambda: aws.ec2(ctx).associate_transit_gateway_route_table(TransitGatewayRouteTableId=table_id, TransitGatewayAttachmentId=attachment_id),
                f"{self.id} associate",
            )
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        # Deleting the attachment removes its association; the route table goes only after, by step order.
        aws.ec2(ctx).delete_transit_gateway_vpc_attachment(TransitGatewayAttachmentId=out["attachment_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self._read(ctx, out["attachment_id"]), status_of=lambda a: a["State"],
                      gone_states={"deleted"}, what=f"TGW attachment {out['attachment_id']}")


class TransitGatewayRoute(Step):
    """A static route in a TGW route table to an attachment."""

    kind = "ec2.transit_gateway_route"
    produces = ("tgw_route_table_id", "destination", "attachment_id")

    def __init__(self, step_id: str, *, route_table: str, destination: str, attachment: str | None):
        """attachment None: a blackhole route (traffic to `destination` is dropped)."""
        super().__init__(step_id, needs=(route_table, *((attachment,) if attachment else ())))
        self.route_table_id, self.destination = Ref(route_table, "tgw_route_table_id"), destination
        self.attachment_id = Ref(attachment, "attachment_id") if attachment else None

    def _table(self, ctx: Context) -> str | None:
        # In teardown the table's step may be gone already (and its routes with it).
        return ctx.out_if_known(self.route_table_id)

    def find(self, ctx: Context) -> Outputs | None:
        table_id = self._table(ctx)
        if table_id is None:
            return None
        routes = aws.ec2(ctx).search_transit_gateway_routes(
            TransitGatewayRouteTableId=table_id,
            Filters=[{"Name": "route-search.exact-match", "Values": [self.destination]}, {"Name": "state", "Values": ["active", "blackhole"]}],
        )["Routes"]
        if not routes:
            return None
        attachments = [a.get("TransitGatewayAttachmentId") for a in routes[0].get("TransitGatewayAttachments", [])]
        return {"tgw_route_table_id": table_id, "destination": self.destination, "attachment_id": attachments[0] if attachments else None}

    def create(self, ctx: Context) -> Outputs:
        table_id = ctx.out(self.route_table_id)
        if self.attachment_id is None:
            aws.ec2(ctx).create_transit_gateway_route(DestinationCidrBlock=self.destination, TransitGatewayRouteTableId=table_id, Blackhole=True)
            return {"tgw_route_table_id": table_id, "destination": self.destination, "attachment_id": None}
        attachment_id = ctx.out(self.attachment_id)
        route = {"DestinationCidrBlock": self.destination, "TransitGatewayRouteTableId": table_id, "TransitGatewayAttachmentId": attachment_id}
        try:
            aws.ec2(ctx).create_transit_gateway_route(**route)
        except Exception as exc:
            if error_code(exc) != "RouteAlreadyExists":  # our own earlier call whose response was lost
                raise
            aws.ec2(ctx).replace_transit_gateway_route(**route)
        return {"tgw_route_table_id": table_id, "destination": self.destination, "attachment_id": attachment_id}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        if self.attachment_id is None:
            return out
        attachment_id = ctx.out(self.attachment_id)
        if out.get("attachment_id") != attachment_id:
            ctx.call(lambda: aws.ec2(ctx).replace_transit_gateway_route(
                DestinationCidrBlock=self.destination, TransitGatewayRouteTableId=out["tgw_route_table_id"],
                TransitGatewayAttachmentId=attachment_id,
            ), f"{self.id} replace")
        return {**out, "attachment_id": attachment_id}

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.ec2(ctx).delete_transit_gateway_route(TransitGatewayRouteTableId=out["tgw_route_table_id"], DestinationCidrBlock=out["destination"])

    def resource_id(self, out: Outputs) -> str | None:
        return f"{out.get('tgw_route_table_id')}:{out.get('destination')}" if out else None
