"""List what the sandbox holds, independently of any state file: the ground truth for tests and for
the crash-matrix script. Everything is read through the real AWS and Databricks APIs."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from typing import Any

DBX_KINDS = ("credentials", "storage-configurations", "networks", "workspaces", "vpc-endpoints", "private-access-settings")
OWNED_EC2 = ("vpc", "subnet", "internet_gateway", "nat_gateway", "elastic_ip", "route_table", "security_group", "vpc_endpoint")


def _get(info: Any, path: str) -> Any:
    request = urllib.request.Request(f"{info.databricks_host}{path}", headers={"Authorization": f"Bearer {info.databricks_token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _dbx(info: Any, account_id: str, kind: str) -> list[dict]:
    return _get(info, f"/api/2.0/accounts/{account_id}/{kind}")


def inventory(info: Any, *, account_id: str, region: str = "us-east-1") -> dict[str, list[dict]]:
    """Every non-default resource in the sandbox, by kind (live ones: deleted NATs, endpoints, TGW
    resources and secrets scheduled for deletion are history, not inventory)."""
    import boto3

    kwargs = dict(endpoint_url=info.aws_endpoint_url, region_name=region, aws_access_key_id="test", aws_secret_access_key="test")
    ec2, s3, iam = boto3.client("ec2", **kwargs), boto3.client("s3", **kwargs), boto3.client("iam", **kwargs)
    nfw, secrets = boto3.client("network-firewall", **kwargs), boto3.client("secretsmanager", **kwargs)
    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")}

    def live(items: list[dict]) -> list[dict]:
        return [i for i in items if i.get("State") not in ("deleted", "deleting", "failed")]

    found: dict[str, list[dict]] = {
        "vpc": [v for v in ec2.describe_vpcs()["Vpcs"] if v["VpcId"] not in default_vpcs],
        "subnet": [s for s in ec2.describe_subnets()["Subnets"] if s["VpcId"] not in default_vpcs],
        "internet_gateway": [
            g for g in ec2.describe_internet_gateways()["InternetGateways"]
            if not any(a["VpcId"] in default_vpcs for a in g.get("Attachments", []))
        ],
        "nat_gateway": [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] not in ("deleted", "failed")],
        "elastic_ip": ec2.describe_addresses()["Addresses"],
        "route_table": [
            t for t in ec2.describe_route_tables()["RouteTables"]
            if t["VpcId"] not in default_vpcs and not any(a.get("Main") for a in t.get("Associations", []))
        ],
        "security_group": [
            g for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["VpcId"] not in default_vpcs and g["GroupName"] != "default"
        ],
        # Firewall endpoints are the firewall's own (requester-managed); they are counted with it.
        "vpc_endpoint": [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
                         if e["State"] not in ("deleted",) and e.get("VpcEndpointType") != "GatewayLoadBalancer"],
        "bucket": s3.list_buckets().get("Buckets", []),
        "iam_role": iam.list_roles()["Roles"],
        "transit_gateway": live(ec2.describe_transit_gateways()["TransitGateways"]),
        "tgw_attachment": live(ec2.describe_transit_gateway_vpc_attachments()["TransitGatewayVpcAttachments"]),
        "tgw_route_table": live(ec2.describe_transit_gateway_route_tables()["TransitGatewayRouteTables"]),
        "firewall": nfw.list_firewalls()["Firewalls"],
        "firewall_policy": nfw.list_firewall_policies()["FirewallPolicies"],
        "rule_group": nfw.list_rule_groups()["RuleGroups"],
        "secret": [s for s in secrets.list_secrets()["SecretList"] if not s.get("DeletedDate")],
    }
    for kind in DBX_KINDS:
        found[f"databricks_{kind}"] = _dbx(info, account_id, kind)
    # Workspace tokens, through each running workspace's own API (an orphaned token is a leak too).
    found["databricks_tokens"] = [
        {**token, "workspace_id": ws["workspace_id"]}
        for ws in found["databricks_workspaces"] if ws.get("workspace_status") == "RUNNING"
        for token in _get(info, f"/workspaces/{ws['deployment_name']}/api/2.0/token/list").get("token_infos", [])
    ]
    return found


def counts(found: dict[str, list[dict]]) -> Counter:
    return Counter({kind: len(items) for kind, items in found.items() if items})


def untagged(found: dict[str, list[dict]], deployment: str) -> list[str]:
    """EC2 resources without our ownership tag for `deployment` (there must be none)."""
    missing = []
    for kind in OWNED_EC2:
        for item in found[kind]:
            tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
            if tags.get("provision:deployment") != deployment:
                missing.append(f"{kind}:{item.get('VpcId') or item}")
    return missing
