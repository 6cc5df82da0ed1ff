"""hub-spoke: data-exfiltration protection with a transit gateway and Network Firewall."""


from __future__ import annotations

from typing import Any

import provision.topologies.aws_guardrails as aws_guardrails  # noqa: PLR0402  (the module, not its package)
from provision.clouds.aws import spec_guardrails, spec_hub
from provision.clouds.aws.spec_account import AWS_ACCOUNT
from provision.clouds.aws.context import Zones
from provision.clouds.aws.spec_guardrails import GUARDRAILS
from provision.clouds.aws.steps.endpoints import (
    GatewayEndpoint,
    InterfaceEndpoint,
)
from provision.clouds.aws.steps.firewall import Firewall, FirewallPolicy, RuleGroup
from provision.clouds.aws.steps.firewall_rules import (
    MetastoreRules,
    allow_control_plane,
    deny_protocols,
    domain_allowlist,
)
from provision.clouds.aws.steps.iam import CrossAccountPolicy, CrossAccountRole
from provision.clouds.aws.steps.network import (
    WORKSPACE_SG_RULES,
    ElasticIp,
    InternetGateway,
    NatGateway,
    SecurityGroup,
    Subnet,
    Vpc,
)
from provision.clouds.aws.steps.routes import EndpointInZone, RouteTable, VpcRoute
from provision.clouds.aws.steps.storage import (
    ROOT_BUCKET_REGION_NAMES,
    RootBucket,
    RootBucketPolicy,
)
from provision.clouds.aws.steps.transit import (
    TransitGateway,
    TransitGatewayAttachment,
    TransitGatewayRoute,
    TransitGatewayRouteTable,
)
from provision.clouds.databricks import spec as dbx_spec
from provision.clouds.databricks import spec_security
from provision.clouds.databricks.steps.account import (
    Credentials,
    Network,
    StorageConfiguration,
    Workspace,
)
from provision.clouds.databricks.steps.workspace import WorkspaceToken
from provision.orchestrator.step import Ref, Step
from provision.spec import Spec
from provision.topologies.registry import Topology
from provision.topologies.workspace_security import hardening

# The firewall's rule groups in evaluation order (priorities 100, 200, ...).
_RULE_GROUPS = ("fw.rg.deny", "fw.rg.controlplane", "fw.rg.metastore", "fw.rg.domains")


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
        steps += [Subnet(sid, vpc="hub.vpc", cidr=cidr, zones=Zones(hub.az_count), zone_index=i) for i, (sid, cidr) in enumerate(zip(ids, cidrs))]
    home_net = [hub.vpc_cidr, *(s.vpc_cidr for s in hub.spokes)]
    steps += [
        InternetGateway("hub.igw", vpc="hub.vpc"),
        ElasticIp("hub.eip.nat.0", needs=("hub.igw",)),
        NatGateway("hub.nat.0", subnet=public[0], eip="hub.eip.nat.0", igw="hub.igw"),
        # The firewall, in strict rule order (the policy's order below) with a default drop: no ICMP/FTP/SSH/UDP;
        # TLS to the control plane; TCP 3306 to the metastore only; TLS and HTTP to the allowed domains only.
        # HOME_NET is the hub and every spoke, so a new spoke converges the rule groups.
        RuleGroup("fw.rg.deny", capacity=100, body=deny_protocols(home_net)),
        RuleGroup("fw.rg.controlplane", capacity=100, body=allow_control_plane(hub.control_plane_cidr, home_net)),
        RuleGroup("fw.rg.metastore", capacity=100, body=MetastoreRules(hub.metastore_host, home_net, addresses=hub.metastore_addresses)),
        RuleGroup("fw.rg.domains", capacity=100, body=domain_allowlist([hub.web_app_host, hub.relay_host, *hub.allowed_domains], home_net)),
        FirewallPolicy("fw.policy", rule_groups=[*_RULE_GROUPS]),
        Firewall("fw", vpc="hub.vpc", subnets=firewall_subnets, policy="fw.policy", retire=("fw.policy", *_RULE_GROUPS)),
        TransitGateway("tgw"),
        TransitGatewayRouteTable("tgw.rt.spokes", tgw="tgw"),
        TransitGatewayRouteTable("tgw.rt.hub", tgw="tgw"),
        TransitGatewayAttachment("tgw.attach.hub", tgw="tgw", vpc="hub.vpc", subnets=tgw_subnets, route_table="tgw.rt.hub"),
        TransitGatewayRoute("tgw.route.spokes.default", route_table="tgw.rt.spokes", destination="0.0.0.0/0", attachment="tgw.attach.hub"),
        RouteTable("hub.rt.tgw", vpc="hub.vpc", subnets=tgw_subnets, default_route=("NatGatewayId", Ref("hub.nat.0", "nat_gateway_id"))),
        RouteTable("hub.rt.firewall", vpc="hub.vpc", subnets=firewall_subnets, default_route=("GatewayId", Ref("hub.igw", "igw_id"))),
    ]

    def endpoint_in_zone_of(subnet_step: str) -> EndpointInZone:
        return EndpointInZone(endpoints=Ref("fw", "endpoints"), zone=Ref(subnet_step, "zone"))

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
        steps += _spoke_network(spoke.name, spoke, zones)
    # One role for every spoke: its policy names every spoke's VPC and workspace security group, so a new
    # spoke converges it in place, before the spokes' credentials (which Databricks validates).
    labels = [spoke.name for spoke in hub.spokes]
    steps.append(CrossAccountPolicy(
        "iam.crossaccount.policy", role="iam.crossaccount",
        vpcs=[f"spoke.{label}.vpc" for label in labels], security_groups=[f"spoke.{label}.sg.workspace" for label in labels],
    ))
    for spoke in hub.spokes:
        steps += _spoke_workspace(spec, spoke.name, spoke, zones)
    steps += aws_guardrails.guardrails(spec)
    return steps


def _spoke_network(label: str, spoke, zones: range) -> list[Step]:
    p = f"spoke.{label}"
    private = [f"{p}.subnet.private.{i}" for i in zones]
    tgw_subnets = [f"{p}.subnet.tgw.{i}" for i in zones]
    steps: list[Step] = [Vpc(f"{p}.vpc", spoke.vpc_cidr)]
    steps += [Subnet(sid, vpc=f"{p}.vpc", cidr=cidr, zones=Zones(len(zones)), zone_index=i) for i, (sid, cidr) in enumerate(zip(private, spoke.private_subnet_cidrs))]
    steps += [Subnet(sid, vpc=f"{p}.vpc", cidr=cidr, zones=Zones(len(zones)), zone_index=i) for i, (sid, cidr) in enumerate(zip(tgw_subnets, spoke.tgw_subnet_cidrs))]
    attachment = f"tgw.attach.{label}"
    steps += [
        TransitGatewayAttachment(attachment, tgw="tgw", vpc=f"{p}.vpc", subnets=tgw_subnets, route_table="tgw.rt.spokes"),
        TransitGatewayRoute(f"tgw.route.hub.{label}", route_table="tgw.rt.hub", destination=spoke.vpc_cidr, attachment=attachment),
        # Spokes must not reach each other around the firewall (via the hub's NAT): drop spoke-to-spoke.
        TransitGatewayRoute(f"tgw.route.spokes.blackhole.{label}", route_table="tgw.rt.spokes", destination=spoke.vpc_cidr, attachment=None),
        *(VpcRoute(f"hub.route.public.{i}.{label}", route_table=f"hub.rt.public.{i}", destination=spoke.vpc_cidr,
                   target_key="TransitGatewayId", target=Ref("tgw", "tgw_id"), needs=("tgw.attach.hub",)) for i in zones),
        RouteTable(f"{p}.rt.private", vpc=f"{p}.vpc", subnets=private, default_route=("TransitGatewayId", Ref("tgw", "tgw_id")), needs=(attachment,)),
        SecurityGroup(f"{p}.sg.workspace", vpc=f"{p}.vpc", description="Databricks workspace", rules=WORKSPACE_SG_RULES),
        GatewayEndpoint(f"{p}.vpce.s3", vpc=f"{p}.vpc", service="s3", route_tables=[f"{p}.rt.private"]),
        InterfaceEndpoint(f"{p}.vpce.sts", vpc=f"{p}.vpc", service="sts", subnets=private, security_group=f"{p}.sg.workspace"),
        InterfaceEndpoint(f"{p}.vpce.kinesis", vpc=f"{p}.vpc", service="kinesis-streams", subnets=private, security_group=f"{p}.sg.workspace"),
        RootBucket(f"{p}.s3.root", bucket_name=spoke.bucket_name),
    ]
    return steps


def _spoke_workspace(spec: Spec, label: str, spoke, zones: range) -> list[Step]:
    p = f"spoke.{label}"
    private = [f"{p}.subnet.private.{i}" for i in zones]
    steps: list[Step] = [
        Credentials(f"{p}.dbx.credentials", role="iam.crossaccount.policy", suffix=f"{label}-credentials"),
        StorageConfiguration(f"{p}.dbx.storage", bucket=f"{p}.s3.root", suffix=f"{label}-storage"),
        # The egress path (TGW, firewall, routes, endpoints) is built alongside the workspace, as in the guide:
        # Databricks checks the subnets and group at creation and launches nothing before a cluster starts.
        Network(f"{p}.dbx.network", vpc=f"{p}.vpc", subnets=private, security_group=f"{p}.sg.workspace", suffix=f"{label}-network"),
        Workspace(f"{p}.dbx.workspace", workspace_name=spoke.workspace_name, pricing_tier=spec.databricks.pricing_tier,
                  credentials=f"{p}.dbx.credentials", storage=f"{p}.dbx.storage", network=f"{p}.dbx.network"),
    ]
    if spec.region in ROOT_BUCKET_REGION_NAMES:
        # SRA's restrictive policy on the spoke's root bucket once its workspace id exists.
        steps.append(RootBucketPolicy(f"{p}.s3.root.policy", bucket=f"{p}.s3.root", workspace=f"{p}.dbx.workspace"))
    if spec.hub is not None and spec.hub.workspace_token:
        steps.append(WorkspaceToken(f"{p}.dbx.token", workspace=f"{p}.dbx.workspace"))
    steps += hardening(spec, f"{p}.dbx.workspace", prefix=f"{p}.")
    return steps


def hub_lines(d: dict[str, Any]) -> list[str]:
    hub = d["hub"]
    allowed = ", ".join([hub["web_app_host"], hub["relay_host"], *hub["allowed_domains"]])
    metastore = ", ".join(hub.get("metastore_addresses") or ()) or f"{hub['metastore_host']} (resolved at each run)"
    lines = [f"hub vpc {hub['vpc_cidr']} in {hub['az_count']} zones; firewall (strict order, drops by default) allows {allowed}; TCP 3306 only to {metastore}"]
    lines += [f"spoke {s['name']}: vpc {s['vpc_cidr']}, workspace {s['workspace_name']}, bucket {s['bucket_name']}" for s in hub["spokes"]]
    return lines


TOPOLOGY = Topology(
    name="hub-spoke", cloud="aws",
    summary="data-exfiltration protection: spokes' egress through a transit gateway and Network Firewall in a hub",
    sections=(AWS_ACCOUNT, dbx_spec.section(), spec_hub.HUB, spec_security.WORKSPACE_SECURITY, GUARDRAILS),
    build=hub_spoke, immutable=("region", "topology", "databricks.account_id", "databricks.workspace_name"),
    workspaces=lambda spec: [(s.workspace_name, f"spoke.{s.name}.dbx.workspace") for s in spec.hub.spokes], example="hub-spoke.toml",
    describe=hub_lines, changes=lambda before, after: (
        spec_hub.changes(before, after) + spec_security.changes(before, after) + spec_guardrails.changes(before, after)
    ),
    refusals=(("network", 'does not apply to topology "hub-spoke": use [hub] and [[spokes]]'),),
)
