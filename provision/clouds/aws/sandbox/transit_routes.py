"""Transit gateway route tables and routes, and VPC routes to a transit gateway (rule 14, with transit.py).

The rules are listed in transit.py's docstring, under "TGW route tables" and "VPC routes".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError, RouteNotSupportedError
from moto.ec2.models import EC2Backend
from moto.ec2.responses import EC2Response
from moto.ec2.utils import generic_filter
from moto.utilities.utils import str2bool

import provision.clouds.aws.sandbox.transit as transit  # noqa: PLR0402
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings


@patch(EC2Response, "create_transit_gateway_route_table")
def _create_transit_gateway_route_table_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    transit.available_tgw(self.ec2_backend, self._get_param("TransitGatewayId"))
    return original(self)


@patch(EC2Backend, "get_all_transit_gateway_route_tables")
def _describe_transit_gateway_route_tables(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateway_route_table_ids: list[str] | None = None,
    filters: Any = None,
) -> list[Any]:
    ours, theirs = transit.split_filters(filters)
    return generic_filter(ours, original(self, transit_gateway_route_table_ids, theirs))


@patch(EC2Backend, "delete_transit_gateway_route_table")
def _delete_transit_gateway_route_table(
    self: Any, original: Callable, settings: SandboxSettings, transit_gateway_route_table_id: str
) -> Any:
    table = transit.live_tgw_route_table(self, transit_gateway_route_table_id)
    tgw = self.transit_gateways.get(table.transit_gateway_id)
    options = tgw.options if tgw is not None and tgw.state != "deleted" else {}
    if table.id in (options.get("AssociationDefaultRouteTableId"), options.get("PropagationDefaultRouteTableId")):
        raise EC2ClientError("IncorrectState", f"{table.id} is set as default association route table for {tgw.id}")
    if table.route_table_associations:
        raise EC2ClientError("IncorrectState", f"{table.id} has associated attachments")
    return original(self, transit_gateway_route_table_id)


@patch(EC2Backend, "associate_transit_gateway_route_table")
def _associate_transit_gateway_route_table(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateway_attachment_id: str,
    transit_gateway_route_table_id: str,
) -> Any:
    table = transit.live_tgw_route_table(self, transit_gateway_route_table_id)
    attachment = transit.attachment_of_table(self, table, transit_gateway_attachment_id)
    if attachment.transit_gateway_route_table is not None:
        raise EC2ClientError(
            "Resource.AlreadyAssociated",
            f"Transit Gateway Attachment {attachment.id} is already associated to a route table.",
        )
    relation = original(
        self,
        transit_gateway_attachment_id=transit_gateway_attachment_id,
        transit_gateway_route_table_id=transit_gateway_route_table_id,
    )
    attachment.transit_gateway_route_table = table
    return relation


@patch(EC2Backend, "create_transit_gateway_route")
def _create_transit_gateway_route(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateway_route_table_id: str,
    destination_cidr_block: str,
    transit_gateway_attachment_id: str | None = None,
    blackhole: bool = False,
) -> dict[str, Any]:
    table = transit.live_tgw_route_table(self, transit_gateway_route_table_id)
    if destination_cidr_block in table.routes:
        raise EC2ClientError(
            "RouteAlreadyExists",
            f"Route {destination_cidr_block} already exists in Transit Gateway Route Table {table.id}.",
        )
    if not blackhole:
        if not transit_gateway_attachment_id:
            raise EC2ClientError(
                "MissingParameter", "The request must contain the parameter TransitGatewayAttachmentId or Blackhole."
            )
        transit.attachment_of_table(self, table, transit_gateway_attachment_id, available=False)
    route = original(
        self,
        transit_gateway_route_table_id=transit_gateway_route_table_id,
        destination_cidr_block=destination_cidr_block,
        transit_gateway_attachment_id=None if blackhole else transit_gateway_attachment_id,
        blackhole=blackhole,
    )
    # moto keeps the one attachment as a dict, which the response shape (a list) drops.
    single = route.get("transitGatewayAttachments")
    route["transitGatewayAttachments"] = [single] if isinstance(single, dict) else list(single or [])
    return route


@patch(EC2Backend, "delete_transit_gateway_route")
def _delete_transit_gateway_route(
    self: Any, original: Callable, settings: SandboxSettings, transit_gateway_route_table_id: str, destination_cidr_block: str
) -> dict[str, Any]:
    # moto raises KeyError (a 500) for a route that is not there; AWS answers InvalidRoute.NotFound, which is
    # what a teardown repeating a delete that a killed run already made must meet.
    table = transit.live_tgw_route_table(self, transit_gateway_route_table_id)
    if destination_cidr_block not in table.routes:
        raise EC2ClientError(
            "InvalidRoute.NotFound",
            f"Route {destination_cidr_block} does not exist in Transit Gateway Route Table {table.id}.",
        )
    return original(
        self, transit_gateway_route_table_id=transit_gateway_route_table_id, destination_cidr_block=destination_cidr_block
    )


@patch(EC2Response, "replace_transit_gateway_route", adds=True)  # missing in moto 5.2.5
def _replace_transit_gateway_route(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    backend = self.ec2_backend
    table = transit.live_tgw_route_table(backend, self._get_param("TransitGatewayRouteTableId"))
    destination = self._get_param("DestinationCidrBlock")
    blackhole = bool(str2bool(self._get_param("Blackhole")))
    attachment_id = self._get_param("TransitGatewayAttachmentId")
    if not blackhole:
        transit.attachment_of_table(backend, table, attachment_id, available=False)  # before anything changes
    previous = table.routes.pop(destination, None)  # replaced, or added if the table lacked it
    try:
        route = backend.create_transit_gateway_route(
            transit_gateway_route_table_id=table.id,
            destination_cidr_block=destination,
            transit_gateway_attachment_id=attachment_id,
            blackhole=blackhole,
        )
    except EC2ClientError:
        if previous is not None:
            table.routes[destination] = previous
        raise
    return ActionResult({"Route": route})


def _check_route_to_tgw(backend: Any, route_table_id: str, tgw_id: str) -> None:
    """EC2 knows a transit gateway as a route target only once the table's VPC is attached to it."""
    table = backend.get_route_table(route_table_id)  # InvalidRouteTableID.NotFound first
    tgw = backend.transit_gateways.get(tgw_id)
    attached = (
        tgw is not None
        and tgw.state == "available"
        and any(
            att.transit_gateway_id == tgw_id
            and getattr(att, "vpc_id", None) == table.vpc_id
            and att.state == "available"
            for att in backend.transit_gateway_attachments.values()
        )
    )
    if not attached:
        raise EC2ClientError("InvalidTransitGatewayID.NotFound", f"The transitGateway ID '{tgw_id}' does not exist.")


@patch(EC2Response, "create_route")
def _create_route_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    tgw_id = self._get_param("TransitGatewayId")
    if tgw_id:
        _check_route_to_tgw(self.ec2_backend, self._get_param("RouteTableId"), tgw_id)
    return original(self)


@patch(EC2Response, "replace_route")
def _replace_route_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    backend = self.ec2_backend
    table_id = self._get_param("RouteTableId")
    tgw_id, vpce_id = self._get_param("TransitGatewayId"), self._get_param("VpcEndpointId")
    if tgw_id:
        _check_route_to_tgw(backend, table_id, tgw_id)
    if vpce_id and backend.get_vpc_end_point(vpce_id).vpc_endpoint_type != "GatewayLoadBalancer":
        raise RouteNotSupportedError(vpce_id)  # as CreateRoute: Gateway Load Balancer endpoints only
    result = original(self)
    destination = (
        self._get_param("DestinationCidrBlock")
        or self._get_param("DestinationIpv6CidrBlock")
        or self._get_param("DestinationPrefixListId")
    )
    for route in backend.get_route_table(table_id).routes:
        if destination in (
            route.destination_cidr_block,
            route.destination_ipv6_cidr_block,
            getattr(route.destination_prefix_list, "id", None),
        ):
            route.vpc_endpoint_id = vpce_id or None  # moto ignores VpcEndpointId and keeps the old one
    return result
