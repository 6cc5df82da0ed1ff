"""Topologies: the ordered step graphs that assemble the resource families into a deployment.

Step ids do not depend on whether a resource is made here or brought along (`[existing]` in the spec):
`vpc`, `subnet.private.N`, `sg.workspace`, `s3.root` and `iam.crossaccount` are the same ids either way,
so the Databricks steps read the same outputs.
"""

from __future__ import annotations

from typing import Callable

from provision.spec import Spec
from provision.steps.aws_endpoints import GatewayEndpoint, InterfaceEndpoint, PrivateDns
from provision.steps.aws_firewall import (
    Firewall,
    FirewallPolicy,
    RuleGroup,
    allow_control_plane,
    deny_protocols,
    domain_allowlist,
)
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
    VpcRoute,
    privatelink_rules,
)
from provision.steps.aws_transit import TransitGateway, TransitGatewayAttachment, TransitGatewayRoute, TransitGatewayRouteTable
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
from provision.steps.databricks_workspace import WorkspaceToken
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


def hub_spoke(spec: Spec) -> list[Step]:
    """Data-exfiltration protection: spokes' egress goes spoke -> transit gateway -> hub -> NAT -> firewall
    -> internet gateway, and the IGW's edge route table sends return traffic for the NAT subnets back
    through the firewall. Each spoke has its own workspace. Shared steps come first; each spoke's steps
    (including its routes in the hub's tables) are its own, so adding a spoke adds only them."""
    hub = spec.hub
    assert hub is not None
    zones = range(hub.az_count)
    steps: list[Step] = [CrossAccountRole("iam.crossaccount"), Vpc("hub.vpc", hub.vpc_cidr)]
    tgw_subnets = [f"hub.subnet.tgw.{i}" for i in zones]
    public = [f"hub.subnet.public.{i}" for i in zones]
    firewall_subnets = [f"hub.subnet.firewall.{i}" for i in zones]
    for ids, cidrs in ((tgw_subnets, hub.tgw_subnet_cidrs), (public, hub.public_subnet_cidrs), (firewall_subnets, hub.firewall_subnet_cidrs)):
        steps += [Subnet(sid, vpc="hub.vpc", cidr=cidr, zone_index=i) for i, (sid, cidr) in enumerate(zip(ids, cidrs))]
    home_net = [hub.vpc_cidr, *(s.vpc_cidr for s in hub.spokes)]
    steps += [
        InternetGateway("hub.igw", vpc="hub.vpc"),
        ElasticIp("hub.eip.nat.0", needs=("hub.igw",)),
        NatGateway("hub.nat.0", subnet=public[0], eip="hub.eip.nat.0", igw="hub.igw"),
        # The firewall: an allow-list of Databricks' and the spec's domains, no ICMP/FTP/SSH, and TLS to the
        # control plane. HOME_NET is the hub and every spoke, so a new spoke converges the rule groups.
        RuleGroup("fw.rg.domains", capacity=100, body=lambda ctx: domain_allowlist(
            [hub.web_app_host, hub.relay_host, hub.metastore_host, *hub.allowed_domains], home_net)),
        RuleGroup("fw.rg.deny", capacity=100, body=lambda ctx: deny_protocols(home_net)),
        RuleGroup("fw.rg.controlplane", capacity=100, body=lambda ctx: allow_control_plane(hub.control_plane_cidr, home_net)),
        FirewallPolicy("fw.policy", rule_groups=["fw.rg.domains", "fw.rg.deny", "fw.rg.controlplane"]),
        Firewall("fw", vpc="hub.vpc", subnets=firewall_subnets, policy="fw.policy"),
        TransitGateway("tgw"),
        TransitGatewayRouteTable("tgw.rt.spokes", tgw="tgw"),
        TransitGatewayRouteTable("tgw.rt.hub", tgw="tgw"),
        TransitGatewayAttachment("tgw.attach.hub", tgw="tgw", vpc="hub.vpc", subnets=tgw_subnets, route_table="tgw.rt.hub"),
        TransitGatewayRoute("tgw.route.spokes.default", route_table="tgw.rt.spokes", destination="0.0.0.0/0", attachment="tgw.attach.hub"),
        RouteTable("hub.rt.tgw", vpc="hub.vpc", subnets=tgw_subnets, default_route=("NatGatewayId", "hub.nat.0")),
        RouteTable("hub.rt.firewall", vpc="hub.vpc", subnets=firewall_subnets, default_route=("GatewayId", "hub.igw")),
    ]

    def endpoint_in_zone_of(subnet_step: str) -> Callable[[Context], str]:
        return lambda ctx: ctx.out("fw", "endpoints")[ctx.out(subnet_step, "zone")]

    steps += [
        RouteTable(f"hub.rt.public.{i}", vpc="hub.vpc", subnets=[public[i]], needs=("fw", "tgw.attach.hub"),
                   routes=(("0.0.0.0/0", "VpcEndpointId", endpoint_in_zone_of(public[i])),))
        for i in zones
    ]
    steps.append(RouteTable(
        "hub.rt.edge", vpc="hub.vpc", subnets=[], gateway="hub.igw", needs=("fw", *public),
        routes=tuple((cidr, "VpcEndpointId", endpoint_in_zone_of(public[i])) for i, cidr in enumerate(hub.public_subnet_cidrs)),
    ))
    for spoke in hub.spokes:
        steps += _spoke(spec, spoke.name, spoke, zones)
    return steps


def _spoke(spec: Spec, label: str, spoke, zones: range) -> list[Step]:
    p = f"spoke.{label}"
    private = [f"{p}.subnet.private.{i}" for i in zones]
    tgw_subnets = [f"{p}.subnet.tgw.{i}" for i in zones]
    steps: list[Step] = [Vpc(f"{p}.vpc", spoke.vpc_cidr)]
    steps += [Subnet(sid, vpc=f"{p}.vpc", cidr=cidr, zone_index=i) for i, (sid, cidr) in enumerate(zip(private, spoke.private_subnet_cidrs))]
    steps += [Subnet(sid, vpc=f"{p}.vpc", cidr=cidr, zone_index=i) for i, (sid, cidr) in enumerate(zip(tgw_subnets, spoke.tgw_subnet_cidrs))]
    attachment = f"tgw.attach.{label}"
    steps += [
        TransitGatewayAttachment(attachment, tgw="tgw", vpc=f"{p}.vpc", subnets=tgw_subnets, route_table="tgw.rt.spokes"),
        TransitGatewayRoute(f"tgw.route.hub.{label}", route_table="tgw.rt.hub", destination=spoke.vpc_cidr, attachment=attachment),
        # Spokes must not reach each other around the firewall (via the hub's NAT): drop spoke-to-spoke.
        TransitGatewayRoute(f"tgw.route.spokes.blackhole.{label}", route_table="tgw.rt.spokes", destination=spoke.vpc_cidr, attachment=None),
        *(VpcRoute(f"hub.route.public.{i}.{label}", route_table=f"hub.rt.public.{i}", destination=spoke.vpc_cidr,
                   target_key="TransitGatewayId", target_step="tgw", needs=("tgw.attach.hub",)) for i in zones),
        RouteTable(f"{p}.rt.private", vpc=f"{p}.vpc", subnets=private, default_route=("TransitGatewayId", "tgw"), needs=(attachment,)),
        SecurityGroup(f"{p}.sg.workspace", vpc=f"{p}.vpc", description="Databricks workspace", rules=WORKSPACE_SG_RULES),
        GatewayEndpoint(f"{p}.vpce.s3", vpc=f"{p}.vpc", service="s3", route_tables=[f"{p}.rt.private"]),
        InterfaceEndpoint(f"{p}.vpce.sts", vpc=f"{p}.vpc", service="sts", subnets=private, security_group=f"{p}.sg.workspace"),
        InterfaceEndpoint(f"{p}.vpce.kinesis", vpc=f"{p}.vpc", service="kinesis-streams", subnets=private, security_group=f"{p}.sg.workspace"),
        RootBucket(f"{p}.s3.root", bucket_name=spoke.bucket_name),
        Credentials(f"{p}.dbx.credentials", role="iam.crossaccount", suffix=f"{label}-credentials"),
        StorageConfiguration(f"{p}.dbx.storage", bucket=f"{p}.s3.root", suffix=f"{label}-storage"),
        Network(f"{p}.dbx.network", vpc=f"{p}.vpc", subnets=private, security_group=f"{p}.sg.workspace", suffix=f"{label}-network",
                # The whole egress path exists before the workspace, so its first clusters can reach the control plane.
                after=(f"{p}.rt.private", f"{p}.vpce.s3", f"{p}.vpce.sts", f"{p}.vpce.kinesis", f"tgw.route.hub.{label}",
                       "fw", "hub.rt.edge", *(f"hub.rt.public.{i}" for i in zones), *(f"hub.route.public.{i}.{label}" for i in zones))),
        Workspace(f"{p}.dbx.workspace", credentials=f"{p}.dbx.credentials", storage=f"{p}.dbx.storage", network=f"{p}.dbx.network",
                  workspace_name=spoke.workspace_name),
    ]
    if spec.hub is not None and spec.hub.workspace_token:
        steps.append(WorkspaceToken(f"{p}.dbx.token", workspace=f"{p}.dbx.workspace"))
    return steps


TOPOLOGIES: dict[str, Callable[[Spec], list[Step]]] = {"basic": basic, "privatelink": privatelink, "hub-spoke": hub_spoke}


def build(spec: Spec) -> list[Step]:
    return TOPOLOGIES[spec.topology](spec)
