"""Preflight: check what the spec names as existing, with reads only, before anything is created.

Every problem names the spec field, the resource and the reason, and all are reported at once.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable

from provision.clouds.aws.errors import error_code, is_not_found
from provision.clouds.aws.spec import PRIVATE_NETMASK_RANGE
from provision.errors import FieldProblem, PreflightError
from provision.spec import Spec


def _read(call: Callable[[], Any]) -> Any | None:
    """The result, or None when AWS says the resource does not exist."""
    try:
        return call()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def check(spec: Spec, aws: Callable[[str], Any], source: str, call: Callable[[Callable[[], Any], str], Any]) -> None:
    """Raise PreflightError listing every problem with the existing resources the spec names.
    `aws(service)` gives a client; `call(fn, what)` runs a read with the retry policy."""
    problems: list[FieldProblem] = []
    existing = spec.existing
    ec2 = aws("ec2") if existing.vpc_id else None

    if existing.vpc_id and ec2 is not None:
        vpc_id = existing.vpc_id
        vpcs = call(lambda: _read(lambda: ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]), "preflight vpc")
        if not vpcs:
            problems.append(FieldProblem("existing.vpc_id", f"VPC {vpc_id} not found in {spec.region}"))
        else:
            for attribute, key in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
                value = call(lambda: ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)[key]["Value"], "preflight vpc dns")
                if not value:
                    problems.append(FieldProblem("existing.vpc_id", f"VPC {vpc_id} has {attribute} off; Databricks needs DNS support and DNS hostnames on"))
            problems += _subnets(spec, ec2, call, vpcs[0])
            problems += _security_group(spec, ec2, call)

    if existing.bucket_name:
        s3 = aws("s3")
        bucket = existing.bucket_name
        try:
            call(lambda: s3.head_bucket(Bucket=bucket), "preflight bucket")
        except Exception as exc:
            if is_not_found(exc):
                problems.append(FieldProblem("existing.bucket_name", f"bucket {bucket} not found"))
            elif error_code(exc) in ("403", "AccessDenied"):
                problems.append(FieldProblem("existing.bucket_name", f"bucket {bucket} is not accessible with these AWS credentials"))
            else:
                raise
        else:
            region = call(lambda: s3.get_bucket_location(Bucket=bucket).get("LocationConstraint"), "preflight bucket region") or "us-east-1"
            region = {"EU": "eu-west-1"}.get(region, region)  # legacy eu-west-1 buckets answer "EU"
            if region != spec.region:
                problems.append(FieldProblem("existing.bucket_name", f"bucket {bucket} is in {region}, not {spec.region}"))

    if existing.cross_account_role_arn:
        iam = aws("iam")
        name = existing.cross_account_role_arn.rsplit("/", 1)[-1]
        role = call(lambda: _read(lambda: iam.get_role(RoleName=name)["Role"]), "preflight role")
        if role is None:
            problems.append(FieldProblem("existing.cross_account_role_arn", f"IAM role {name} not found"))
        elif role["Arn"] != existing.cross_account_role_arn:
            problems.append(FieldProblem("existing.cross_account_role_arn", f"role {name} has ARN {role['Arn']}, not the one given"))

    if spec.privatelink is not None:
        problems += _endpoint_services(spec, aws("ec2"), call)
        if existing.vpc_id and not problems:
            problems += _conflicting_private_dns(spec, aws("ec2"), call)

    if problems:
        raise PreflightError(source, problems)


def _endpoint_services(spec: Spec, ec2: Any, call: Callable) -> list[FieldProblem]:
    """The Databricks endpoint services must exist in the region and take connections by acceptance."""
    assert spec.privatelink is not None
    problems = []
    for key, name in (("workspace_service", spec.privatelink.workspace_service), ("relay_service", spec.privatelink.relay_service)):
        try:
            details = call(lambda: ec2.describe_vpc_endpoint_services(ServiceNames=[name])["ServiceDetails"], "preflight endpoint service")
        except Exception as exc:
            if error_code(exc) == "InvalidServiceName":
                details = []
            else:
                raise
        if not details:
            problems.append(FieldProblem(f"privatelink.{key}", f"endpoint service {name} does not exist in {spec.region}"))
        elif not details[0].get("AcceptanceRequired", True):
            problems.append(FieldProblem(f"privatelink.{key}", f"endpoint service {name} does not require acceptance; it is not a Databricks service"))
    return problems


def _subnets(spec: Spec, ec2: Any, call: Callable, vpc: dict[str, Any]) -> list[FieldProblem]:
    problems = []
    found = []
    for i, subnet_id in enumerate(spec.existing.subnet_ids):
        subnets = call(lambda: _read(lambda: ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]), "preflight subnet")
        where = f"existing.subnet_ids[{i}]"
        if not subnets:
            problems.append(FieldProblem(where, f"subnet {subnet_id} not found in {spec.region}"))
            continue
        subnet = subnets[0]
        found.append(subnet)
        if subnet["VpcId"] != vpc["VpcId"]:
            problems.append(FieldProblem(where, f"subnet {subnet_id} is in {subnet['VpcId']}, not existing.vpc_id {vpc['VpcId']}"))
        prefix = ipaddress.IPv4Network(subnet["CidrBlock"]).prefixlen
        low, high = PRIVATE_NETMASK_RANGE
        if not low <= prefix <= high:
            problems.append(FieldProblem(where, f"subnet {subnet_id} is /{prefix}, outside the Databricks limit /{low}-/{high}"))
    zones = {s["AvailabilityZone"] for s in found}
    if len(found) == len(spec.existing.subnet_ids) and len(zones) < 2:
        problems.append(FieldProblem("existing.subnet_ids", f"subnets must be in at least 2 distinct availability zones; all are in {', '.join(sorted(zones))}"))
    elif len(zones) < len(found):
        problems.append(FieldProblem("existing.subnet_ids", "two of the subnets share an availability zone; Databricks needs each in a distinct zone"))
    if spec.privatelink is not None:
        problems += _endpoint_subnet(spec, ec2, call, vpc)
    return problems


def _endpoint_subnet(spec: Spec, ec2: Any, call: Callable, vpc: dict[str, Any]) -> list[FieldProblem]:
    assert spec.privatelink is not None
    cidr = ipaddress.IPv4Network(spec.privatelink.endpoint_subnet_cidr)
    blocks = [ipaddress.IPv4Network(a["CidrBlock"]) for a in vpc.get("CidrBlockAssociationSet", []) if a.get("CidrBlockState", {}).get("State", "associated") == "associated"]
    blocks = blocks or [ipaddress.IPv4Network(vpc["CidrBlock"])]
    where = "privatelink.endpoint_subnet_cidr"
    if not any(cidr.subnet_of(block) for block in blocks):
        return [FieldProblem(where, f"{cidr} is not inside VPC {vpc['VpcId']} ({', '.join(map(str, blocks))})")]
    others = call(lambda: ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"], "preflight vpc subnets")
    # Our own endpoint subnet from an earlier run overlaps itself: that is not a conflict.
    clashes = [s for s in others if cidr.overlaps(ipaddress.IPv4Network(s["CidrBlock"])) and not _ours(s, spec.name)]
    return [FieldProblem(where, f"{cidr} overlaps subnet {s['SubnetId']} ({s['CidrBlock']}) of VPC {vpc['VpcId']}") for s in clashes]


def _ours(subnet: dict[str, Any], deployment: str) -> bool:
    tags = {t["Key"]: t["Value"] for t in subnet.get("Tags", [])}
    return tags.get("provision:deployment") == deployment and tags.get("provision:step") == "subnet.endpoints"


def _security_group(spec: Spec, ec2: Any, call: Callable) -> list[FieldProblem]:
    group_id, vpc_id = spec.existing.security_group_id, spec.existing.vpc_id
    groups = call(lambda: _read(lambda: ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]), "preflight security group")
    if not groups:
        return [FieldProblem("existing.security_group_id", f"security group {group_id} not found in {spec.region}")]
    if groups[0]["VpcId"] != vpc_id:
        return [FieldProblem("existing.security_group_id", f"security group {group_id} is in {groups[0]['VpcId']}, not existing.vpc_id {vpc_id}")]
    return []


def _conflicting_private_dns(spec: Spec, ec2: Any, call: Callable) -> list[FieldProblem]:
    """An existing VPC may already have an endpoint, with private DNS, to a Databricks service (another
    workspace's). AWS then refuses private DNS on a second one, so say so before creating anything."""
    assert spec.privatelink is not None
    problems = []
    for key, name in (("workspace_service", spec.privatelink.workspace_service), ("relay_service", spec.privatelink.relay_service)):
        filters = [
            {"Name": "vpc-id", "Values": [spec.existing.vpc_id]}, {"Name": "service-name", "Values": [name]},
            {"Name": "vpc-endpoint-state", "Values": ["pendingAcceptance", "pending", "available"]},
        ]
        endpoints = call(lambda: ec2.describe_vpc_endpoints(Filters=filters)["VpcEndpoints"], "preflight existing endpoints")
        for endpoint in endpoints:
            tags = {t["Key"]: t["Value"] for t in endpoint.get("Tags", [])}
            if endpoint.get("PrivateDnsEnabled") and tags.get("provision:deployment") != spec.name:
                problems.append(FieldProblem(
                    f"privatelink.{key}",
                    f"VPC {spec.existing.vpc_id} already has endpoint {endpoint['VpcEndpointId']} to {name} with private DNS; "
                    "AWS allows only one, so this deployment cannot add its own (reusing existing endpoints is not supported yet)",
                ))
    return problems
