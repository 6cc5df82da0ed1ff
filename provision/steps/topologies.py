"""Topologies: the ordered step graphs that assemble the resource families into a deployment.

Step ids do not depend on whether a resource is made here or brought along (`[existing]` in the spec):
`vpc`, `subnet.private.N`, `sg.workspace`, `s3.root` and `iam.crossaccount` are the same ids either way,
so the Databricks steps read the same outputs.
"""

from __future__ import annotations

from typing import Callable

from provision.spec import Spec
from provision.steps.aws_endpoints import GatewayEndpoint, InterfaceEndpoint, PrivateDns
from provision.steps.aws_iam import CrossAccountRole
from provision.steps.aws_network import (
    WORKSPACE_SG_RULES,
    ElasticIp,
    InternetGateway,
    NatGateway,
    RouteTable,
    SecurityGroup,
    Subnet,
    Vpc,
    privatelink_rules,
)
from provision.steps.aws_storage import RootBucket
from provision.steps.base import Context, Step
from provision.steps.databricks_account import (
    Credentials,
    Network,
    PrivateAccessSettings,
    StorageConfiguration,
    VpcEndpointRegistration,
    Workspace,
)
from provision.steps.existing import ExistingBucket, ExistingRole, ExistingSecurityGroup, ExistingSubnet, ExistingVpc


class Layout:
    """What the Databricks part of a topology needs to know about the AWS part."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.private_subnets: list[str] = []
        # Steps the workspace network must wait for although it does not reference them.
        self.network_after: list[str] = []

    def add(self, *steps: Step) -> None:
        self.steps.extend(steps)


def _identity(spec: Spec, layout: Layout) -> None:
    existing = spec.existing
    # The role first: IAM propagates while the network builds, so credentials rarely wait.
    if existing.cross_account_role_arn:
        layout.add(ExistingRole("iam.crossaccount", existing.cross_account_role_arn))
    else:
        layout.add(CrossAccountRole("iam.crossaccount"))
    if existing.bucket_name:
        layout.add(ExistingBucket("s3.root", existing.bucket_name))
    else:
        layout.add(RootBucket("s3.root"))


def _existing_network(spec: Spec, layout: Layout) -> None:
    existing = spec.existing
    assert existing.vpc_id and existing.security_group_id
    layout.add(ExistingVpc("vpc", existing.vpc_id))
    for i, subnet_id in enumerate(existing.subnet_ids):
        layout.add(ExistingSubnet(f"subnet.private.{i}", subnet_id, needs=("vpc",)))
        layout.private_subnets.append(f"subnet.private.{i}")
    layout.add(ExistingSecurityGroup("sg.workspace", existing.security_group_id, needs=("vpc",)))


def _new_network(spec: Spec, layout: Layout) -> None:
    """Customer-managed VPC: private subnets behind NAT, public subnets for the NAT, S3/STS/Kinesis endpoints."""
    net = spec.network
    assert net is not None
    zones = range(net.az_count)
    private = [f"subnet.private.{i}" for i in zones]
    public = [f"subnet.public.{i}" for i in zones]
    layout.add(Vpc("vpc", net.vpc_cidr))
    layout.add(*(Subnet(sid, vpc="vpc", cidr=cidr, zone_index=i) for i, (sid, cidr) in enumerate(zip(private, net.private_subnet_cidrs))))
    layout.add(*(Subnet(sid, vpc="vpc", cidr=cidr, zone_index=i) for i, (sid, cidr) in enumerate(zip(public, net.public_subnet_cidrs))))
    layout.add(
        InternetGateway("igw", vpc="vpc"),
        RouteTable("rt.public", vpc="vpc", subnets=public, default_route=("GatewayId", "igw")),
    )
    nat_count = net.az_count if net.nat == "per_az" else 1
    private_tables = []
    for n in range(nat_count):
        layout.add(
            # NAT needs the IGW, so teardown removes it (and unmaps its address) before the IGW detaches.
            ElasticIp(f"eip.nat.{n}", needs=("igw",)),
            NatGateway(f"nat.{n}", subnet=public[n], eip=f"eip.nat.{n}", igw="igw"),
        )
        served = [private[i] for i in zones if (i if nat_count > 1 else 0) == n]
        layout.add(RouteTable(f"rt.private.{n}", vpc="vpc", subnets=served, default_route=("NatGatewayId", f"nat.{n}")))
        private_tables.append(f"rt.private.{n}")
    layout.add(
        SecurityGroup("sg.workspace", vpc="vpc", description="Databricks workspace", rules=WORKSPACE_SG_RULES),
        GatewayEndpoint("vpce.s3", vpc="vpc", service="s3", route_tables=private_tables),
        InterfaceEndpoint("vpce.sts", vpc="vpc", service="sts", subnets=private, security_group="sg.workspace"),
        InterfaceEndpoint("vpce.kinesis", vpc="vpc", service="kinesis-streams", subnets=private, security_group="sg.workspace"),
    )
    layout.private_subnets = private
    layout.network_after = [*private_tables, "vpce.s3", "vpce.sts", "vpce.kinesis"]


def _workspace(layout: Layout, *, private_access: str | None = None, vpc_endpoints: tuple[str, str] | None = None) -> None:
    layout.add(
        Credentials("dbx.credentials", role="iam.crossaccount"),
        StorageConfiguration("dbx.storage", bucket="s3.root"),
        Network(
            "dbx.network", vpc="vpc", subnets=layout.private_subnets, security_group="sg.workspace",
            vpc_endpoints=vpc_endpoints, after=tuple(layout.network_after),
        ),
        Workspace(
            "dbx.workspace", credentials="dbx.credentials", storage="dbx.storage", network="dbx.network",
            private_access=private_access,
        ),
    )


def _network(spec: Spec, layout: Layout) -> None:
    if spec.existing.vpc_id:
        _existing_network(spec, layout)
    else:
        _new_network(spec, layout)


def basic(spec: Spec) -> list[Step]:
    """A workspace in a customer-managed VPC (new, or the user's existing one)."""
    layout = Layout()
    _identity(spec, layout)
    _network(spec, layout)
    _workspace(layout)
    return layout.steps


def privatelink(spec: Spec) -> list[Step]:
    """`basic` plus back-end PrivateLink, in one run: a subnet, route table and security group for the
    endpoints; the workspace (REST API) and relay endpoints; their registration with Databricks (which
    accepts them); private DNS once accepted; the network naming them; private access settings."""
    pl = spec.privatelink
    assert pl is not None
    layout = Layout()
    _identity(spec, layout)
    _network(spec, layout)
    workspace_subnets = list(layout.private_subnets)

    def endpoint_rules(ctx: Context):
        cidrs = [ctx.out(s, "cidr") for s in workspace_subnets] + [pl.endpoint_subnet_cidr]
        return privatelink_rules(cidrs)

    layout.add(
        Subnet("subnet.endpoints", vpc="vpc", cidr=pl.endpoint_subnet_cidr, zone_of=workspace_subnets[0]),
        RouteTable("rt.endpoints", vpc="vpc", subnets=["subnet.endpoints"], default_route=None),
        SecurityGroup(
            "sg.endpoints", vpc="vpc", description="Databricks back-end PrivateLink endpoints",
            rules=endpoint_rules, needs=tuple(workspace_subnets),
        ),
    )
    for purpose, service in (("workspace", pl.workspace_service), ("relay", pl.relay_service)):
        layout.add(
            InterfaceEndpoint(
                f"vpce.{purpose}", vpc="vpc", service=service, subnets=["subnet.endpoints"],
                security_group="sg.endpoints", private_dns=False,
            ),
            VpcEndpointRegistration(f"dbx.vpce.{purpose}", endpoint=f"vpce.{purpose}", purpose=purpose),
            PrivateDns(f"vpce.{purpose}.dns", endpoint=f"vpce.{purpose}", registration=f"dbx.vpce.{purpose}"),
        )
    layout.network_after += ["vpce.workspace.dns", "vpce.relay.dns"]
    layout.add(PrivateAccessSettings("dbx.pas", rest_registration="dbx.vpce.workspace"))
    _workspace(layout, private_access="dbx.pas", vpc_endpoints=("dbx.vpce.workspace", "dbx.vpce.relay"))
    return layout.steps


TOPOLOGIES: dict[str, Callable[[Spec], list[Step]]] = {"basic": basic, "privatelink": privatelink}


def build(spec: Spec) -> list[Step]:
    return TOPOLOGIES[spec.topology](spec)
