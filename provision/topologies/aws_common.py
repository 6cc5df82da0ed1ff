"""Graph fragments every AWS topology shares: the identity (cross-account role, root bucket), the workspace
network (new or existing) and the Databricks objects that make a workspace of them.

Step ids do not depend on whether a resource is made here or brought along (`[existing]` in the spec):
`vpc`, `subnet.private.N`, `sg.workspace`, `s3.root` and `iam.crossaccount` are the same ids either way,
so the Databricks steps read the same outputs.
"""


from __future__ import annotations

from typing import Any, Callable

import provision.topologies.governance as governance  # noqa: PLR0402  (the module, not its package)
from provision.clouds.aws import preflight as checks
from provision.clouds.aws import spec_guardrails, spec_netsec
from provision.clouds.aws.context import Zones
from provision.clouds.aws.steps.endpoints import (
    GatewayEndpoint,
    InterfaceEndpoint,
)
from provision.clouds.aws.steps.existing import (
    ExistingBucket,
    ExistingRole,
    ExistingSecurityGroup,
    ExistingSubnet,
    ExistingVpc,
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
from provision.clouds.aws.steps.routes import RouteTable, VpcRoute
from provision.clouds.aws.steps.storage import (
    ROOT_BUCKET_REGION_NAMES,
    RootBucket,
    RootBucketPolicy,
)
from provision.clouds.databricks import spec_security
from provision.clouds.databricks.steps.account import (
    Credentials,
    Network,
    StorageConfiguration,
    Workspace,
)
from provision.orchestrator.step import Ref, Step
from provision.spec import Spec


class Layout:
    """What the Databricks part of a topology needs to know about the AWS part."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.private_subnets: list[str] = []
        # Steps the workspace network must wait for although it does not reference them.
        self.network_after: list[str] = []
        # Customer-managed keys ([encryption], topologies/aws_encryption.py), by the step that makes each:
        # KMS key steps produce "key_arn"; Databricks key configuration steps produce "customer_managed_key_id".
        self.bucket_key: str | None = None  # KMS key of the root bucket's SSE-KMS
        self.logs_key: str | None = None  # KMS key of the flow-log group
        self.managed_services_key: str | None = None  # Databricks key configuration, MANAGED_SERVICES
        self.storage_key: str | None = None  # Databricks key configuration, STORAGE
        # Steps the workspace must wait for (and outlive) although it does not reference them (governance.connectivity).
        self.workspace_after: list[str] = []

    def add(self, *steps: Step) -> None:
        self.steps.extend(steps)


def identity(spec: Spec, layout: Layout) -> None:
    existing = spec.existing
    # The role first: IAM propagates while the network builds, so credentials rarely wait.
    if existing.cross_account_role_arn:
        layout.add(ExistingRole("iam.crossaccount", existing.cross_account_role_arn))
    else:
        layout.add(CrossAccountRole("iam.crossaccount"))


def storage(spec: Spec, layout: Layout) -> None:
    """The root bucket (after the keys: its encryption may name one)."""
    existing = spec.existing
    if existing.bucket_name:
        layout.add(ExistingBucket("s3.root", existing.bucket_name))
    else:
        layout.add(RootBucket("s3.root", bucket_name=spec.storage.bucket_name, kms_key=layout.bucket_key))


def existing_network(spec: Spec, layout: Layout) -> None:
    existing = spec.existing
    assert existing.vpc_id and existing.security_group_id
    layout.add(ExistingVpc("vpc", existing.vpc_id))
    for i, subnet_id in enumerate(existing.subnet_ids):
        layout.add(ExistingSubnet(f"subnet.private.{i}", subnet_id, needs=("vpc",)))
        layout.private_subnets.append(f"subnet.private.{i}")
    layout.add(ExistingSecurityGroup("sg.workspace", existing.security_group_id, needs=("vpc",)))


def new_network(spec: Spec, layout: Layout) -> None:
    """Customer-managed VPC: private subnets behind NAT, public subnets for the NAT, S3/STS/Kinesis endpoints."""
    from provision.clouds.aws import endpoint_policies as ep

    net = spec.network
    assert net is not None
    # [network_security]: SRA's restrictive endpoint policies, or AWS's full-access default when turned off;
    # without the section the endpoints' policies are left as they are.
    ns = spec.network_security
    policies: dict[str, Any] = {"s3": None, "sts": None, "kinesis": None}
    if ns is not None:
        restrictive = ns.endpoint_policies
        policies = {
            "s3": ep.S3GatewayPolicy(Ref("s3.root", "bucket"), ns.s3_buckets) if restrictive else ep.FULL_ACCESS,
            "sts": ep.StsPolicy() if restrictive else ep.FULL_ACCESS,
            "kinesis": ep.kinesis_policy(spec.region) if restrictive else ep.FULL_ACCESS,
        }
    zones = range(net.az_count)
    private = [f"subnet.private.{i}" for i in zones]
    public = [f"subnet.public.{i}" for i in zones]
    layout.add(Vpc("vpc", net.vpc_cidr))
    azs = Zones(net.az_count, net.availability_zones)
    layout.add(*(Subnet(sid, vpc="vpc", cidr=cidr, zones=azs, zone_index=i) for i, (sid, cidr) in enumerate(zip(private, net.private_subnet_cidrs))))
    layout.add(*(Subnet(sid, vpc="vpc", cidr=cidr, zones=azs, zone_index=i) for i, (sid, cidr) in enumerate(zip(public, net.public_subnet_cidrs))))
    layout.add(
        InternetGateway("igw", vpc="vpc"),
        RouteTable("rt.public", vpc="vpc", subnets=public, default_route=("GatewayId", Ref("igw", "igw_id"))),
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
        # The table and its NAT route are two steps: the S3 gateway endpoint needs only the table, so it is not
        # queued behind the NAT gateway, and a teardown removes the route, then the NAT and the endpoint together.
        layout.add(
            RouteTable(f"rt.private.{n}", vpc="vpc", subnets=served),
            VpcRoute(f"route.private.{n}.nat", route_table=f"rt.private.{n}", destination="0.0.0.0/0",
                     target_key="NatGatewayId", target=Ref(f"nat.{n}", "nat_gateway_id")),
        )
        private_tables.append(f"rt.private.{n}")
    layout.add(
        SecurityGroup("sg.workspace", vpc="vpc", description="Databricks workspace", rules=WORKSPACE_SG_RULES),
        GatewayEndpoint("vpce.s3", vpc="vpc", service="s3", route_tables=private_tables, policy=policies["s3"]),
        InterfaceEndpoint("vpce.sts", vpc="vpc", service="sts", subnets=private, security_group="sg.workspace", policy=policies["sts"]),
        InterfaceEndpoint(
            "vpce.kinesis", vpc="vpc", service="kinesis-streams", subnets=private, security_group="sg.workspace",
            policy=policies["kinesis"],
        ),
    )
    layout.private_subnets = private
    # The egress path (NAT routes, endpoints) is built alongside the workspace, not before it: Databricks
    # validates the subnets and security group when the workspace is created and launches nothing until a
    # cluster starts, and `up` finishes only once every step is done. Making the network wait for it put a
    # NAT gateway and an endpoint (over three minutes) in front of the workspace's own six.
    layout.network_after = []


def permissions(spec: Spec, layout: Layout) -> str:
    """The cross-account role's scoped policy, once the VPC and the workspace security group exist (not for
    the user's own role: its policies are theirs). Returns the step that stands for the role with its
    permissions, which the credentials configuration (Databricks validates the role) must wait for."""
    if spec.existing.cross_account_role_arn:
        return "iam.crossaccount"
    layout.add(CrossAccountPolicy("iam.crossaccount.policy", role="iam.crossaccount", vpcs=["vpc"], security_groups=["sg.workspace"]))
    return "iam.crossaccount.policy"


def restrictive_bucket_policy(spec: Spec, layout: Layout) -> None:
    """SRA's restrictive root bucket policy once the workspace id exists; never on the user's own bucket.
    Only where the region's root bucket prefix is known (every region Databricks lists)."""
    if not spec.existing.bucket_name and spec.region in ROOT_BUCKET_REGION_NAMES:
        layout.add(RootBucketPolicy("s3.root.policy", bucket="s3.root", workspace="dbx.workspace"))


def workspace(spec: Spec, layout: Layout, *, private_access: str | None = None, vpc_endpoints: tuple[str, str] | None = None) -> None:
    role = permissions(spec, layout)
    layout.add(*governance.connectivity(spec))
    layout.workspace_after += governance.workspace_after(spec)
    layout.add(
        Credentials("dbx.credentials", role=role),
        StorageConfiguration("dbx.storage", bucket="s3.root"),
        Network(
            "dbx.network", vpc="vpc", subnets=layout.private_subnets, security_group="sg.workspace",
            vpc_endpoints=vpc_endpoints, after=tuple(layout.network_after),
        ),
        Workspace(
            "dbx.workspace", workspace_name=spec.databricks.workspace_name, pricing_tier=spec.databricks.pricing_tier,
            credentials="dbx.credentials", storage="dbx.storage", network="dbx.network", private_access=private_access,
            managed_services_key=layout.managed_services_key, storage_key=layout.storage_key, after=tuple(layout.workspace_after),
        ),
    )
    restrictive_bucket_policy(spec, layout)


def network(spec: Spec, layout: Layout) -> None:
    if spec.existing.vpc_id:
        existing_network(spec, layout)
    else:
        new_network(spec, layout)


# What basic and privatelink declare alike ------------------------------------------------------------


def vpc_lines(d: dict[str, Any]) -> list[str]:
    net, existing, lines = d["network"], d["existing"], []
    if net:
        zones = ", ".join(net["availability_zones"]) or f"the region's first {net['az_count']}, resolved on the first run"
        lines += [
            f"vpc {net['vpc_cidr']}; zones {zones}; nat {net['nat']}",
            f"private subnets {', '.join(net['private_subnet_cidrs'])}",
            f"public subnets  {', '.join(net['public_subnet_cidrs'])}",
        ]
    else:
        lines.append(f"existing vpc {existing['vpc_id']}, subnets {', '.join(existing['subnet_ids'])}, security group {existing['security_group_id']}")
    if d.get("privatelink"):
        pl = d["privatelink"]
        lines.append(f"privatelink endpoint subnet {pl['endpoint_subnet_cidr']}; workspace {pl['workspace_service']}; relay {pl['relay_service']}")
    bucket = d["storage"]
    lines.append(f"root bucket {bucket['bucket_name']}" + (" (existing)" if bucket["existing"] else ""))
    if existing["cross_account_role_arn"]:
        lines.append(f"cross-account role {existing['cross_account_role_arn']} (existing)")
    return lines + governance.describe_lines(d)


def _needs_preflight(spec: Spec) -> bool:
    existing = spec.existing
    return bool(existing.vpc_id or existing.bucket_name or existing.cross_account_role_arn or spec.privatelink)


def aws_preflight(spec: Spec, clients: Any, source: str, call: Callable[[Callable[[], Any], str], Any]) -> None:
    from provision.clouds.aws import preflight_kms  # the keys of [encryption.existing]

    if _needs_preflight(spec):
        checks.check(spec, clients["aws"].client, source, call)
    if preflight_kms.needed(spec):
        preflight_kms.check(spec, clients["aws"].client, source, call)


def one_workspace(spec: Spec) -> list[tuple[str, str]]:
    return [(spec.databricks.workspace_name, "dbx.workspace")]


VPC_IMMUTABLE = (
    "region", "topology", "network", "existing", "storage.bucket_name", "databricks.account_id", "databricks.workspace_name",
    # A workspace's keys are set on create (and a key ends only after a waiting period): which keys there
    # are, and whose, cannot change under a live deployment. The deletion window may.
    "encryption.managed_services", "encryption.workspace_storage", "encryption.separate_keys", "encryption.existing",
)


def security_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What a live basic or privatelink deployment may not do with its security and governance sections: turn
    off what made resources ([network_security], [guardrails], a workspace security setting, a governance
    object). ([encryption]'s keys are immutable.)"""
    return (spec_netsec.changes(before, after) + spec_guardrails.changes(before, after) + spec_security.changes(before, after)
            + governance.changes(before, after))

