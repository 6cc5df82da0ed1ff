"""Transit gateway fidelity in the sandbox (clouds/aws/sandbox/transit.py), over HTTP with real boto3 clients: what the
hub-spoke topology builds (a gateway without default route tables, VPC attachments, two route tables
with associations and static routes, VPC routes to the gateway) and the order its teardown must follow.

Every test fails on plain moto 5.2.5, where gateways and attachments are `available` at once, attachments
have no network interfaces, nothing refuses a deletion, tag filters crash or are ignored, an attachment is
always associated with a default route table, and route answers lose their attachment.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sandbox_helpers import (
    client_error,
    delays,
    error_code,
    held,
    once_released,
    wait_until,
)

from provision.sandbox.settings import SandboxSettings

REGION = "us-east-1"
PENDING = 0.1  # tgw_pending_seconds and tgw_attachment_pending_seconds (held longer where a test needs it)
RELEASE = 0.1  # eni_release_seconds
NO_DEFAULTS = {"DefaultRouteTableAssociation": "disable", "DefaultRouteTablePropagation": "disable"}


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    return SandboxSettings(
        tgw_pending_seconds=PENDING, tgw_attachment_pending_seconds=PENDING, eni_release_seconds=RELEASE
    )


def tgw_state(ec2: Any, tgw_id: str) -> str:
    return ec2.describe_transit_gateways(TransitGatewayIds=[tgw_id])["TransitGateways"][0]["State"]


def attachment(ec2: Any, attachment_id: str) -> dict[str, Any]:
    found = ec2.describe_transit_gateway_vpc_attachments(TransitGatewayAttachmentIds=[attachment_id])
    return found["TransitGatewayVpcAttachments"][0]


def make_tgw(ec2: Any, options: dict[str, str] | None = None, wait: bool = True, **kwargs: Any) -> str:
    tgw_id = ec2.create_transit_gateway(Description="hub", Options=options or NO_DEFAULTS, **kwargs)["TransitGateway"][
        "TransitGatewayId"
    ]
    if wait:
        wait_until(lambda: tgw_state(ec2, tgw_id) == "available")
    return tgw_id


def make_vpc(ec2: Any, cidr: str = "10.0.0.0/16", zones: str = "ab") -> dict[str, Any]:
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    prefix = cidr.rsplit(".", 2)[0]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"{prefix}.{i}.0/28", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate(zones)
    ]
    return {"vpc": vpc, "subnets": subnets}


def attach(ec2: Any, tgw_id: str, vpc: dict[str, Any], wait: bool = True, **kwargs: Any) -> str:
    made = ec2.create_transit_gateway_vpc_attachment(
        TransitGatewayId=tgw_id, VpcId=vpc["vpc"], SubnetIds=vpc["subnets"], **kwargs
    )["TransitGatewayVpcAttachment"]["TransitGatewayAttachmentId"]
    if wait:
        wait_until(lambda: attachment(ec2, made)["State"] == "available")
    return made


def detach(ec2: Any, attachment_id: str) -> None:
    ec2.delete_transit_gateway_vpc_attachment(TransitGatewayAttachmentId=attachment_id)
    wait_until(lambda: attachment(ec2, attachment_id)["State"] == "deleted")


def route_table(ec2: Any, tgw_id: str, **kwargs: Any) -> str:
    made = ec2.create_transit_gateway_route_table(TransitGatewayId=tgw_id, **kwargs)
    return made["TransitGatewayRouteTable"]["TransitGatewayRouteTableId"]


def enis_in(ec2: Any, subnets: list[str]) -> list[dict[str, Any]]:
    found = ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": subnets}])
    return found["NetworkInterfaces"]


def tgw_routes(ec2: Any, table_id: str, destination: str) -> list[dict[str, Any]]:
    return ec2.search_transit_gateway_routes(
        TransitGatewayRouteTableId=table_id,
        Filters=[{"Name": "route-search.exact-match", "Values": [destination]},
                 {"Name": "state", "Values": ["active", "blackhole"]}],
    )["Routes"]


# --- gateways --------------------------------------------------------------------------------------------


def test_gateway_is_pending_then_available(ec2: Any, settings: SandboxSettings) -> None:
    with held(settings, "tgw_pending_seconds"):
        made = ec2.create_transit_gateway(Description="hub", Options=NO_DEFAULTS)["TransitGateway"]
        assert made["State"] == "pending"
        assert tgw_state(ec2, made["TransitGatewayId"]) == "pending"
    wait_until(lambda: tgw_state(ec2, made["TransitGatewayId"]) == "available")


def test_delay_is_read_at_request_time(ec2: Any, settings: SandboxSettings) -> None:
    with delays(settings, tgw_pending_seconds=60):
        tgw_id = make_tgw(ec2, wait=False)
        time.sleep(PENDING + 0.1)
        assert tgw_state(ec2, tgw_id) == "pending"
    wait_until(lambda: tgw_state(ec2, tgw_id) == "available")


def test_default_route_table_exists_only_when_enabled(ec2: Any) -> None:
    bare = make_tgw(ec2)
    options = ec2.describe_transit_gateways(TransitGatewayIds=[bare])["TransitGateways"][0]["Options"]
    assert "AssociationDefaultRouteTableId" not in options and "PropagationDefaultRouteTableId" not in options
    by_gateway = [{"Name": "transit-gateway-id", "Values": [bare]}]
    assert ec2.describe_transit_gateway_route_tables(Filters=by_gateway)["TransitGatewayRouteTables"] == []
    vpc = make_vpc(ec2)
    attachment_id = attach(ec2, bare, vpc)
    described = ec2.describe_transit_gateway_attachments(TransitGatewayAttachmentIds=[attachment_id])
    assert "Association" not in described["TransitGatewayAttachments"][0]

    defaults = make_tgw(
        ec2, options={"DefaultRouteTableAssociation": "enable", "DefaultRouteTablePropagation": "enable"}
    )
    options = ec2.describe_transit_gateways(TransitGatewayIds=[defaults])["TransitGateways"][0]["Options"]
    default_table = options["AssociationDefaultRouteTableId"]
    assert options["PropagationDefaultRouteTableId"] == default_table
    # The default table cannot go while it is the default (it has no associations yet).
    code = error_code(ec2.delete_transit_gateway_route_table, TransitGatewayRouteTableId=default_table)
    assert code == "IncorrectState"
    other = attach(ec2, defaults, make_vpc(ec2, "10.1.0.0/16"))
    association = ec2.describe_transit_gateway_attachments(TransitGatewayAttachmentIds=[other])[
        "TransitGatewayAttachments"][0]["Association"]
    assert association == {"TransitGatewayRouteTableId": default_table, "State": "associated"}
    propagations = ec2.get_transit_gateway_route_table_propagations(TransitGatewayRouteTableId=default_table)
    assert [p["TransitGatewayAttachmentId"] for p in propagations["TransitGatewayRouteTablePropagations"]] == [other]


def test_delete_gateway_refused_while_attachments_are_not_deleted(ec2: Any, settings: SandboxSettings) -> None:
    tgw_id = make_tgw(ec2)
    table = route_table(ec2, tgw_id)
    attachment_id = attach(ec2, tgw_id, make_vpc(ec2))
    error = client_error(ec2.delete_transit_gateway, TransitGatewayId=tgw_id)
    assert error["Code"] == "IncorrectState"
    assert error["Message"] == f"{tgw_id} has non-deleted VPC Attachments: {attachment_id}."
    with held(settings, "tgw_attachment_pending_seconds"):
        ec2.delete_transit_gateway_vpc_attachment(TransitGatewayAttachmentId=attachment_id)
        assert error_code(ec2.delete_transit_gateway, TransitGatewayId=tgw_id) == "IncorrectState"  # still deleting
    wait_until(lambda: attachment(ec2, attachment_id)["State"] == "deleted")

    with held(settings, "tgw_pending_seconds"):
        assert ec2.delete_transit_gateway(TransitGatewayId=tgw_id)["TransitGateway"]["State"] == "deleting"
        assert ec2.delete_transit_gateway(TransitGatewayId=tgw_id)["TransitGateway"]["State"] == "deleting"  # a retry
    wait_until(lambda: tgw_state(ec2, tgw_id) == "deleted")  # and still listed, as on AWS
    tables = ec2.describe_transit_gateway_route_tables(TransitGatewayRouteTableIds=[table])["TransitGatewayRouteTables"]
    assert tables[0]["State"] == "deleted"
    for call, kwargs in (
        (ec2.delete_transit_gateway, {"TransitGatewayId": tgw_id}),
        (ec2.delete_transit_gateway, {"TransitGatewayId": "tgw-0123456789abcdef0"}),
        (ec2.create_transit_gateway_route_table, {"TransitGatewayId": tgw_id}),
    ):
        assert error_code(call, **kwargs) == "InvalidTransitGatewayID.NotFound"


# --- attachments ----------------------------------------------------------------------------------------------


def test_attachment_lifecycle_holds_its_subnets_and_vpc(ec2: Any, settings: SandboxSettings) -> None:
    tgw_id = make_tgw(ec2)
    vpc = make_vpc(ec2)
    made = ec2.create_transit_gateway_vpc_attachment(
        TransitGatewayId=tgw_id, VpcId=vpc["vpc"], SubnetIds=vpc["subnets"]
    )
    attachment_id = made["TransitGatewayVpcAttachment"]["TransitGatewayAttachmentId"]
    assert made["TransitGatewayVpcAttachment"]["State"] == "pending"
    enis = enis_in(ec2, vpc["subnets"])
    assert sorted(e["SubnetId"] for e in enis) == sorted(vpc["subnets"])
    assert {(e["InterfaceType"], e["RequesterManaged"]) for e in enis} == {("transit_gateway", True)}
    assert all(attachment_id in e["Description"] for e in enis)
    wait_until(lambda: attachment(ec2, attachment_id)["State"] == "available")

    for call, kwargs in (
        (ec2.delete_subnet, {"SubnetId": vpc["subnets"][0]}),
        (ec2.delete_vpc, {"VpcId": vpc["vpc"]}),
    ):
        assert error_code(call, **kwargs) == "DependencyViolation"
    with held(settings, "tgw_attachment_pending_seconds"):
        ec2.delete_transit_gateway_vpc_attachment(TransitGatewayAttachmentId=attachment_id)
        assert attachment(ec2, attachment_id)["State"] == "deleting"
        assert error_code(ec2.delete_subnet, SubnetId=vpc["subnets"][0]) == "DependencyViolation"
        assert error_code(ec2.delete_vpc, VpcId=vpc["vpc"]) == "DependencyViolation"
    wait_until(lambda: attachment(ec2, attachment_id)["State"] == "deleted")  # still listed, as on AWS
    code = error_code(ec2.delete_transit_gateway_vpc_attachment, TransitGatewayAttachmentId=attachment_id)
    assert code == "InvalidTransitGatewayAttachmentID.NotFound"
    for subnet in vpc["subnets"]:
        once_released(ec2.delete_subnet, SubnetId=subnet)
    ec2.delete_vpc(VpcId=vpc["vpc"])


def test_attachment_needs_an_available_gateway_and_valid_subnets(ec2: Any, settings: SandboxSettings) -> None:
    vpc = make_vpc(ec2)
    with held(settings, "tgw_pending_seconds"):
        pending = make_tgw(ec2, wait=False)
        assert error_code(ec2.create_transit_gateway_vpc_attachment, TransitGatewayId=pending, VpcId=vpc["vpc"],
                          SubnetIds=vpc["subnets"]) == "IncorrectState"
    wait_until(lambda: tgw_state(ec2, pending) == "available")
    same_zone = ec2.create_subnet(VpcId=vpc["vpc"], CidrBlock="10.0.9.0/28", AvailabilityZone=f"{REGION}a")["Subnet"]
    other_vpc = make_vpc(ec2, "10.1.0.0/16", zones="a")
    for subnets, code in (
        ([vpc["subnets"][0], same_zone["SubnetId"]], "DuplicateSubnetsInSameZone"),
        ([vpc["subnets"][0], other_vpc["subnets"][0]], "InvalidSubnetID.NotFound"),
    ):
        assert error_code(ec2.create_transit_gateway_vpc_attachment, TransitGatewayId=pending, VpcId=vpc["vpc"],
                          SubnetIds=subnets) == code
    assert enis_in(ec2, vpc["subnets"]) == []  # nothing was made by the refused requests

    first = attach(ec2, pending, vpc, wait=False)
    code = error_code(ec2.create_transit_gateway_vpc_attachment, TransitGatewayId=pending, VpcId=vpc["vpc"],
                      SubnetIds=vpc["subnets"])
    assert code == "DuplicateTransitGatewayAttachment"
    detach(ec2, first)
    second = attach(ec2, pending, vpc)  # a deleted attachment no longer counts
    assert second != first


def test_tag_filters_on_gateways_attachments_and_route_tables(ec2: Any) -> None:
    deployment = f"dep-{uuid.uuid4().hex[:8]}"

    def spec(kind: str) -> list[dict[str, Any]]:
        tags = [{"Key": "provision:deployment", "Value": deployment}, {"Key": "provision:step", "Value": kind}]
        return [{"ResourceType": kind, "Tags": tags}]

    def build(tagged: bool) -> dict[str, str]:
        def kw(kind: str) -> dict[str, Any]:
            return {"TagSpecifications": spec(kind)} if tagged else {}

        tgw_id = make_tgw(ec2, **kw("transit-gateway"))
        vpc = make_vpc(ec2, "10.0.0.0/16" if tagged else "10.1.0.0/16")
        return {
            "transit-gateway": tgw_id,
            "transit-gateway-attachment": attach(ec2, tgw_id, vpc, **kw("transit-gateway-attachment")),
            "transit-gateway-route-table": route_table(ec2, tgw_id, **kw("transit-gateway-route-table")),
        }

    tagged, untagged = build(True), build(False)
    describes = [
        ("transit-gateway", ec2.describe_transit_gateways, "TransitGateways", "TransitGatewayId"),
        ("transit-gateway-attachment", ec2.describe_transit_gateway_vpc_attachments, "TransitGatewayVpcAttachments",
         "TransitGatewayAttachmentId"),
        ("transit-gateway-route-table", ec2.describe_transit_gateway_route_tables, "TransitGatewayRouteTables",
         "TransitGatewayRouteTableId"),
    ]
    for kind, describe, key, id_field in describes:
        filters = [
            {"Name": "tag:provision:deployment", "Values": [deployment]},
            {"Name": "tag:provision:step", "Values": [kind]},
        ]
        found = describe(Filters=filters)[key]
        assert [item[id_field] for item in found] == [tagged[kind]], describe
        assert {"Key": "provision:step", "Value": kind} in found[0]["Tags"]  # TagSpecifications were kept
        assert untagged[kind] not in [item[id_field] for item in found]
        none = [{"Name": "tag:provision:deployment", "Values": ["no-such"]}, {"Name": "tag:Name", "Values": ["x"]}]
        assert describe(Filters=none)[key] == []


# --- route tables ---------------------------------------------------------------------------------------------


def test_association_rules(ec2: Any, settings: SandboxSettings) -> None:
    tgw_id = make_tgw(ec2)
    spokes, hub = route_table(ec2, tgw_id), route_table(ec2, tgw_id)
    with held(settings, "tgw_attachment_pending_seconds"):
        attachment_id = attach(ec2, tgw_id, make_vpc(ec2), wait=False)
        associate = {"TransitGatewayRouteTableId": spokes, "TransitGatewayAttachmentId": attachment_id}
        assert error_code(ec2.associate_transit_gateway_route_table, **associate) == "IncorrectState"  # pending
    wait_until(lambda: attachment(ec2, attachment_id)["State"] == "available")
    assert ec2.associate_transit_gateway_route_table(**associate)["Association"]["State"] == "associated"
    associations = ec2.get_transit_gateway_route_table_associations(TransitGatewayRouteTableId=spokes)["Associations"]
    assert [a["TransitGatewayAttachmentId"] for a in associations] == [attachment_id]
    described = ec2.describe_transit_gateway_attachments(TransitGatewayAttachmentIds=[attachment_id])
    assert described["TransitGatewayAttachments"][0]["Association"]["TransitGatewayRouteTableId"] == spokes

    error = client_error(ec2.associate_transit_gateway_route_table, **{**associate, "TransitGatewayRouteTableId": hub})
    assert error["Code"] == "Resource.AlreadyAssociated"
    assert error_code(ec2.delete_transit_gateway_route_table, TransitGatewayRouteTableId=spokes) == "IncorrectState"

    # Deleting the attachment removes its association, and the table can go.
    detach(ec2, attachment_id)
    assert ec2.get_transit_gateway_route_table_associations(TransitGatewayRouteTableId=spokes)["Associations"] == []
    assert ec2.delete_transit_gateway_route_table(TransitGatewayRouteTableId=spokes)["TransitGatewayRouteTable"][
        "State"] == "deleted"
    code = error_code(ec2.delete_transit_gateway_route_table, TransitGatewayRouteTableId=spokes)
    assert code == "InvalidRouteTableID.NotFound"
    ec2.delete_transit_gateway_route_table(TransitGatewayRouteTableId=hub)


def test_attachment_of_another_gateway_is_unknown_to_a_route_table(ec2: Any) -> None:
    table = route_table(ec2, make_tgw(ec2))
    foreign = attach(ec2, make_tgw(ec2), make_vpc(ec2))
    code = error_code(ec2.associate_transit_gateway_route_table, TransitGatewayRouteTableId=table,
                      TransitGatewayAttachmentId=foreign)
    assert code == "InvalidTransitGatewayAttachmentID.NotFound"
    code = error_code(ec2.create_transit_gateway_route, TransitGatewayRouteTableId=table,
                      DestinationCidrBlock="0.0.0.0/0", TransitGatewayAttachmentId=foreign)
    assert code == "InvalidTransitGatewayAttachmentID.NotFound"


def test_deleting_an_attachment_removes_its_propagation(ec2: Any) -> None:
    tgw_id = make_tgw(ec2, options={"DefaultRouteTableAssociation": "disable", "DefaultRouteTablePropagation": "enable"})
    options = ec2.describe_transit_gateways(TransitGatewayIds=[tgw_id])["TransitGateways"][0]["Options"]
    table = options["PropagationDefaultRouteTableId"]
    attachment_id = attach(ec2, tgw_id, make_vpc(ec2))
    propagations = ec2.get_transit_gateway_route_table_propagations(TransitGatewayRouteTableId=table)
    assert [p["TransitGatewayAttachmentId"] for p in propagations["TransitGatewayRouteTablePropagations"]] == [
        attachment_id
    ]
    detach(ec2, attachment_id)
    propagations = ec2.get_transit_gateway_route_table_propagations(TransitGatewayRouteTableId=table)
    assert propagations["TransitGatewayRouteTablePropagations"] == []


def test_static_routes_name_their_attachment_and_can_be_replaced(ec2: Any) -> None:
    tgw_id = make_tgw(ec2)
    table = route_table(ec2, tgw_id)
    hub = attach(ec2, tgw_id, make_vpc(ec2))
    spoke = attach(ec2, tgw_id, make_vpc(ec2, "10.1.0.0/16"))
    args = {"TransitGatewayRouteTableId": table, "DestinationCidrBlock": "0.0.0.0/0"}
    route = ec2.create_transit_gateway_route(**args, TransitGatewayAttachmentId=hub)["Route"]
    assert route["TransitGatewayAttachments"][0]["TransitGatewayAttachmentId"] == hub
    assert (route["State"], route["Type"]) == ("active", "static")
    [found] = tgw_routes(ec2, table, "0.0.0.0/0")
    assert [a["TransitGatewayAttachmentId"] for a in found["TransitGatewayAttachments"]] == [hub]
    code = error_code(ec2.create_transit_gateway_route, **args, TransitGatewayAttachmentId=spoke)
    assert code == "RouteAlreadyExists"

    replaced = ec2.replace_transit_gateway_route(**args, TransitGatewayAttachmentId=spoke)["Route"]
    assert replaced["TransitGatewayAttachments"][0]["TransitGatewayAttachmentId"] == spoke
    assert tgw_routes(ec2, table, "0.0.0.0/0")[0]["TransitGatewayAttachments"][0]["TransitGatewayAttachmentId"] == spoke
    ec2.replace_transit_gateway_route(TransitGatewayRouteTableId=table, DestinationCidrBlock="10.9.0.0/16",
                                      TransitGatewayAttachmentId=hub)  # replacing adds a missing route
    assert tgw_routes(ec2, table, "10.9.0.0/16")[0]["State"] == "active"
    ec2.replace_transit_gateway_route(**args, Blackhole=True)
    [blackhole] = tgw_routes(ec2, table, "0.0.0.0/0")
    assert blackhole["State"] == "blackhole" and blackhole.get("TransitGatewayAttachments", []) == []

    # A route to an attachment that is deleted becomes a blackhole; deleting a route removes it.
    detach(ec2, hub)
    assert tgw_routes(ec2, table, "10.9.0.0/16")[0]["State"] == "blackhole"
    ec2.delete_transit_gateway_route(TransitGatewayRouteTableId=table, DestinationCidrBlock="10.9.0.0/16")
    assert tgw_routes(ec2, table, "10.9.0.0/16") == []


# --- VPC routes to the gateway ---------------------------------------------------------------------------------


def test_vpc_route_to_gateway_needs_an_available_attachment_of_that_vpc(ec2: Any, settings: SandboxSettings) -> None:
    tgw_id = make_tgw(ec2)
    vpc = make_vpc(ec2)
    table = ec2.create_route_table(VpcId=vpc["vpc"])["RouteTable"]["RouteTableId"]
    args = {"RouteTableId": table, "DestinationCidrBlock": "0.0.0.0/0", "TransitGatewayId": tgw_id}
    error = client_error(ec2.create_route, **args)  # not attached
    assert error == {
        "Code": "InvalidTransitGatewayID.NotFound", "Message": f"The transitGateway ID '{tgw_id}' does not exist."
    }
    attach(ec2, tgw_id, make_vpc(ec2, "10.1.0.0/16"))  # another VPC's attachment does not count
    assert error_code(ec2.create_route, **args) == "InvalidTransitGatewayID.NotFound"
    with held(settings, "tgw_attachment_pending_seconds"):
        attachment_id = attach(ec2, tgw_id, vpc, wait=False)
        assert error_code(ec2.create_route, **args) == "InvalidTransitGatewayID.NotFound"  # pending
    wait_until(lambda: attachment(ec2, attachment_id)["State"] == "available")
    ec2.create_route(**args)
    routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    assert {"DestinationCidrBlock": "0.0.0.0/0", "TransitGatewayId": tgw_id} == {
        k: v for k, v in next(r for r in routes if r["DestinationCidrBlock"] == "0.0.0.0/0").items()
        if k in ("DestinationCidrBlock", "TransitGatewayId")
    }
    unknown = {**args, "TransitGatewayId": "tgw-0123456789abcdef0"}
    assert error_code(ec2.replace_route, **unknown) == "InvalidTransitGatewayID.NotFound"
    assert error_code(ec2.create_route, **{**unknown, "DestinationCidrBlock": "10.9.0.0/16"}) == (
        "InvalidTransitGatewayID.NotFound"
    )
    ec2.replace_route(**args)


# --- end to end ------------------------------------------------------------------------------------------------


def test_hub_and_spoke_teardown_in_order_succeeds(ec2: Any) -> None:
    """The hub-spoke backbone built as provision builds it, then torn down in the order AWS requires."""
    tgw_id = make_tgw(ec2)
    spokes_table, hub_table = route_table(ec2, tgw_id), route_table(ec2, tgw_id)
    hub, spoke = make_vpc(ec2, "10.0.0.0/16"), make_vpc(ec2, "10.1.0.0/16")
    hub_attachment, spoke_attachment = attach(ec2, tgw_id, hub), attach(ec2, tgw_id, spoke)
    for table, attachment_id in ((hub_table, hub_attachment), (spokes_table, spoke_attachment)):
        ec2.associate_transit_gateway_route_table(
            TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=attachment_id
        )
    ec2.create_transit_gateway_route(TransitGatewayRouteTableId=spokes_table, DestinationCidrBlock="0.0.0.0/0",
                                     TransitGatewayAttachmentId=hub_attachment)
    ec2.create_transit_gateway_route(TransitGatewayRouteTableId=hub_table, DestinationCidrBlock="10.1.0.0/16",
                                     TransitGatewayAttachmentId=spoke_attachment)
    private = ec2.create_route_table(VpcId=spoke["vpc"])["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=private, DestinationCidrBlock="0.0.0.0/0", TransitGatewayId=tgw_id)
    public = ec2.create_route_table(VpcId=hub["vpc"])["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public, DestinationCidrBlock="10.1.0.0/16", TransitGatewayId=tgw_id)

    # Out of order, each step is refused.
    assert error_code(ec2.delete_transit_gateway, TransitGatewayId=tgw_id) == "IncorrectState"
    assert error_code(ec2.delete_transit_gateway_route_table, TransitGatewayRouteTableId=hub_table) == "IncorrectState"
    assert error_code(ec2.delete_subnet, SubnetId=spoke["subnets"][0]) == "DependencyViolation"

    ec2.delete_route(RouteTableId=public, DestinationCidrBlock="10.1.0.0/16")
    ec2.delete_route(RouteTableId=private, DestinationCidrBlock="0.0.0.0/0")
    ec2.delete_transit_gateway_route(TransitGatewayRouteTableId=hub_table, DestinationCidrBlock="10.1.0.0/16")
    ec2.delete_transit_gateway_route(TransitGatewayRouteTableId=spokes_table, DestinationCidrBlock="0.0.0.0/0")
    for attachment_id in (spoke_attachment, hub_attachment):
        ec2.delete_transit_gateway_vpc_attachment(TransitGatewayAttachmentId=attachment_id)
    for attachment_id in (spoke_attachment, hub_attachment):
        wait_until(lambda attachment_id=attachment_id: attachment(ec2, attachment_id)["State"] == "deleted")
    for table in (spokes_table, hub_table):
        ec2.delete_transit_gateway_route_table(TransitGatewayRouteTableId=table)
    ec2.delete_transit_gateway(TransitGatewayId=tgw_id)
    for vpc, table in ((hub, public), (spoke, private)):
        ec2.delete_route_table(RouteTableId=table)
        for subnet in vpc["subnets"]:
            once_released(ec2.delete_subnet, SubnetId=subnet)
        ec2.delete_vpc(VpcId=vpc["vpc"])
    wait_until(lambda: tgw_state(ec2, tgw_id) == "deleted")


def test_deleting_a_route_twice_is_not_found_not_a_500(ec2: Any) -> None:
    """A teardown that repeats a delete a killed run already made must meet AWS's own error."""
    table = route_table(ec2, make_tgw(ec2))
    ec2.create_transit_gateway_route(TransitGatewayRouteTableId=table, DestinationCidrBlock="10.99.0.0/16", Blackhole=True)
    ec2.delete_transit_gateway_route(TransitGatewayRouteTableId=table, DestinationCidrBlock="10.99.0.0/16")
    assert error_code(ec2.delete_transit_gateway_route, TransitGatewayRouteTableId=table, DestinationCidrBlock="10.99.0.0/16") == "InvalidRoute.NotFound"
