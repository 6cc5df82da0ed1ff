"""What the Databricks "customer-managed VPC" Terraform guide builds, as a version-4 Terraform state: the
terraform-aws-modules VPC module (`module.vpc`, count-indexed subnets, routes and associations), its
vpc-endpoints module (`module.vpc_endpoints`, for_each by service), the cross-account role and its inline
policy, the root bucket with its settings, and the account objects (credentials, storage configuration,
network, workspace with a token block). `build_in_sandbox` makes those resources for real in the sandbox with
boto3 and the Account API (over HTTP), with the guide's names, and returns the ids `tfstate` needs."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from provision.constants import DATABRICKS_AWS_ACCOUNT_ID

REGION = "us-east-1"
PREFIX = "demo4f2a"  # the guide's local.prefix ("demo" + a random string)
VPC_CIDR = "10.4.0.0/16"
PRIVATE = ["10.4.32.0/19", "10.4.64.0/19"]
PUBLIC = ["10.4.0.0/26", "10.4.0.64/26"]
ZONES = ["us-east-1a", "us-east-1b"]
TOKEN_SECRET = "dapi-import-secret-0f3c9a7e"  # the value Terraform keeps for the workspace token

# The spec tables that describe the same deployment (merge into the basic example).
SPEC_TABLES = {
    "network": {
        "vpc_cidr": VPC_CIDR, "az_count": 2, "availability_zones": ZONES, "nat": "single",
        "private_subnet_cidrs": PRIVATE, "public_subnet_cidrs": PUBLIC,
    },
}


def fake_ids() -> dict[str, Any]:
    """Ids as a unit test needs them (no cloud)."""
    return {
        "vpc": "vpc-0a1", "private": ["subnet-0p0", "subnet-0p1"], "public": ["subnet-0u0", "subnet-0u1"], "igw": "igw-01",
        "eip": "eipalloc-01", "nat": "nat-01", "rt_public": "rtb-0pub", "rt_private": "rtb-0prv", "sg": "sg-01",
        "assoc": {s: f"rtbassoc-{s}" for s in ["subnet-0p0", "subnet-0p1", "subnet-0u0", "subnet-0u1"]},
        "vpce": {"s3": "vpce-0s3", "sts": "vpce-0sts", "kinesis-streams": "vpce-0kin"},
        "role_arn": f"arn:aws:iam::123456789012:role/{PREFIX}-crossaccount", "account_id": "acc-1",
        "credentials_id": "cred-1", "storage_configuration_id": "stor-1", "network_id": "net-1", "workspace_id": 1234567890123456,
    }


def _resource(rtype: str, name: str, instances: list[tuple[Any, dict]], module: str | None = None, mode: str = "managed",
              sensitive: list | None = None) -> dict[str, Any]:
    provider = "databricks/databricks" if rtype.startswith("databricks_") else "hashicorp/aws"
    out: dict[str, Any] = {"mode": mode, "type": rtype, "name": name, "provider": f'provider["registry.terraform.io/{provider}"]',
                           "instances": []}
    if module:
        out["module"] = module
    for key, attributes in instances:
        instance: dict[str, Any] = {"schema_version": 0, "attributes": attributes, "sensitive_attributes": sensitive or []}
        if key is not None:
            instance["index_key"] = key
        out["instances"].append(instance)
    return out


def tfstate(ids: dict[str, Any]) -> dict[str, Any]:
    """The guide's state for these ids."""
    acct, bucket = ids["account_id"], f"{PREFIX}-rootbucket"
    m = "module.vpc"
    subnets = [(i, {"id": sid, "vpc_id": ids["vpc"], "cidr_block": cidr, "availability_zone": ZONES[i]})
               for i, (sid, cidr) in enumerate(zip(ids["private"], PRIVATE))]
    public = [(i, {"id": sid, "vpc_id": ids["vpc"], "cidr_block": cidr, "availability_zone": ZONES[i]})
              for i, (sid, cidr) in enumerate(zip(ids["public"], PUBLIC))]
    resources = [
        _resource("aws_availability_zones", "available", [(None, {"names": ZONES})], mode="data"),
        _resource("aws_iam_role", "cross_account_role", [(None, {"id": f"{PREFIX}-crossaccount", "name": f"{PREFIX}-crossaccount", "arn": ids["role_arn"]})]),
        _resource("aws_iam_role_policy", "this", [(None, {"id": f"{PREFIX}-crossaccount:{PREFIX}-policy", "name": f"{PREFIX}-policy", "role": f"{PREFIX}-crossaccount"})]),
        _resource("databricks_mws_credentials", "this", [(None, {"id": f"{acct}/{ids['credentials_id']}", "credentials_id": ids["credentials_id"],
                                                                  "credentials_name": f"{PREFIX}-creds", "role_arn": ids["role_arn"]})]),
        _resource("aws_vpc", "this", [(0, {"id": ids["vpc"], "cidr_block": VPC_CIDR, "enable_dns_hostnames": True})], module=m),
        _resource("aws_subnet", "private", subnets, module=m),
        _resource("aws_subnet", "public", public, module=m),
        _resource("aws_internet_gateway", "this", [(0, {"id": ids["igw"], "vpc_id": ids["vpc"]})], module=m),
        _resource("aws_eip", "nat", [(0, {"id": ids["eip"], "allocation_id": ids["eip"], "domain": "vpc"})], module=m),
        _resource("aws_nat_gateway", "this", [(0, {"id": ids["nat"], "allocation_id": ids["eip"], "subnet_id": ids["public"][0]})], module=m),
        _resource("aws_route_table", "public", [(0, {"id": ids["rt_public"], "vpc_id": ids["vpc"]})], module=m),
        _resource("aws_route_table", "private", [(0, {"id": ids["rt_private"], "vpc_id": ids["vpc"]})], module=m),
        _resource("aws_route", "public_internet_gateway", [(0, {"id": f"r-{ids['rt_public']}1080289494", "route_table_id": ids["rt_public"],
                                                                 "destination_cidr_block": "0.0.0.0/0", "gateway_id": ids["igw"]})], module=m),
        _resource("aws_route", "private_nat_gateway", [(0, {"id": f"r-{ids['rt_private']}1080289494", "route_table_id": ids["rt_private"],
                                                             "destination_cidr_block": "0.0.0.0/0", "nat_gateway_id": ids["nat"]})], module=m),
        _resource("aws_route_table_association", "private", [(i, {"id": ids["assoc"][s], "subnet_id": s, "route_table_id": ids["rt_private"]})
                                                             for i, s in enumerate(ids["private"])], module=m),
        _resource("aws_route_table_association", "public", [(i, {"id": ids["assoc"][s], "subnet_id": s, "route_table_id": ids["rt_public"]})
                                                            for i, s in enumerate(ids["public"])], module=m),
        _resource("aws_security_group", "databricks", [(None, {"id": ids["sg"], "name": f"{PREFIX}-sg", "vpc_id": ids["vpc"]})],
                  module="module.security_groups"),
        _resource("aws_vpc_endpoint", "this", [
            (svc, {"id": vpce, "vpc_id": ids["vpc"], "service_name": f"com.amazonaws.{REGION}.{svc}",
                   "vpc_endpoint_type": "Gateway" if svc == "s3" else "Interface"})
            for svc, vpce in ids["vpce"].items()
        ], module="module.vpc_endpoints"),
        _resource("databricks_mws_networks", "this", [(None, {
            "id": f"{acct}/{ids['network_id']}", "network_id": ids["network_id"], "network_name": f"{PREFIX}-network", "vpc_id": ids["vpc"],
            "subnet_ids": ids["private"], "security_group_ids": [ids["sg"]]})]),
        _resource("aws_s3_bucket", "root_storage_bucket", [(None, {"id": bucket, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"})]),
        _resource("aws_s3_bucket_versioning", "root_bucket", [(None, {"id": bucket, "bucket": bucket})]),
        _resource("aws_s3_bucket_server_side_encryption_configuration", "root_storage_bucket", [(None, {"id": bucket, "bucket": bucket})]),
        _resource("aws_s3_bucket_public_access_block", "root_storage_bucket", [(None, {"id": bucket, "bucket": bucket})]),
        _resource("aws_s3_bucket_policy", "root_bucket_policy", [(None, {"id": bucket, "bucket": bucket, "policy": "{}"})]),
        _resource("databricks_mws_storage_configurations", "this", [(None, {
            "id": f"{acct}/{ids['storage_configuration_id']}", "storage_configuration_id": ids["storage_configuration_id"],
            "storage_configuration_name": f"{PREFIX}-storage", "bucket_name": bucket})]),
        _resource("databricks_mws_workspaces", "this", [(None, {
            "id": f"{acct}/{ids['workspace_id']}", "workspace_id": ids["workspace_id"], "workspace_name": PREFIX, "aws_region": REGION,
            "credentials_id": ids["credentials_id"], "storage_configuration_id": ids["storage_configuration_id"], "network_id": ids["network_id"],
            "token": [{"comment": "Terraform", "lifetime_seconds": 2592000, "token_id": "tok-1", "token_value": TOKEN_SECRET}]})],
            sensitive=[[{"type": "get_attr", "value": "token"}, {"type": "index", "value": {"value": 0, "type": "number"}},
                        {"type": "get_attr", "value": "token_value"}]]),
        _resource("databricks_token", "pat", [(None, {"id": "tok-2", "comment": "automation", "token_value": TOKEN_SECRET + "-pat"})]),
    ]
    return {"version": 4, "terraform_version": "1.9.5", "serial": 42, "lineage": "5d0ce0a1-7b3b-4d53-9f4c-6f1d2b0f4a11",
            "outputs": {"databricks_token": {"value": TOKEN_SECRET, "type": "string", "sensitive": True}}, "resources": resources}


# Building it for real ------------------------------------------------------------------------------


def _account(info: Any, account_id: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{info.databricks_host}/api/2.0/accounts/{account_id}{path}", data=data, method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {info.databricks_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def _retry(fn: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def build_in_sandbox(info: Any, account_id: str) -> dict[str, Any]:
    import boto3

    session = boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=REGION)
    ec2, iam, s3 = (session.client(s, endpoint_url=info.aws_endpoint_url) for s in ("ec2", "iam", "s3"))
    name = lambda n: [{"ResourceType": n[0], "Tags": [{"Key": "Name", "Value": n[1]}, {"Key": "ManagedBy", "Value": "Terraform"}]}]
    ids: dict[str, Any] = {"account_id": account_id}

    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": account_id}}}]}
    role = iam.create_role(RoleName=f"{PREFIX}-crossaccount", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    ids["role_arn"] = role["Arn"]
    iam.put_role_policy(RoleName=f"{PREFIX}-crossaccount", PolicyName=f"{PREFIX}-policy", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:*"], "Resource": "*"}]}))

    bucket = f"{PREFIX}-rootbucket"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={k: True for k in (
        "BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "ManagedBy", "Value": "Terraform"}]})

    vpc = ec2.create_vpc(CidrBlock=VPC_CIDR, TagSpecifications=name(("vpc", PREFIX)))["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    ids["vpc"] = vpc
    ids["private"] = [ec2.create_subnet(VpcId=vpc, CidrBlock=c, AvailabilityZone=z, TagSpecifications=name(("subnet", f"{PREFIX}-private-{z}")))["Subnet"]["SubnetId"]
                      for c, z in zip(PRIVATE, ZONES)]
    ids["public"] = [ec2.create_subnet(VpcId=vpc, CidrBlock=c, AvailabilityZone=z, TagSpecifications=name(("subnet", f"{PREFIX}-public-{z}")))["Subnet"]["SubnetId"]
                     for c, z in zip(PUBLIC, ZONES)]
    ids["igw"] = ec2.create_internet_gateway(TagSpecifications=name(("internet-gateway", PREFIX)))["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=ids["igw"], VpcId=vpc)
    ids["eip"] = ec2.allocate_address(Domain="vpc", TagSpecifications=name(("elastic-ip", f"{PREFIX}-{ZONES[0]}")))["AllocationId"]
    ids["nat"] = ec2.create_nat_gateway(SubnetId=ids["public"][0], AllocationId=ids["eip"], TagSpecifications=name(("natgateway", PREFIX)))["NatGateway"]["NatGatewayId"]
    ids["assoc"] = {}
    for key, subnets, target in (("rt_public", ids["public"], {"GatewayId": ids["igw"]}), ("rt_private", ids["private"], {"NatGatewayId": ids["nat"]})):
        table = ec2.create_route_table(VpcId=vpc, TagSpecifications=name(("route-table", f"{PREFIX}-{key}")))["RouteTable"]["RouteTableId"]
        ids[key] = table
        _retry(lambda table=table, target=target: ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", **target))
        for subnet in subnets:
            ids["assoc"][subnet] = ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)["AssociationId"]
    sg = ec2.create_security_group(GroupName=f"{PREFIX}-sg", Description="Databricks", VpcId=vpc, TagSpecifications=name(("security-group", f"{PREFIX}-sg")))["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": p, "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": sg}]} for p in ("tcp", "udp")])
    ids["sg"] = sg
    ids["vpce"] = {
        "s3": ec2.create_vpc_endpoint(VpcEndpointType="Gateway", VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3",
                                      RouteTableIds=[ids["rt_private"], ids["rt_public"]])["VpcEndpoint"]["VpcEndpointId"],
        **{svc: ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.{svc}",
                                        SubnetIds=ids["private"], SecurityGroupIds=[sg], PrivateDnsEnabled=True)["VpcEndpoint"]["VpcEndpointId"]
           for svc in ("sts", "kinesis-streams")},
    }

    credentials = _retry(lambda: _account(info, account_id, "POST", "/credentials", {
        "credentials_name": f"{PREFIX}-creds", "aws_credentials": {"sts_role": {"role_arn": ids["role_arn"]}}}))
    ids["credentials_id"] = credentials["credentials_id"]
    ids["storage_configuration_id"] = _account(info, account_id, "POST", "/storage-configurations", {
        "storage_configuration_name": f"{PREFIX}-storage", "root_bucket_info": {"bucket_name": bucket}})["storage_configuration_id"]
    ids["network_id"] = _account(info, account_id, "POST", "/networks", {
        "network_name": f"{PREFIX}-network", "vpc_id": vpc, "subnet_ids": ids["private"], "security_group_ids": [sg]})["network_id"]
    ids["workspace_id"] = _account(info, account_id, "POST", "/workspaces", {
        "workspace_name": PREFIX, "deployment_name": PREFIX, "aws_region": REGION, "credentials_id": ids["credentials_id"],
        "storage_configuration_id": ids["storage_configuration_id"], "network_id": ids["network_id"], "pricing_tier": "PREMIUM"})["workspace_id"]
    return ids


# The PrivateLink guide on top (its names: local.prefix "private-link-ws") --------------------------------
PL_CIDR = "10.4.96.0/27"


def privatelink_tfstate(ids: dict[str, Any], workspace_service: str, relay_service: str) -> dict[str, Any]:
    """The basic guide's state plus the PrivateLink guide's resources, for fake ids (unit tests only)."""
    data = tfstate(ids)
    acct, vpc, pl = ids["account_id"], ids["vpc"], "private-link-ws"
    extra = [
        _resource("aws_subnet", "dataplane_vpce", [(None, {"id": "subnet-0pl", "vpc_id": vpc, "cidr_block": PL_CIDR, "availability_zone": ZONES[0]})]),
        _resource("aws_route_table", "this", [(None, {"id": "rtb-0pl", "vpc_id": vpc})]),
        _resource("aws_route_table_association", "dataplane_vpce_rtb", [(None, {"id": "rtbassoc-pl", "subnet_id": "subnet-0pl", "route_table_id": "rtb-0pl"})]),
        _resource("aws_security_group", "dataplane_vpce", [(None, {"id": "sg-0pl", "name": "Data Plane VPC endpoint security group", "vpc_id": vpc})]),
        _resource("aws_vpc_endpoint", "backend_rest", [(None, {"id": "vpce-0rest", "vpc_id": vpc, "service_name": workspace_service,
                                                                "security_group_ids": ["sg-0pl"], "subnet_ids": ["subnet-0pl"]})]),
        _resource("aws_vpc_endpoint", "relay", [(None, {"id": "vpce-0relay", "vpc_id": vpc, "service_name": relay_service,
                                                         "security_group_ids": ["sg-0pl"], "subnet_ids": ["subnet-0pl"]})]),
        _resource("databricks_mws_vpc_endpoint", "backend_rest_vpce", [(None, {
            "id": f"{acct}/reg-rest", "vpc_endpoint_id": "reg-rest", "vpc_endpoint_name": f"{pl}-vpc-backend-{vpc}", "aws_vpc_endpoint_id": "vpce-0rest"})]),
        _resource("databricks_mws_vpc_endpoint", "relay", [(None, {
            "id": f"{acct}/reg-relay", "vpc_endpoint_id": "reg-relay", "vpc_endpoint_name": f"{pl}-vpc-relay-{vpc}", "aws_vpc_endpoint_id": "vpce-0relay"})]),
        _resource("databricks_mws_private_access_settings", "pas", [(None, {
            "id": f"{acct}/pas-1", "private_access_settings_id": "pas-1", "private_access_settings_name": f"Private Access Settings for {pl}"})]),
    ]
    data["resources"] += extra
    for resource in data["resources"]:
        if resource["type"] == "databricks_mws_networks":
            resource["instances"][0]["attributes"]["vpc_endpoints"] = [{"dataplane_relay": ["reg-relay"], "rest_api": ["reg-rest"]}]
        if resource["type"] == "databricks_mws_workspaces":
            resource["instances"][0]["attributes"]["private_access_settings_id"] = "pas-1"
    return data
