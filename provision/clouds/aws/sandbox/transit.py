"""Transit gateways, hub-and-spoke (rule 14).

- CreateTransitGateway: `pending` for `tgw_pending_seconds`, then `available`. The default route table
  exists only while DefaultRouteTableAssociation or DefaultRouteTablePropagation is enabled, and the
  options carry only the ids of the enabled ones (moto always makes one and names it in both).
  DeleteTransitGateway fails with IncorrectState "tgw-... has non-deleted VPC Attachments: tgw-attach-..."
  while any attachment is not `deleted`; otherwise `deleting` for `tgw_pending_seconds`, then `deleted`
  (still listed) with its route tables `deleted`. Unknown or deleted ids fail with
  InvalidTransitGatewayID.NotFound (moto: a 500).
- CreateTransitGatewayVpcAttachment needs the gateway `available` (IncorrectState otherwise), its subnets
  in the VPC, at most one per zone (DuplicateSubnetsInSameZone), and no other non-deleted attachment of
  that VPC to that gateway. It is `pending` for `tgw_attachment_pending_seconds`, then `available`; each of
  its subnets gets a requester-managed `transit_gateway` network interface, so DeleteSubnet and DeleteVpc
  fail with DependencyViolation (dependencies.py) until the attachment is deleted and its interfaces are
  released (lifecycle.py, rule 12). Its TagSpecifications are kept (moto reads them under the wrong
  resource type). It is associated with (and propagates to) the default route table only when the
  gateway enables that. DeleteTransitGatewayVpcAttachment: `deleting` for
  `tgw_attachment_pending_seconds`, then `deleted` (still listed): its association and propagations go,
  static routes to it become blackholes, its interfaces are released.
- TGW route tables: CreateTransitGatewayRouteTable needs an `available` gateway. Associate needs an
  `available` attachment of the same gateway (IncorrectState / InvalidTransitGatewayAttachmentID.NotFound);
  an attachment already associated with a route table fails with Resource.AlreadyAssociated.
  DeleteTransitGatewayRouteTable fails with IncorrectState while attachments are associated with it or it
  is the gateway's default route table. CreateTransitGatewayRoute to an attachment answers
  TransitGatewayAttachments as the list it is (moto: always empty) and refuses a destination the table
  already has (RouteAlreadyExists); DeleteTransitGatewayRoute of a route the table lacks fails with
  InvalidRoute.NotFound (moto: a 500); ReplaceTransitGatewayRoute (missing in moto) replaces or adds it.
  Tag filters work on DescribeTransitGateways (moto: a 500 with two tag filters),
  DescribeTransitGatewayVpcAttachments and DescribeTransitGatewayRouteTables (moto ignores them there).
- VPC routes: CreateRoute / ReplaceRoute with TransitGatewayId fail with InvalidTransitGatewayID.NotFound
  unless the route table's VPC has an `available` attachment to that gateway (moto accepts any id, even an
  unknown one, and makes a route without a target). ReplaceRoute takes VpcEndpointId (a Gateway Load
  Balancer endpoint, e.g. a firewall's; moto ignores the parameter and leaves the route without a target).

Not modelled, because provision never calls them: route table propagation (Enable/Disable), Disassociate
and DescribeTransitGatewayAttachments are moto's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.ec2.exceptions import (
    DuplicateTransitGatewayAttachmentError,
    EC2ClientError,
)
from moto.ec2.models import EC2Backend
from moto.ec2.models.transit_gateway_attachments import TransitGatewayVpcAttachment
from moto.ec2.responses import EC2Response
from moto.ec2.utils import generic_filter

from provision.clouds.aws.sandbox.lifecycle import (
    advance_hook,
    enter,
    pending_then_deleting,
    release_enis,
)
from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings


@advance_hook("transit_gateways")
def _advance(backend: Any, settings: SandboxSettings, now: float) -> None:
    pending_then_deleting(backend, backend.transit_gateways, settings, now, "tgw_pending_seconds", _finish_tgw_deletion)
    pending_then_deleting(
        backend, backend.transit_gateway_attachments, settings, now, "tgw_attachment_pending_seconds",
        _finish_tgw_attachment_deletion,
    )


def split_filters(filters: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tag filters, applied here with generic_filter; the rest, left to moto)."""
    filters = filters or {}
    ours = {k: v for k, v in filters.items() if k.startswith("tag:") or k in ("tag-key", "tag-value")}
    return ours, {k: v for k, v in filters.items() if k not in ours}


def _invalid_state(resource_id: str) -> EC2ClientError:
    return EC2ClientError("IncorrectState", f"{resource_id} is in invalid state")


def _live_tgw(backend: Any, tgw_id: str | None) -> Any:
    tgw = backend.transit_gateways.get(tgw_id)
    if tgw is None or tgw.state == "deleted":
        raise EC2ClientError(
            "InvalidTransitGatewayID.NotFound", f"Transit Gateway {tgw_id} was deleted or does not exist."
        )
    return tgw


def available_tgw(backend: Any, tgw_id: str | None) -> Any:
    tgw = _live_tgw(backend, tgw_id)
    if tgw.state != "available":
        raise _invalid_state(tgw.id)
    return tgw


def _live_tgw_attachment(backend: Any, attachment_id: str | None) -> Any:
    attachment = backend.transit_gateway_attachments.get(attachment_id)
    if attachment is None or attachment.state == "deleted":
        raise EC2ClientError(
            "InvalidTransitGatewayAttachmentID.NotFound",
            f"Transit Gateway Attachment {attachment_id} was deleted or does not exist.",
        )
    return attachment


def live_tgw_route_table(backend: Any, table_id: str | None) -> Any:
    table = backend.transit_gateways_route_tables.get(table_id)
    if table is None or table.state == "deleted":
        raise EC2ClientError(
            "InvalidRouteTableID.NotFound", f"Transit Gateway Route Table {table_id} was deleted or does not exist."
        )
    return table


def attachment_of_table(backend: Any, table: Any, attachment_id: str | None, available: bool = True) -> Any:
    """The attachment, which must belong to the table's gateway (AWS: as if it did not exist otherwise)."""
    attachment = _live_tgw_attachment(backend, attachment_id)
    if attachment.transit_gateway_id != table.transit_gateway_id:
        raise EC2ClientError(
            "InvalidTransitGatewayAttachmentID.NotFound",
            f"Transit Gateway Attachment {attachment_id} was deleted or does not exist.",
        )
    if available and attachment.state != "available":
        raise _invalid_state(attachment.id)
    return attachment


def _associate_tgw_route_table(backend: Any, attachment: Any, table: Any) -> None:
    backend.set_route_table_association(attachment.id, table.id)
    backend.set_attachment_association(attachment.id, table.id)
    attachment.transit_gateway_route_table = table  # what DescribeTransitGatewayAttachments shows


def _route_attachment_ids(route: dict[str, Any]) -> list[str]:
    listed = route.get("transitGatewayAttachments") or []
    listed = [listed] if isinstance(listed, dict) else listed
    return [entry.get("transitGatewayAttachmentId") for entry in listed]


def _finish_tgw_deletion(backend: Any, tgw: Any, since: float) -> None:
    for table in backend.transit_gateways_route_tables.values():
        if table.transit_gateway_id == tgw.id:
            table.state = "deleted"
    enter(tgw, "deleted", since)


def _finish_tgw_attachment_deletion(backend: Any, attachment: Any, since: float) -> None:
    for table in backend.transit_gateways_route_tables.values():
        table.route_table_associations.pop(attachment.id, None)
        table.route_table_propagation = [
            p for p in table.route_table_propagation if p.transitGatewayAttachmentId != attachment.id
        ]
        for route in table.routes.values():
            if attachment.id in _route_attachment_ids(route):
                route["state"], route["transitGatewayAttachments"] = "blackhole", []
    backend.transit_gateway_associations.pop(attachment.id, None)
    backend.transit_gateway_propagations.pop(attachment.id, None)
    attachment._association_data, attachment.propagation, attachment.transit_gateway_route_table = {}, {}, None
    release_enis(backend, getattr(attachment, "_sandbox_enis", []), (), since, owner=getattr(attachment, "id", ""))
    enter(attachment, "deleted", since)


@patch(EC2Backend, "create_transit_gateway")
def _create_transit_gateway(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    description: str | None,
    options: dict[str, Any] | None = None,
    tags: list[dict[str, str]] | None = None,
) -> Any:
    tgw = original(self, description, options, tags)
    enter(tgw, "pending")
    table = tgw.default_route_table
    association = tgw.options.get("DefaultRouteTableAssociation") == "enable"
    propagation = tgw.options.get("DefaultRouteTablePropagation") == "enable"
    if not association:
        tgw.options.pop("AssociationDefaultRouteTableId", None)
        table.default_association_route_table = False
    if not propagation:
        tgw.options.pop("PropagationDefaultRouteTableId", None)
        table.default_propagation_route_table = False
    if not (association or propagation):
        self.transit_gateways_route_tables.pop(table.id, None)
        tgw.default_route_table = None
    return tgw


@patch(EC2Backend, "delete_transit_gateway")
def _delete_transit_gateway(self: Any, original: Callable, settings: SandboxSettings, transit_gateway_id: str) -> Any:
    tgw = _live_tgw(self, transit_gateway_id)
    if tgw.state == "deleting":
        return tgw
    attached = [
        att
        for att in self.transit_gateway_attachments.values()
        if att.transit_gateway_id == tgw.id and att.state != "deleted"
    ]
    if attached:
        kind = {"vpc": "VPC", "peering": "Transit Gateway Cross Region Peering", "vpn": "VPN"}.get(
            attached[0].resource_type, "Transit Gateway"
        )
        ids = ", ".join(att.id for att in attached)
        raise EC2ClientError("IncorrectState", f"{tgw.id} has non-deleted {kind} Attachments: {ids}.")
    enter(tgw, "deleting")
    return tgw


@patch(EC2Backend, "describe_transit_gateways")
def _describe_transit_gateways(
    self: Any, original: Callable, settings: SandboxSettings, filters: Any, transit_gateway_ids: list[str] | None
) -> list[Any]:
    ours, theirs = split_filters(filters)
    return generic_filter(ours, original(self, theirs, transit_gateway_ids))


@patch(EC2Backend, "create_transit_gateway_vpc_attachment")
def _create_transit_gateway_vpc_attachment(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateway_id: str,
    vpc_id: str,
    subnet_ids: list[str],
    tags: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> Any:
    tgw = available_tgw(self, transit_gateway_id)
    self.get_vpc(vpc_id)  # InvalidVpcID.NotFound
    subnets = [self.get_subnet(subnet_id) for subnet_id in subnet_ids or []]  # InvalidSubnetID.NotFound
    if not subnets:
        raise EC2ClientError("MissingParameter", "The request must contain the parameter SubnetIds.")
    for subnet in subnets:
        if subnet.vpc_id != vpc_id:
            raise EC2ClientError("InvalidSubnetID.NotFound", f"Subnet {subnet.id} was deleted or does not exist.")
    zones = [subnet.availability_zone for subnet in subnets]
    if len(set(zones)) != len(zones):
        raise EC2ClientError("DuplicateSubnetsInSameZone", "Duplicate Subnets for same AZ")
    if any(
        getattr(att, "vpc_id", None) == vpc_id and att.transit_gateway_id == tgw.id and att.state != "deleted"
        for att in self.transit_gateway_attachments.values()
    ):
        raise DuplicateTransitGatewayAttachmentError(tgw.id)
    # Made here, not by moto: moto counts deleted attachments as duplicates and always associates the
    # attachment with the default route table, whatever the gateway's options say.
    attachment = TransitGatewayVpcAttachment(
        self, transit_gateway=tgw, vpc_id=vpc_id, subnet_ids=list(subnet_ids), tags=tags, options=options
    )
    attachment.transit_gateway_route_table = None
    self.transit_gateway_attachments[attachment.id] = attachment
    enter(attachment, "pending")
    attachment._sandbox_enis = []
    for subnet in subnets:
        eni = self.create_network_interface(
            subnet, None, description=f"Network Interface for Transit Gateway Attachment {attachment.id}"
        )
        eni.interface_type, eni.requester_managed = "transit_gateway", True
        attachment._sandbox_enis.append(eni.id)
    if tgw.options.get("DefaultRouteTableAssociation") == "enable":
        table = self.transit_gateways_route_tables.get(tgw.options.get("AssociationDefaultRouteTableId"))
        if table is not None:
            _associate_tgw_route_table(self, attachment, table)
    if tgw.options.get("DefaultRouteTablePropagation") == "enable":
        table = self.transit_gateways_route_tables.get(tgw.options.get("PropagationDefaultRouteTableId"))
        if table is not None:
            self.set_route_table_propagation(attachment.id, table.id)
            self.set_attachment_propagation(attachment.id, table.id)
    return attachment


@patch(EC2Response, "create_transit_gateway_vpc_attachment")
def _create_transit_gateway_vpc_attachment_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    result = original(self)
    tags = self._parse_tag_specification().get("transit-gateway-attachment", {})
    result.result["TransitGatewayVpcAttachment"].add_tags(tags)
    return result


@patch(EC2Backend, "delete_transit_gateway_vpc_attachment")
def _delete_transit_gateway_vpc_attachment(
    self: Any, original: Callable, settings: SandboxSettings, transit_gateway_attachment_id: str
) -> Any:
    attachment = _live_tgw_attachment(self, transit_gateway_attachment_id)
    if attachment.state != "deleting":
        enter(attachment, "deleting")
    return attachment


@patch(EC2Backend, "describe_transit_gateway_vpc_attachments")
def _describe_transit_gateway_vpc_attachments(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateways_attachment_ids: list[str] | None = None,
    filters: Any = None,
) -> list[Any]:
    ours, theirs = split_filters(filters)
    found = original(self, transit_gateways_attachment_ids=transit_gateways_attachment_ids, filters=theirs)
    return generic_filter(ours, found)


# --- inventory (listing.py): `deleted` transit resources are still listed by AWS, history not inventory


def _live(items: list[dict]) -> list[dict]:
    return [i for i in items if i.get("State") not in ("deleted", "deleting", "failed")]


@lists("transit_gateway")
def _list_transit_gateways(clients: Clients) -> list[dict]:
    return _live(clients("ec2").describe_transit_gateways()["TransitGateways"])


@lists("tgw_attachment")
def _list_tgw_attachments(clients: Clients) -> list[dict]:
    return _live(clients("ec2").describe_transit_gateway_vpc_attachments()["TransitGatewayVpcAttachments"])


@lists("tgw_route_table")
def _list_tgw_route_tables(clients: Clients) -> list[dict]:
    return _live(clients("ec2").describe_transit_gateway_route_tables()["TransitGatewayRouteTables"])
