"""Exact EC2 request shapes of the network and endpoint steps, checked with botocore's Stubber.

A real boto3 EC2 client (dummy credentials, us-east-1) whose every call is answered by the Stubber, so
parameter names and response shapes are validated against the service model and nothing goes on the wire.
"""

from __future__ import annotations

import copy
import random
import tomllib
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
import structlog
from botocore.stub import ANY, Stubber
from fakes import FakeClock
from structlog.testing import CapturingLogger

from provision import topologies as spec_module
from provision.clouds import error_rules
from provision.clouds.aws.steps.endpoints import InterfaceEndpoint
from provision.clouds.aws.steps.network import (
    WORKSPACE_SG_RULES,
    NatGateway,
    SecurityGroup,
    Vpc,
)
from provision.clouds.aws.steps.routes import RouteTable
from provision.orchestrator.clients import CallStats
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import TAG_DEPLOYMENT, TAG_STEP, Context, Ref
from provision.orchestrator.wait import PollPolicy

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "basic.toml"
ACCOUNT = "123456789012"




class StubClients:
    """`ctx.clients["aws"].client("ec2")` is the stubbed client; no other cloud or service is reachable."""

    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2
        self.stats = CallStats()

    def __getitem__(self, cloud: str) -> Any:
        assert cloud == "aws", f"unexpected cloud {cloud}"
        return self

    def client(self, service: str) -> Any:
        assert service == "ec2", f"unexpected AWS service {service}"
        return self.ec2


class Recorder:
    """Every request's parameters as botocore built them, in call order."""

    def __init__(self, client: Any) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("before-parameter-build.ec2", self._record, unique_id="test-recorder")

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.requests.append((model.name, copy.deepcopy(params)))

    def params(self, operation: str) -> list[dict[str, Any]]:
        return [p for name, p in self.requests if name == operation]

    def operations(self) -> list[str]:
        return [name for name, _ in self.requests]


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


@pytest.fixture(scope="module")
def spec() -> Any:
    return spec_module.from_dict(tomllib.loads(EXAMPLE.read_text()), str(EXAMPLE))


pytestmark = pytest.mark.usefixtures("no_real_sleep")


class Harness:
    def __init__(self, session: boto3.session.Session, spec: Any) -> None:
        self.client = session.client("ec2")
        self.stub = Stubber(self.client)
        self.recorder = Recorder(self.client)
        self.clock = FakeClock(start=0.0)
        self.spec = spec
        self.ctx = self.context(spec)

    def context(self, spec: Any) -> Context:
        return Context(
            spec=spec,
            clients=StubClients(self.client),  # type: ignore[arg-type]
            retry=RetryPolicy(deadline_seconds=30, initial_seconds=1, max_seconds=2, clock=self.clock, sleep=self.clock.sleep, rng=random.Random(3), errors=error_rules()),
            poll=PollPolicy(initial_seconds=1, factor=2, max_seconds=4, timeout_seconds=60, clock=self.clock, sleep=self.clock.sleep),
            log=structlog.wrap_logger(CapturingLogger(), processors=[]),
        )


@pytest.fixture
def h(session: boto3.session.Session, spec: Any) -> Iterator[Harness]:
    harness = Harness(session, spec)
    with harness.stub:
        yield harness


def tag_dict(tag_specifications: list[dict[str, Any]], resource_type: str) -> dict[str, str]:
    assert len(tag_specifications) == 1
    (only,) = tag_specifications
    assert only["ResourceType"] == resource_type
    keys = [t["Key"] for t in only["Tags"]]
    assert len(keys) == len(set(keys)), f"duplicate tag keys {keys}"
    return {t["Key"]: t["Value"] for t in only["Tags"]}


def expected_tags(step_id: str, name: str) -> dict[str, str]:
    return {
        "Name": name,
        TAG_DEPLOYMENT: "acme-basic",
        TAG_STEP: step_id,
        "Owner": "platform-team",
        "CostCenter": "data-1234",
    }


# VPC ---------------------------------------------------------------------------------------------


def test_vpc_create_sends_cidr_and_ownership_tags(h: Harness) -> None:
    h.stub.add_response(
        "create_vpc",
        {"Vpc": {"VpcId": "vpc-0abc", "CidrBlock": "10.40.0.0/16", "State": "pending"}},
        {"CidrBlock": "10.40.0.0/16", "TagSpecifications": ANY},
    )

    out = Vpc("vpc", cidr=h.spec.network.vpc_cidr).create(h.ctx)

    h.stub.assert_no_pending_responses()
    assert out == {"vpc_id": "vpc-0abc", "cidr": "10.40.0.0/16"}
    (params,) = h.recorder.params("CreateVpc")
    assert tag_dict(params["TagSpecifications"], "vpc") == expected_tags("vpc", "acme-basic-vpc")


@pytest.mark.parametrize(
    ("dns_support", "dns_hostnames"),
    [(True, False), (False, True), (False, False), (True, True)],
)
def test_vpc_wait_ready_turns_on_only_the_dns_attributes_that_are_off(h: Harness, dns_support: bool, dns_hostnames: bool) -> None:
    vpc = {"VpcId": "vpc-0abc", "CidrBlock": "10.40.0.0/16"}
    h.stub.add_response("describe_vpcs", {"Vpcs": [{**vpc, "State": "pending"}]}, {"VpcIds": ["vpc-0abc"]})
    h.stub.add_response("describe_vpcs", {"Vpcs": [{**vpc, "State": "available"}]}, {"VpcIds": ["vpc-0abc"]})
    h.stub.add_response(
        "describe_vpc_attribute",
        {"VpcId": "vpc-0abc", "EnableDnsSupport": {"Value": dns_support}},
        {"VpcId": "vpc-0abc", "Attribute": "enableDnsSupport"},
    )
    if not dns_support:
        h.stub.add_response("modify_vpc_attribute", {}, {"VpcId": "vpc-0abc", "EnableDnsSupport": {"Value": True}})
    h.stub.add_response(
        "describe_vpc_attribute",
        {"VpcId": "vpc-0abc", "EnableDnsHostnames": {"Value": dns_hostnames}},
        {"VpcId": "vpc-0abc", "Attribute": "enableDnsHostnames"},
    )
    if not dns_hostnames:
        h.stub.add_response("modify_vpc_attribute", {}, {"VpcId": "vpc-0abc", "EnableDnsHostnames": {"Value": True}})

    out = Vpc("vpc", cidr="10.40.0.0/16").wait_ready(h.ctx, {"vpc_id": "vpc-0abc", "cidr": "10.40.0.0/16"})

    h.stub.assert_no_pending_responses()
    assert out == {"vpc_id": "vpc-0abc", "cidr": "10.40.0.0/16"}
    assert h.recorder.operations().count("DescribeVpcAttribute") == 2
    assert h.recorder.operations().count("ModifyVpcAttribute") == [dns_support, dns_hostnames].count(False)
    assert h.clock.sleeps == [1]  # one poll interval while the VPC was pending, on the fake clock


# NAT gateway -------------------------------------------------------------------------------------


def nat_step(step_id: str = "nat.0", subnet: str = "subnet.public.0", eip: str = "eip.0") -> NatGateway:
    return NatGateway(step_id, subnet=subnet, eip=eip, igw="igw")


def nat_response(nat_id: str = "nat-0abc", subnet_id: str = "subnet-pub0", state: str = "pending") -> dict[str, Any]:
    return {"NatGateway": {"NatGatewayId": nat_id, "SubnetId": subnet_id, "State": state, "VpcId": "vpc-0abc"}}


def stub_nat_create(h: Harness, subnet_id: str = "subnet-pub0", allocation_id: str = "eipalloc-0abc") -> None:
    h.stub.add_response(
        "create_nat_gateway",
        nat_response(subnet_id=subnet_id),
        {
            "SubnetId": subnet_id,
            "AllocationId": allocation_id,
            "ConnectivityType": "public",
            "ClientToken": ANY,
            "TagSpecifications": ANY,
        },
    )


def test_nat_create_sends_a_deterministic_client_token_and_natgateway_tags(h: Harness, spec: Any) -> None:
    h.ctx.outputs.update(
        {
            "subnet.public.0": {"subnet_id": "subnet-pub0"},
            "subnet.public.1": {"subnet_id": "subnet-pub1"},
            "eip.0": {"allocation_id": "eipalloc-0abc"},
            "eip.1": {"allocation_id": "eipalloc-1abc"},
        }
    )
    other_deployment = h.context(spec_module.from_dict({**spec.raw, "name": "acme-other"}))
    other_deployment.outputs.update(h.ctx.outputs)
    stub_nat_create(h)
    stub_nat_create(h)
    stub_nat_create(h, subnet_id="subnet-pub1", allocation_id="eipalloc-1abc")
    stub_nat_create(h)

    out = nat_step().create(h.ctx)
    nat_step().create(h.ctx)  # the same step again, as a retry or a later run would
    nat_step("nat.1", subnet="subnet.public.1", eip="eip.1").create(h.ctx)
    nat_step().create(other_deployment)

    h.stub.assert_no_pending_responses()
    assert out == {"nat_gateway_id": "nat-0abc", "subnet_id": "subnet-pub0"}
    requests = h.recorder.params("CreateNatGateway")
    tokens = [p["ClientToken"] for p in requests]
    assert all(isinstance(t, str) and 0 < len(t) <= 64 for t in tokens)  # EC2's ClientToken limit
    assert tokens[0] == tokens[1]
    assert tokens[2] != tokens[0]
    assert tokens[3] != tokens[0]
    assert tag_dict(requests[0]["TagSpecifications"], "natgateway") == expected_tags("nat.0", "acme-basic-nat-0")
    assert tag_dict(requests[2]["TagSpecifications"], "natgateway")[TAG_STEP] == "nat.1"
    assert tag_dict(requests[3]["TagSpecifications"], "natgateway")[TAG_DEPLOYMENT] == "acme-other"


def test_nat_find_uses_filter_with_live_states_and_ownership_tags(h: Harness) -> None:
    def nat(nat_id: str, step: str) -> dict[str, Any]:
        tags = [{"Key": TAG_DEPLOYMENT, "Value": "acme-basic"}, {"Key": TAG_STEP, "Value": step}]
        return {"NatGatewayId": nat_id, "SubnetId": "subnet-pub0", "State": "available", "VpcId": "vpc-0abc", "Tags": tags}

    # One listing of the deployment's NAT gateways serves the first find of every NAT step...
    h.stub.add_response("describe_nat_gateways", {"NatGateways": [nat("nat-0abc", "nat.0"), nat("nat-1abc", "nat.1")]}, {"Filter": ANY})
    # ...and a step's later find asks for that step alone.
    h.stub.add_response("describe_nat_gateways", {"NatGateways": []}, {"Filter": ANY})

    found = nat_step().find(h.ctx)
    other = nat_step("nat.1", subnet="subnet.public.1", eip="eip.1").find(h.ctx)
    missing = nat_step().find(h.ctx)

    h.stub.assert_no_pending_responses()
    assert found == {"nat_gateway_id": "nat-0abc", "subnet_id": "subnet-pub0"}
    assert other == {"nat_gateway_id": "nat-1abc", "subnet_id": "subnet-pub0"}
    assert missing is None
    listing, alone = h.recorder.params("DescribeNatGateways")
    for params in (listing, alone):
        assert set(params) == {"Filter"}  # not `Filters`, which describe_nat_gateways does not take
    def by_name(params: dict[str, Any]) -> dict[str, list[str]]:
        filters = {f["Name"]: sorted(f["Values"]) for f in params["Filter"]}
        assert len(filters) == len(params["Filter"])
        return filters

    assert by_name(listing) == {f"tag:{TAG_DEPLOYMENT}": ["acme-basic"], "state": ["available", "pending"]}
    assert by_name(alone) == {f"tag:{TAG_DEPLOYMENT}": ["acme-basic"], f"tag:{TAG_STEP}": ["nat.0"], "state": ["available", "pending"]}


# security group ----------------------------------------------------------------------------------


def perm_key(perm: dict[str, Any]) -> tuple:
    return (
        perm["IpProtocol"],
        perm.get("FromPort"),
        perm.get("ToPort"),
        tuple(sorted(p["GroupId"] for p in perm.get("UserIdGroupPairs", []))),
        tuple(sorted(r["CidrIp"] for r in perm.get("IpRanges", []))),
    )


def expected_perms(direction: str, group_id: str) -> set[tuple]:
    out = set()
    for rule_direction, protocol, low, high, peer in WORKSPACE_SG_RULES:
        if rule_direction == direction:
            groups = (group_id,) if peer == "self" else ()
            cidrs = () if peer == "self" else (peer,)
            out.add((protocol, low, high, groups, cidrs))
    return out


def sg_step() -> SecurityGroup:
    return SecurityGroup("sg.workspace", vpc="vpc", description="Databricks workspace", rules=WORKSPACE_SG_RULES)


def group(ingress: list[dict[str, Any]], egress: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "SecurityGroups": [
            {
                "GroupId": "sg-0abc",
                "GroupName": "acme-basic-sg-workspace",
                "Description": "Databricks workspace",
                "OwnerId": ACCOUNT,
                "VpcId": "vpc-0abc",
                "IpPermissions": ingress,
                "IpPermissionsEgress": egress,
            }
        ]
    }


def self_pair() -> list[dict[str, str]]:
    return [{"GroupId": "sg-0abc", "UserId": ACCOUNT}]


def test_security_group_converges_a_fresh_group_to_the_workspace_rules(h: Harness) -> None:
    default_egress = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}
    h.stub.add_response("describe_security_groups", group([], [default_egress]), {"GroupIds": ["sg-0abc"]})
    h.stub.add_response("authorize_security_group_ingress", {"Return": True}, {"GroupId": "sg-0abc", "IpPermissions": ANY})
    h.stub.add_response("authorize_security_group_egress", {"Return": True}, {"GroupId": "sg-0abc", "IpPermissions": ANY})
    h.stub.add_response("revoke_security_group_egress", {"Return": True}, {"GroupId": "sg-0abc", "IpPermissions": ANY})

    out = sg_step().wait_ready(h.ctx, {"group_id": "sg-0abc", "vpc_id": "vpc-0abc"})

    h.stub.assert_no_pending_responses()
    assert {k: v for k, v in out.items() if k != "rules_digest"} == {"group_id": "sg-0abc", "vpc_id": "vpc-0abc"}
    assert out["rules_digest"]  # what find will see, recorded now
    (ingress,) = h.recorder.params("AuthorizeSecurityGroupIngress")
    ingress_keys = [perm_key(p) for p in ingress["IpPermissions"]]
    assert sorted(ingress_keys) == sorted(expected_perms("ingress", "sg-0abc"))
    assert set(ingress_keys) == {("tcp", 0, 65535, ("sg-0abc",), ()), ("udp", 0, 65535, ("sg-0abc",), ())}
    (egress,) = h.recorder.params("AuthorizeSecurityGroupEgress")
    assert sorted(perm_key(p) for p in egress["IpPermissions"]) == sorted(expected_perms("egress", "sg-0abc"))
    (revoke,) = h.recorder.params("RevokeSecurityGroupEgress")
    assert revoke["IpPermissions"] == [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    assert "RevokeSecurityGroupIngress" not in h.recorder.operations()


def test_security_group_already_matching_makes_no_changes(h: Harness) -> None:
    def perm(protocol: str, low: int, high: int, *, self_ref: bool = False, cidr: str | None = None) -> dict[str, Any]:
        return {
            "IpProtocol": protocol, "FromPort": low, "ToPort": high,
            "UserIdGroupPairs": self_pair() if self_ref else [],
            "IpRanges": [{"CidrIp": cidr}] if cidr else [],
            "Ipv6Ranges": [], "PrefixListIds": [],
        }

    ingress = [perm("tcp", 0, 65535, self_ref=True), perm("udp", 0, 65535, self_ref=True)]
    egress = [perm("tcp", 0, 65535, self_ref=True), perm("udp", 0, 65535, self_ref=True)]
    egress += [perm("tcp", low, high, cidr="0.0.0.0/0") for low, high in ((443, 443), (2443, 2443), (3306, 3306), (5432, 5432), (6666, 6666), (8443, 8451))]
    h.stub.add_response("describe_security_groups", group(ingress, egress), {"GroupIds": ["sg-0abc"]})

    sg_step().wait_ready(h.ctx, {"group_id": "sg-0abc", "vpc_id": "vpc-0abc"})

    h.stub.assert_no_pending_responses()
    assert h.recorder.operations() == ["DescribeSecurityGroups"]


# route table -------------------------------------------------------------------------------------


def rt_step() -> RouteTable:
    return RouteTable("rt.private.0", vpc="vpc", subnets=["subnet.private.0", "subnet.private.1"], default_route=("NatGatewayId", Ref("nat.0", "nat_gateway_id")))


def rt_ctx(h: Harness) -> None:
    h.ctx.outputs.update(
        {
            "vpc": {"vpc_id": "vpc-0abc"},
            "subnet.private.0": {"subnet_id": "subnet-priv0"},
            "subnet.private.1": {"subnet_id": "subnet-priv1"},
            "nat.0": {"nat_gateway_id": "nat-0abc"},
        }
    )


def table(routes: list[dict[str, Any]], associations: list[dict[str, Any]]) -> dict[str, Any]:
    local = {"DestinationCidrBlock": "10.40.0.0/16", "GatewayId": "local", "State": "active", "Origin": "CreateRouteTable"}
    return {"RouteTables": [{"RouteTableId": "rtb-0abc", "VpcId": "vpc-0abc", "Routes": [local, *routes], "Associations": associations}]}


def test_route_table_creates_missing_default_route_to_the_nat_and_associates_subnets(h: Harness) -> None:
    rt_ctx(h)
    h.stub.add_response("describe_route_tables", table([], []), {"RouteTableIds": ["rtb-0abc"]})
    h.stub.add_response("create_route", {"Return": True}, {"RouteTableId": "rtb-0abc", "DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-0abc"})
    h.stub.add_response("associate_route_table", {"AssociationId": "rtbassoc-0"}, {"RouteTableId": "rtb-0abc", "SubnetId": "subnet-priv0"})
    h.stub.add_response("associate_route_table", {"AssociationId": "rtbassoc-1"}, {"RouteTableId": "rtb-0abc", "SubnetId": "subnet-priv1"})

    out = rt_step().wait_ready(h.ctx, {"route_table_id": "rtb-0abc", "associations": {}})

    h.stub.assert_no_pending_responses()
    assert out == {"route_table_id": "rtb-0abc", "associations": {"subnet-priv0": "rtbassoc-0", "subnet-priv1": "rtbassoc-1"},
                   "routes": {"0.0.0.0/0": "nat-0abc"}}
    assert "ReplaceRoute" not in h.recorder.operations()


def test_route_table_replaces_a_default_route_that_points_elsewhere_and_associates_only_new_subnets(h: Harness) -> None:
    rt_ctx(h)
    stale = {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-0old", "State": "blackhole", "Origin": "CreateRoute"}
    associated = [
        {"Main": False, "RouteTableAssociationId": "rtbassoc-0", "RouteTableId": "rtb-0abc", "SubnetId": "subnet-priv0"},
        {"Main": True, "RouteTableAssociationId": "rtbassoc-main", "RouteTableId": "rtb-0abc"},
    ]
    h.stub.add_response("describe_route_tables", table([stale], associated), {"RouteTableIds": ["rtb-0abc"]})
    h.stub.add_response("replace_route", {}, {"RouteTableId": "rtb-0abc", "DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-0abc"})
    h.stub.add_response("associate_route_table", {"AssociationId": "rtbassoc-1"}, {"RouteTableId": "rtb-0abc", "SubnetId": "subnet-priv1"})

    out = rt_step().wait_ready(h.ctx, {"route_table_id": "rtb-0abc", "associations": {}})

    h.stub.assert_no_pending_responses()
    assert out == {"route_table_id": "rtb-0abc", "associations": {"subnet-priv0": "rtbassoc-0", "subnet-priv1": "rtbassoc-1"},
                   "routes": {"0.0.0.0/0": "nat-0abc"}}
    assert "CreateRoute" not in h.recorder.operations()


def test_route_table_already_converged_makes_no_changes(h: Harness) -> None:
    rt_ctx(h)
    route = {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-0abc", "State": "active", "Origin": "CreateRoute"}
    associated = [
        {"Main": False, "RouteTableAssociationId": f"rtbassoc-{i}", "RouteTableId": "rtb-0abc", "SubnetId": f"subnet-priv{i}"}
        for i in (0, 1)
    ]
    h.stub.add_response("describe_route_tables", table([route], associated), {"RouteTableIds": ["rtb-0abc"]})

    out = rt_step().wait_ready(h.ctx, {"route_table_id": "rtb-0abc", "associations": {}})

    h.stub.assert_no_pending_responses()
    assert h.recorder.operations() == ["DescribeRouteTables"]
    assert out["associations"] == {"subnet-priv0": "rtbassoc-0", "subnet-priv1": "rtbassoc-1"}


# interface endpoint ------------------------------------------------------------------------------


def test_interface_endpoint_create_sends_the_interface_request(h: Harness, spec: Any) -> None:
    h.ctx.outputs.update(
        {
            "vpc": {"vpc_id": "vpc-0abc"},
            "subnet.private.0": {"subnet_id": "subnet-priv0"},
            "subnet.private.1": {"subnet_id": "subnet-priv1"},
            "sg.workspace": {"group_id": "sg-0abc"},
        }
    )
    step = InterfaceEndpoint("vpce.sts", vpc="vpc", service="sts", subnets=["subnet.private.0", "subnet.private.1"], security_group="sg.workspace")
    response = {"VpcEndpoint": {"VpcEndpointId": "vpce-0abc", "VpcEndpointType": "Interface", "ServiceName": "com.amazonaws.us-east-1.sts", "State": "pending"}}
    expected = {
        "VpcEndpointType": "Interface",
        "VpcId": "vpc-0abc",
        "ServiceName": "com.amazonaws.us-east-1.sts",
        "SubnetIds": ["subnet-priv0", "subnet-priv1"],
        "SecurityGroupIds": ["sg-0abc"],
        "PrivateDnsEnabled": True,
        "ClientToken": ANY,
        "TagSpecifications": ANY,
    }
    h.stub.add_response("create_vpc_endpoint", response, expected)
    h.stub.add_response("create_vpc_endpoint", response, expected)

    out = step.create(h.ctx)
    step.create(h.ctx)

    h.stub.assert_no_pending_responses()
    assert out == {"vpc_endpoint_id": "vpce-0abc", "service_name": "com.amazonaws.us-east-1.sts"}
    first, second = h.recorder.params("CreateVpcEndpoint")
    assert isinstance(first["ClientToken"], str) and 0 < len(first["ClientToken"]) <= 64
    assert first["ClientToken"] == second["ClientToken"]
    assert tag_dict(first["TagSpecifications"], "vpc-endpoint") == expected_tags("vpce.sts", "acme-basic-vpce-sts")
