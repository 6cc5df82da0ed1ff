"""List what the sandbox holds, independently of our state file: the ground truth for tests."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from typing import Any

import boto3

DBX_KINDS = ("credentials", "storage-configurations", "networks", "workspaces", "vpc-endpoints", "private-access-settings")


def _clients(info: Any, region: str) -> tuple[Any, Any, Any]:
    kwargs = dict(endpoint_url=info.aws_endpoint_url, region_name=region, aws_access_key_id="test", aws_secret_access_key="test")
    return boto3.client("ec2", **kwargs), boto3.client("s3", **kwargs), boto3.client("iam", **kwargs)


def _dbx(info: Any, account_id: str, kind: str) -> list[dict]:
    request = urllib.request.Request(
        f"{info.databricks_host}/api/2.0/accounts/{account_id}/{kind}",
        headers={"Authorization": f"Bearer {info.databricks_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def inventory(info: Any, *, account_id: str, region: str = "us-east-1") -> dict[str, list[dict]]:
    """Every non-default resource in the sandbox, by kind."""
    ec2, s3, iam = _clients(info, region)
    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")}
    found: dict[str, list[dict]] = {
        "vpc": [v for v in ec2.describe_vpcs()["Vpcs"] if v["VpcId"] not in default_vpcs],
        "subnet": [s for s in ec2.describe_subnets()["Subnets"] if s["VpcId"] not in default_vpcs],
        "internet_gateway": [
            g for g in ec2.describe_internet_gateways()["InternetGateways"]
            if not any(a["VpcId"] in default_vpcs for a in g.get("Attachments", []))
        ],
        "nat_gateway": [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] != "deleted"],
        "elastic_ip": ec2.describe_addresses()["Addresses"],
        "route_table": [
            t for t in ec2.describe_route_tables()["RouteTables"]
            if t["VpcId"] not in default_vpcs and not any(a.get("Main") for a in t.get("Associations", []))
        ],
        "security_group": [
            g for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["VpcId"] not in default_vpcs and g["GroupName"] != "default"
        ],
        "vpc_endpoint": [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["State"] not in ("deleted",)],
        "bucket": s3.list_buckets().get("Buckets", []),
        "iam_role": iam.list_roles()["Roles"],
    }
    for kind in DBX_KINDS:
        found[f"databricks_{kind}"] = _dbx(info, account_id, kind)
    return found


def counts(found: dict[str, list[dict]]) -> Counter:
    return Counter({kind: len(items) for kind, items in found.items() if items})


def untagged(found: dict[str, list[dict]], deployment: str) -> list[str]:
    """EC2 resources without our ownership tag for `deployment` (there must be none)."""
    missing = []
    for kind in ("vpc", "subnet", "internet_gateway", "nat_gateway", "elastic_ip", "route_table", "security_group", "vpc_endpoint"):
        for item in found[kind]:
            tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
            if tags.get("provision:deployment") != deployment:
                missing.append(f"{kind}:{item}")
    return missing


# What the basic example (2 zones, one NAT) builds, resource by resource.
BASIC_SINGLE_NAT = Counter(
    {
        "vpc": 1,
        "subnet": 4,
        "internet_gateway": 1,
        "nat_gateway": 1,
        "elastic_ip": 1,
        "route_table": 2,
        "security_group": 1,
        "vpc_endpoint": 3,
        "bucket": 1,
        "iam_role": 1,
        "databricks_credentials": 1,
        "databricks_storage-configurations": 1,
        "databricks_networks": 1,
        "databricks_workspaces": 1,
    }
)
