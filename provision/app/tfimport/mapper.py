"""Map the instances of a Terraform state onto the steps of the spec's topology, by what identifies each:
the VPC by its CIDR, a subnet by its VPC and CIDR, a gateway, NAT or route table by what it is attached to,
an endpoint by its service, a role and a bucket by the Databricks objects that name them, a Databricks object by
the id the others reference. "The only one" stands in only where nothing names the resource: a role or bucket is
taken as the only one of its type only when no Databricks object of the state names a role (a bucket), and a
Databricks object only when it names none or names what we mapped. An object that names another resource (a
bucket outside this state, say) never pulls in an unrelated one (a logs bucket) that `up` would then rewrite. Module paths and count/for_each keys play no
part: a guide's `module.vpc.aws_subnet.private[1]` and a flat `aws_subnet.db[1]` map alike.

Reads only the parsed state and the step graph; no cloud call (existence and tags are aws_tags.py's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provision.app.tfimport.tfstate import Instance, TerraformState
from provision.clouds.aws.steps.endpoints import (
    InterfaceEndpoint,
    PrivateDns,
    _Endpoint,
)
from provision.clouds.aws.steps.iam import CrossAccountPolicy, CrossAccountRole
from provision.clouds.aws.steps.network import (
    ElasticIp,
    InternetGateway,
    NatGateway,
    SecurityGroup,
    Subnet,
    Vpc,
)
from provision.clouds.aws.steps.routes import RouteTable, VpcRoute
from provision.clouds.aws.steps.storage import RootBucket, RootBucketPolicy
from provision.clouds.databricks.steps.account import (
    Credentials,
    Network,
    PrivateAccessSettings,
    StorageConfiguration,
    VpcEndpointRegistration,
    Workspace,
)
from provision.orchestrator.step import Step

# Settings of a resource that the resource's own step converges (they are not resources of their own to us).
BUCKET_SETTINGS = (
    "aws_s3_bucket_versioning", "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_ownership_controls", "aws_s3_bucket_acl",
)
ROUTE_PARTS = ("aws_route", "aws_route_table_association")
# Why some types never map onto a step.
NEVER = {
    "aws_default_security_group": "a VPC's default security group cannot become a step's own (EC2 never deletes it); "
                                  "`up` creates the workspace security group",
    "aws_default_route_table": "a VPC's main route table goes with the VPC; left as it is",
    "aws_main_route_table_association": "the VPC's main route table is left as it is",
    "databricks_token": "a token's value is a secret and is never read (only its id); this topology keeps no token, "
                        "so it stays in the workspace until you revoke it",
    "aws_iam_role_policy_attachment": "a managed policy attached to the role: provision keeps one inline policy; detach it "
                                      "by hand if it grants more",
}


@dataclass
class Match:
    step_id: str
    kind: str
    instance: Instance
    resource_id: str  # what the step's outputs must show once found (its first id)
    name: str | None = None  # the name the step finds its resource by (fact `names`), when found by name


@dataclass
class Mapping:
    matches: dict[str, Match] = field(default_factory=dict)
    absorbed: list[tuple[str, str, str]] = field(default_factory=list)  # (address, step id, what it is to the step)
    unmapped: list[tuple[str, str]] = field(default_factory=list)  # (address, why)
    remaining: list[str] = field(default_factory=list)  # steps with no Terraform resource: `up` creates (or adopts) them

    @property
    def names(self) -> dict[str, str]:
        return {m.step_id: m.name for m in self.matches.values() if m.name}

    def id_of(self, step_id: str | None) -> str | None:
        match = self.matches.get(step_id) if step_id else None
        return match.resource_id if match else None


def _endpoint_service(step: _Endpoint, region: str) -> str:
    return step.service if step.service.startswith("com.amazonaws.") else f"com.amazonaws.{region}.{step.service}"


class _Mapper:
    def __init__(self, state: TerraformState, steps: list[Step], region: str):
        self.state, self.steps, self.region = state, steps, region
        self.out = Mapping()
        self.used: set[int] = set()  # ids of instances already matched
        self.reasons: dict[int, str] = {}  # why an instance was not taken, where more is known than "no step"

    def free(self, *types: str, **where: Any) -> list[Instance]:
        return [
            i for i in self.state.of_type(*types)
            if id(i) not in self.used and all(i.get(k) == v for k, v in where.items())
        ]

    def take(self, step: Step, instance: Instance, resource_id: str | None, name: str | None = None) -> None:
        self.used.add(id(instance))
        self.out.matches[step.id] = Match(step.id, step.kind, instance, str(resource_id or instance.id), name)

    def named(self, step: Step, candidates: list[Instance], key: str, names: set[str], what: str) -> list[Instance]:
        """The candidates whose `key` is one of `names` (what the Databricks objects of the state name); all of
        them only when nothing is named. The others are reported with the reason, never taken as the only one."""
        if not names:
            return candidates
        chosen = [c for c in candidates if c.get(key) in names]
        if not chosen:
            for c in candidates:
                self.reasons[id(c)] = (
                    f"not {step.id}: the Terraform state's {what} names {', '.join(sorted(map(str, names)))}, not {c.get(key) or c.id}; "
                    "left as it is (`up` creates the step's own)"
                )
        return chosen

    def referencing(self, step: Step, candidates: list[Instance], key: str, expected: str | None, what: str) -> list[Instance]:
        """The Databricks objects that reference `expected` (what the producer step was mapped to). One that references
        something else, or anything while the producer is not mapped, is not this step's: it would point the
        deployment at a resource that is not ours."""
        chosen = []
        for c in candidates:
            value = c.get(key)
            if value is not None and expected is not None and str(value) == str(expected):
                chosen.append(c)
            elif value is None:
                continue
            else:
                self.reasons[id(c)] = (
                    f"not {step.id}: it names {what} {value}, "
                    + (f"not the imported {expected}" if expected is not None else "which this import does not map onto a step")
                    + "; left as it is (`up` creates the step's own)"
                )
        if chosen:
            return chosen
        # Only an object that names no such resource at all may stand in as the only one.
        return [c for c in candidates if c.get(key) is None]

    def one(self, step: Step, candidates: list[Instance], why: str) -> Instance | None:
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            self.out.unmapped += [(c.address, f"one of {len(candidates)} candidates for {step.id} ({why}); none taken") for c in candidates]
            for c in candidates:
                self.used.add(id(c))
        return None

    # the mapping, producers before the steps that reference them -----------------------------------
    def run(self) -> Mapping:
        for step in self.steps:
            self.map_step(step)
        self.leftovers()
        self.out.remaining = [s.id for s in self.steps if s.id not in self.out.matches and not s.external]
        return self.out

    def map_step(self, step: Step) -> None:
        m = self.out
        if isinstance(step, Vpc):
            found = self.one(step, self.free("aws_vpc", cidr_block=step.cidr), f"a VPC of CIDR {step.cidr}")
            if found:
                self.take(step, found, found.id)
        elif isinstance(step, Subnet):
            vpc = m.id_of(step.vpc_id.step)
            found = vpc and self.one(step, self.free("aws_subnet", vpc_id=vpc, cidr_block=step.cidr), f"subnet {step.cidr}")
            if found:
                self.take(step, found, found.id)
        elif isinstance(step, InternetGateway):
            vpc = m.id_of(step.vpc_id.step)
            found = vpc and self.one(step, self.free("aws_internet_gateway", vpc_id=vpc), "the VPC's internet gateway")
            if found:
                self.take(step, found, found.id)
        elif isinstance(step, NatGateway):
            subnet = m.id_of(step.subnet_id.step)
            found = subnet and self.one(step, self.free("aws_nat_gateway", subnet_id=subnet), "the NAT gateway of its subnet")
            if found:
                self.take(step, found, found.id)
                eip_step = next((s for s in self.steps if s.id == step.allocation_id.step), None)
                eip = [i for i in self.free("aws_eip") if found.get("allocation_id") in (i.id, i.get("allocation_id"))]
                if eip_step is not None and isinstance(eip_step, ElasticIp) and len(eip) == 1:
                    self.take(eip_step, eip[0], eip[0].get("allocation_id") or eip[0].id)
        elif isinstance(step, RouteTable):
            self.map_route_table(step)
        elif isinstance(step, VpcRoute):
            self.map_vpc_route(step)
        elif isinstance(step, SecurityGroup):
            self.map_security_group(step)
        elif isinstance(step, _Endpoint):
            vpc, service = m.id_of(step.vpc_id.step), _endpoint_service(step, self.region)
            found = vpc and self.one(step, self.free("aws_vpc_endpoint", vpc_id=vpc, service_name=service), f"the {service} endpoint")
            if found:
                self.take(step, found, found.id)
        elif isinstance(step, CrossAccountRole):
            arns = {c.get("role_arn") for c in self.state.of_type("databricks_mws_credentials")} - {None}
            roles = self.free("aws_iam_role")
            found = self.one(step, self.named(step, roles, "arn", arns, "credentials configuration"), "the role the credentials configuration names")
            if found:
                self.take(step, found, found.get("name") or found.id, name=found.get("name") or found.id)
        elif isinstance(step, CrossAccountPolicy):
            role = m.matches.get(step.role_name.step)
            role_name = role.name if role else None
            found = role_name and self.one(step, self.free("aws_iam_role_policy", role=role_name), f"the inline policy of role {role_name}")
            if found:
                self.take(step, found, found.get("name"), name=found.get("name"))
        elif isinstance(step, RootBucket):
            names = {c.get("bucket_name") for c in self.state.of_type("databricks_mws_storage_configurations")} - {None}
            buckets = self.free("aws_s3_bucket")
            found = self.one(step, self.named(step, buckets, "bucket", names, "storage configuration"), "the bucket the storage configuration names")
            if found:
                bucket = found.get("bucket") or found.id
                self.take(step, found, bucket, name=bucket)
                for setting in self.free(*BUCKET_SETTINGS, bucket=bucket):
                    self.used.add(id(setting))
                    m.absorbed.append((setting.address, step.id, "a setting `up` converges to the spec's"))
        elif isinstance(step, RootBucketPolicy):
            bucket = m.id_of(step.bucket.step)
            for policy in self.free("aws_s3_bucket_policy", bucket=bucket) if bucket else []:
                self.used.add(id(policy))
                m.absorbed.append((policy.address, step.id, "replaced by `up` with the restrictive root bucket policy"))
        elif isinstance(step, (Credentials, StorageConfiguration, Network, VpcEndpointRegistration, PrivateAccessSettings, Workspace)):
            self.map_databricks(step)
        elif isinstance(step, PrivateDns):
            pass  # a setting of its endpoint (private_dns_enabled): `up` reads and converges it

    def map_vpc_route(self, step: VpcRoute) -> None:
        """A route of a table another step owns (a private table's NAT route, a hub table's route to a spoke): the
        route table absorbed it when it mapped; it is this step's."""
        table = self.out.id_of(step.route_table_id.step)
        target = self.out.id_of(step.target.step)
        if table is None or target is None:
            return
        attribute = "".join(f"_{c.lower()}" if c.isupper() else c for c in step.target_key).lstrip("_")  # NatGatewayId -> nat_gateway_id
        for entry in list(self.out.absorbed):
            address, owner, _ = entry
            route = next((r for r in self.state.of_type("aws_route") if r.address == address), None)
            if (owner == step.route_table_id.step and route is not None and route.get("route_table_id") == table
                    and route.get("destination_cidr_block") == step.destination and route.get(attribute) == target):
                self.out.absorbed.remove(entry)
                self.take(step, route, f"{table}:{step.destination}")
                return

    def map_route_table(self, step: RouteTable) -> None:
        subnets = [self.out.id_of(r.step) for r in step.subnet_ids]
        if not subnets or None in subnets:
            return
        associations = self.state.of_type("aws_route_table_association")
        tables = {a.get("route_table_id") for a in associations if a.get("subnet_id") == subnets[0]}
        found = self.one(step, [t for t in self.free("aws_route_table") if t.id in tables], f"the route table of {step.subnet_ids[0].step}")
        if found:
            self.take(step, found, found.id)
            for part in self.free(*ROUTE_PARTS, route_table_id=found.id):
                self.used.add(id(part))
                self.out.absorbed.append((part.address, step.id, "a route or association `up` converges to the spec's"))

    def map_security_group(self, step: SecurityGroup) -> None:
        vpc = self.out.id_of(step.vpc_id.step)
        if vpc is None:
            return
        referenced: set[str] = set()
        for user in self.steps:
            if isinstance(user, Network) and user.group_id.step == step.id:
                for network in self.state.of_type("databricks_mws_networks"):
                    referenced |= set(network.get("security_group_ids") or [])
            if isinstance(user, InterfaceEndpoint) and user.group_id.step == step.id:
                for endpoint in self.state.of_type("aws_vpc_endpoint"):
                    if endpoint.get("service_name") == _endpoint_service(user, self.region):
                        referenced |= set(endpoint.get("security_group_ids") or [])
        groups = self.free("aws_security_group", vpc_id=vpc)
        found = self.one(step, [g for g in groups if g.id in referenced], f"the security group {step.id} stands for")
        if found:
            self.take(step, found, found.id)

    def map_databricks(self, step: Step) -> None:
        m = self.out
        if isinstance(step, Credentials):
            # Its role Ref names the role's policy step (the role with its permissions): the role is the iam.role match.
            arn = next((r.instance.get("arn") for r in m.matches.values() if r.kind == "iam.role"), None)
            cands = self.free("databricks_mws_credentials")
            found = self.one(step, self.referencing(step, cands, "role_arn", arn, "role"), "the credentials configuration")
            key, name = "credentials_id", "credentials_name"
        elif isinstance(step, StorageConfiguration):
            bucket = m.id_of(step.bucket.step)
            cands = self.free("databricks_mws_storage_configurations")
            found = self.one(step, self.referencing(step, cands, "bucket_name", bucket, "bucket"), "the storage configuration")
            key, name = "storage_configuration_id", "storage_configuration_name"
        elif isinstance(step, Network):
            found = self.one(step, self.free("databricks_mws_networks", vpc_id=m.id_of(step.vpc_id.step)), "the network of the VPC")
            key, name = "network_id", "network_name"
        elif isinstance(step, VpcEndpointRegistration):
            endpoint = m.id_of(step.endpoint_id.step)
            found = endpoint and self.one(step, self.free("databricks_mws_vpc_endpoint", aws_vpc_endpoint_id=endpoint), "its registration")
            key, name = "vpc_endpoint_id", "vpc_endpoint_name"
        elif isinstance(step, PrivateAccessSettings):
            found = self.one(step, self.free("databricks_mws_private_access_settings"), "the private access settings")
            key, name = "private_access_settings_id", "private_access_settings_name"
        else:
            assert isinstance(step, Workspace)
            cands = self.free("databricks_mws_workspaces")
            if step.network_id:
                cands = self.referencing(step, cands, "network_id", m.id_of(step.network_id.step), "network")
            found = self.one(step, cands, "the workspace")
            key, name = "workspace_id", "workspace_name"
        if found:
            self.take(step, found, found.get(key), name=found.get(name))

    def leftovers(self) -> None:
        for instance in self.state.instances:
            if id(instance) in self.used:
                continue
            why = self.reasons.get(id(instance)) or NEVER.get(instance.type) or (
                "no step of this topology stands for it; left as it is (keep managing it with Terraform, or `terraform state rm` it)"
            )
            if instance.type == "databricks_token" and instance.id:
                why = f"token {instance.id}: {why}"
            self.out.unmapped.append((instance.address, why))


def map_state(state: TerraformState, steps: list[Step], region: str) -> Mapping:
    """Which step each Terraform instance becomes, what a step absorbs (settings, routes), what maps to nothing."""
    return _Mapper(state, steps, region).run()
