"""Topologies: the ordered step graphs that assemble the resource families into a deployment."""

from __future__ import annotations

from typing import Callable

from provision.spec import Spec
from provision.steps.aws_endpoints import GatewayEndpoint, InterfaceEndpoint
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
)
from provision.steps.aws_storage import RootBucket
from provision.steps.base import Step
from provision.steps.databricks_account import Credentials, Network, StorageConfiguration, Workspace


def basic(spec: Spec) -> list[Step]:
    """Customer-managed VPC: private subnets behind NAT, public subnets for the NAT, S3/STS/Kinesis
    endpoints, root bucket, cross-account role, and the Databricks objects that tie them together."""
    net = spec.network
    zones = range(net.az_count)
    steps: list[Step] = [
        # The role first: IAM propagates while the network builds, so credentials rarely wait.
        CrossAccountRole("iam.crossaccount"),
        RootBucket("s3.root"),
        Vpc("vpc", net.vpc_cidr),
    ]
    private = [f"subnet.private.{i}" for i in range(len(zones))]
    public = [f"subnet.public.{i}" for i in range(len(zones))]
    steps += [Subnet(sid, vpc="vpc", cidr=cidr, zone_index=i) for i, (sid, cidr) in enumerate(zip(private, net.private_subnet_cidrs))]
    steps += [Subnet(sid, vpc="vpc", cidr=cidr, zone_index=i) for i, (sid, cidr) in enumerate(zip(public, net.public_subnet_cidrs))]
    steps += [
        InternetGateway("igw", vpc="vpc"),
        RouteTable("rt.public", vpc="vpc", subnets=public, default_route=("GatewayId", "igw")),
    ]
    nat_count = len(zones) if net.nat == "per_az" else 1
    private_tables = []
    for n in range(nat_count):
        steps += [
            # NAT needs the IGW, so teardown removes it (and unmaps its address) before the IGW detaches.
            ElasticIp(f"eip.nat.{n}", needs=("igw",)),
            NatGateway(f"nat.{n}", subnet=public[n], eip=f"eip.nat.{n}", igw="igw"),
        ]
        served = [private[i] for i in range(len(zones)) if (i if nat_count > 1 else 0) == n]
        steps.append(RouteTable(f"rt.private.{n}", vpc="vpc", subnets=served, default_route=("NatGatewayId", f"nat.{n}")))
        private_tables.append(f"rt.private.{n}")
    steps += [
        SecurityGroup("sg.workspace", vpc="vpc", description="Databricks workspace", rules=WORKSPACE_SG_RULES),
        GatewayEndpoint("vpce.s3", vpc="vpc", service="s3", route_tables=private_tables),
        InterfaceEndpoint("vpce.sts", vpc="vpc", service="sts", subnets=private, security_group="sg.workspace"),
        InterfaceEndpoint("vpce.kinesis", vpc="vpc", service="kinesis-streams", subnets=private, security_group="sg.workspace"),
        Credentials("dbx.credentials", role="iam.crossaccount"),
        StorageConfiguration("dbx.storage", bucket="s3.root"),
        Network(
            "dbx.network", vpc="vpc", subnets=private, security_group="sg.workspace",
            after=(*private_tables, "vpce.s3", "vpce.sts", "vpce.kinesis"),
        ),
        Workspace("dbx.workspace", credentials="dbx.credentials", storage="dbx.storage", network="dbx.network"),
    ]
    return steps


TOPOLOGIES: dict[str, Callable[[Spec], list[Step]]] = {"basic": basic}


def build(spec: Spec) -> list[Step]:
    return TOPOLOGIES[spec.topology](spec)
