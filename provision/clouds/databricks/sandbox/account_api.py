"""The Account API's configuration objects: credentials (with the IAM rules), storage configurations,
networks (with the VPC checks), VPC endpoint registrations (back-end PrivateLink) and private access
settings. Workspaces are in workspaces.py; the routes in app.py. AWS facts come from aws_bridge."""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
import uuid
from typing import Any

import provision.clouds.databricks.sandbox.aws_bridge as aws_bridge  # noqa: PLR0402  (imports the module, not its package)
from provision.clouds.databricks.sandbox.store import (
    STORE,
    ApiError,
    invalid,
    now_ms,
    required_str,
    string_list,
    users_of,
)
from provision.regions import PRIVATELINK_SERVICES
from provision.sandbox.settings import (
    DATABRICKS_AWS_ACCOUNT_ID,
    SANDBOX_AWS_ACCOUNT_ID,
    SandboxSettings,
)

_ROLE_ARN_RE = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/.+$")
_DATABRICKS_PRINCIPALS = {DATABRICKS_AWS_ACCOUNT_ID, f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"}
_PRIVATE_ACCESS_LEVELS = {"ACCOUNT", "ENDPOINT"}
# Databricks endpoint service kind (provision/regions.py) -> the registration's use_case (EndpointUseCase)
# and the vpc_endpoints list of a network that takes it.
_USE_CASES = {"workspace": "WORKSPACE_ACCESS", "relay": "DATAPLANE_RELAY_ACCESS"}
_NETWORK_ENDPOINT_USE_CASES = {"rest_api": "WORKSPACE_ACCESS", "dataplane_relay": "DATAPLANE_RELAY_ACCESS"}


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _trust_problem(policy_document: Any, account_id: str) -> str | None:
    """Why Databricks could not assume a role with this trust policy, or None if it could."""
    doc = policy_document
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            doc = json.loads(urllib.parse.unquote(doc))
    principal_trusted = False
    for st in _as_list(doc.get("Statement")):
        actions = _as_list(st.get("Action"))
        if st.get("Effect") != "Allow" or not {"sts:AssumeRole", "sts:*", "*"} & set(actions):
            continue
        principal = st.get("Principal")
        aws = set(_as_list(principal.get("AWS"))) if isinstance(principal, dict) else {principal}
        if "*" not in aws and not _DATABRICKS_PRINCIPALS & aws:
            continue
        principal_trusted = True
        # Condition operators and keys are case-insensitive in IAM.
        for op, conds in (st.get("Condition") or {}).items():
            if op.lower() != "stringequals":
                continue
            for key, values in conds.items():
                if key.lower() == "sts:externalid" and account_id in _as_list(values):
                    return None
    if not principal_trusted:
        return (
            f"the trust policy must allow arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root to perform sts:AssumeRole"
        )
    return f'the trust policy must require the external ID with Condition StringEquals "sts:ExternalId": "{account_id}"'


# --- credentials ----------------------------------------------------------------------------------


def create_credentials(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    name = required_str(body, "credentials_name")
    role_arn = ((body.get("aws_credentials") or {}).get("sts_role") or {}).get("role_arn")
    if not isinstance(role_arn, str) or not _ROLE_ARN_RE.match(role_arn):
        raise invalid("aws_credentials.sts_role.role_arn must be an IAM role ARN.")

    def refuse(detail: str) -> ApiError:
        return ApiError(400, "MALFORMED_REQUEST", f"Failed credentials validation checks: {detail}")

    role = aws_bridge.role(role_arn)
    if role is None:
        raise refuse(f"Verify that the role exists: {role_arn} could not be found.")
    problem = _trust_problem(role.trust_policy, account_id)
    if problem:
        raise refuse(f"Verify the trust policy of role {role_arn}: {problem}.")
    # IAM propagation: until the role has propagated, STS would refuse to assume it.
    if role.age_seconds < settings.delay("iam_propagation_seconds", role_arn):
        raise refuse(
            f"Databricks could not assume role {role_arn} (sts:AssumeRole was denied). Verify that the role "
            "exists and its trust policy allows Databricks; new IAM roles can take a few seconds to propagate."
        )
    record = {
        "credentials_id": str(uuid.uuid4()),
        "credentials_name": name,
        "aws_credentials": {"sts_role": {"role_arn": role_arn, "external_id": account_id}},
        "account_id": account_id,
        "creation_time": now_ms(),
    }
    STORE.kind(account_id, "credentials")[record["credentials_id"]] = record
    return record


# --- storage configurations -----------------------------------------------------------------------


def create_storage(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    name = required_str(body, "storage_configuration_name")
    bucket = (body.get("root_bucket_info") or {}).get("bucket_name")
    if not isinstance(bucket, str) or not bucket:
        raise invalid("root_bucket_info.bucket_name is required.")
    if not aws_bridge.bucket_exists(bucket):
        raise invalid(f"Root bucket {bucket} does not exist in AWS account {SANDBOX_AWS_ACCOUNT_ID}.")
    record: dict[str, Any] = {
        "storage_configuration_id": str(uuid.uuid4()),
        "storage_configuration_name": name,
        "root_bucket_info": {"bucket_name": bucket},
        "account_id": account_id,
        "creation_time": now_ms(),
    }
    if body.get("role_arn"):
        record["role_arn"] = body["role_arn"]
    STORE.kind(account_id, "storage_configurations")[record["storage_configuration_id"]] = record
    return record


# --- networks -------------------------------------------------------------------------------------


def create_network(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    name = required_str(body, "network_name")
    vpc_id = required_str(body, "vpc_id")
    subnet_ids = string_list(body, "subnet_ids")
    sg_ids = string_list(body, "security_group_ids")
    if len(subnet_ids) < 2:
        raise invalid("subnet_ids must contain at least two subnets in different availability zones.")
    if not 1 <= len(sg_ids) <= 5:
        raise invalid("security_group_ids must contain one to five security groups.")
    vpc_endpoints = body.get("vpc_endpoints")
    if vpc_endpoints is not None:
        if not isinstance(vpc_endpoints, dict):
            raise invalid("vpc_endpoints must be an object with rest_api and dataplane_relay lists.")
        vpc_endpoints = {k: string_list(vpc_endpoints, k) for k in ("rest_api", "dataplane_relay")}

    region = aws_bridge.vpc_region(vpc_id)
    if region is None:
        raise invalid(f"VPC {vpc_id} does not exist in AWS account {SANDBOX_AWS_ACCOUNT_ID}.")
    zones = set()
    for subnet_id in subnet_ids:
        subnet = aws_bridge.subnet(region, subnet_id)
        if subnet is None:
            raise invalid(f"Subnet {subnet_id} does not exist in {region}.")
        if subnet.vpc_id != vpc_id:
            raise invalid(f"Subnet {subnet_id} does not belong to VPC {vpc_id}.")
        zones.add(subnet.zone)
    if len(zones) < 2:
        raise invalid(f"Subnets {', '.join(subnet_ids)} must span at least two availability zones.")
    for sg_id in sg_ids:
        group_vpc = aws_bridge.security_group_vpc(region, sg_id)
        if group_vpc is None:
            raise invalid(f"Security group {sg_id} does not exist in {region}.")
        if group_vpc != vpc_id:
            raise invalid(f"Security group {sg_id} does not belong to VPC {vpc_id}.")
    for field, use_case in _NETWORK_ENDPOINT_USE_CASES.items():
        for endpoint_id in (vpc_endpoints or {}).get(field, []):
            _check_network_endpoint(settings, account_id, f"vpc_endpoints.{field}", endpoint_id, use_case, vpc_id, region)

    record: dict[str, Any] = {
        "network_id": str(uuid.uuid4()),
        "network_name": name,
        "vpc_id": vpc_id,
        "subnet_ids": list(subnet_ids),
        "security_group_ids": list(sg_ids),
        "vpc_status": "UNATTACHED",
        "error_messages": [],
        "warning_messages": [],
        "account_id": account_id,
        "creation_time": now_ms(),
    }
    if vpc_endpoints is not None:
        record["vpc_endpoints"] = vpc_endpoints
    STORE.kind(account_id, "networks")[record["network_id"]] = record
    return record


def network_errors(network: dict, region: str) -> list[dict]:
    """The checks Databricks runs against the customer VPC when deploying a workspace."""
    errors: list[dict] = []

    def err(error_type: str, message: str) -> None:
        errors.append({"error_type": error_type, "error_message": message})

    vpc_id = network["vpc_id"]
    vpc = aws_bridge.vpc(region, vpc_id)
    if vpc is None:
        err("vpc", f"VPC {vpc_id} was not found in region {region}.")
        return errors
    if not vpc.dns_support:
        err("vpc", f"VPC {vpc_id} must have DNS support (enableDnsSupport) enabled.")
    if not vpc.dns_hostnames:
        err("vpc", f"VPC {vpc_id} must have DNS hostnames (enableDnsHostnames) enabled.")
    zones = set()
    for subnet_id in network["subnet_ids"]:
        subnet = aws_bridge.subnet(region, subnet_id)
        if subnet is None or subnet.vpc_id != vpc_id:
            err("subnet", f"Subnet {subnet_id} was not found in VPC {vpc_id}.")
            continue
        zones.add(subnet.zone)
        prefix = ipaddress.ip_network(subnet.cidr_block, strict=False).prefixlen
        if not 17 <= prefix <= 26:
            err("subnet", f"Subnet {subnet_id} has netmask /{prefix}; it must be between /17 and /26.")
    if len(zones) < 2:
        err("subnet", f"Subnets of VPC {vpc_id} must span at least two availability zones.")
    for sg_id in network["security_group_ids"]:
        if aws_bridge.security_group_vpc(region, sg_id) != vpc_id:
            err("securityGroup", f"Security group {sg_id} was not found in VPC {vpc_id}.")
    return errors


# --- VPC endpoint registrations (back-end PrivateLink) ---------------------------------------------


def sync_endpoint(settings: SandboxSettings | None, registration: dict) -> dict | None:
    """Mirror the AWS endpoint's State into the registration, as Databricks derives it from AWS."""
    endpoint = aws_bridge.endpoint(settings, registration["aws_vpc_endpoint_id"], registration["region"])
    registration["state"] = endpoint["state"] if endpoint is not None else "deleted"
    return endpoint


def create_vpc_endpoint(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    name = required_str(body, "vpc_endpoint_name")
    aws_id = required_str(body, "aws_vpc_endpoint_id")
    region = required_str(body, "region")
    if not aws_bridge.region_exists(region):
        raise invalid(f"region {region} is not a valid AWS region.")
    services = PRIVATELINK_SERVICES.get(region)
    if services is None:
        raise invalid(f"AWS PrivateLink to Databricks is not available in region {region}.")
    endpoint = aws_bridge.endpoint(settings, aws_id, region)
    if endpoint is None:
        raise invalid(f"VPC endpoint {aws_id} does not exist in region {region} of AWS account {SANDBOX_AWS_ACCOUNT_ID}.")
    kind = aws_bridge.endpoint_service_kind(endpoint["service_name"], region)
    if kind is None:
        raise invalid(
            f"VPC endpoint {aws_id} connects to {endpoint['service_name']}, which is not a Databricks endpoint "
            f"service in {region} (expected {services.workspace} or {services.relay})."
        )
    if (endpoint["type"] or "").lower() != "interface":
        raise invalid(f"VPC endpoint {aws_id} must be an Interface endpoint, not {endpoint['type'] or 'Gateway'}.")
    if endpoint["state"] == "deleting":
        raise invalid(f"VPC endpoint {aws_id} is being deleted.")
    # Registration is what makes the Databricks endpoint service accept the connection.
    aws_bridge.accept_endpoint(aws_id, region)
    record: dict[str, Any] = {
        "vpc_endpoint_id": str(uuid.uuid4()),
        "vpc_endpoint_name": name,
        "account_id": account_id,
        "aws_account_id": SANDBOX_AWS_ACCOUNT_ID,
        "aws_vpc_endpoint_id": aws_id,
        "aws_endpoint_service_id": endpoint["service_name"].rsplit(".", 1)[-1],
        "region": region,
        "use_case": _USE_CASES[kind],
    }
    sync_endpoint(settings, record)
    STORE.kind(account_id, "vpc_endpoints")[record["vpc_endpoint_id"]] = record
    return record


def networks_using_endpoint(account_id: str, vpc_endpoint_id: str) -> list[str]:
    return [
        network["network_id"]
        for network in STORE.kind(account_id, "networks").values()
        if any(vpc_endpoint_id in ids for ids in (network.get("vpc_endpoints") or {}).values())
    ]


def _check_network_endpoint(
    settings: SandboxSettings, account_id: str, field: str, vpc_endpoint_id: str, use_case: str, vpc_id: str, region: str
) -> None:
    registration = STORE.kind(account_id, "vpc_endpoints").get(vpc_endpoint_id)
    if registration is None:
        raise invalid(f"{field}: VPC endpoint configuration {vpc_endpoint_id} does not exist in account {account_id}.")
    aws_id = registration["aws_vpc_endpoint_id"]
    if registration["use_case"] != use_case:
        raise invalid(
            f"{field}: VPC endpoint configuration {vpc_endpoint_id} ({aws_id}) has use case "
            f"{registration['use_case']}; {field} takes {use_case} endpoints only."
        )
    if registration["region"] != region:
        raise invalid(
            f"{field}: VPC endpoint configuration {vpc_endpoint_id} is registered in {registration['region']}, "
            f"but VPC {vpc_id} is in {region}."
        )
    endpoint = sync_endpoint(settings, registration)
    if endpoint is None:
        raise invalid(f"{field}: VPC endpoint {aws_id} no longer exists in {region}.")
    if endpoint["vpc_id"] != vpc_id:
        raise invalid(f"{field}: VPC endpoint {aws_id} is in VPC {endpoint['vpc_id']}, not in VPC {vpc_id}.")


def privatelink_problems(settings: SandboxSettings, account_id: str, network: dict, region: str) -> list[str]:
    """Why the network's back-end PrivateLink endpoints cannot carry cluster traffic yet."""
    problems: list[str] = []
    for field in ("rest_api", "dataplane_relay"):
        for vpc_endpoint_id in (network.get("vpc_endpoints") or {}).get(field, []):
            registration = STORE.kind(account_id, "vpc_endpoints").get(vpc_endpoint_id)
            if registration is None:
                problems.append(f"{field} VPC endpoint configuration {vpc_endpoint_id} does not exist")
                continue
            aws_id = registration["aws_vpc_endpoint_id"]
            endpoint = sync_endpoint(settings, registration)
            if endpoint is None or registration["region"] != region:
                problems.append(f"{field} VPC endpoint {aws_id} does not exist in {region}")
                continue
            issues = []
            if endpoint["state"] != "available":
                issues.append(f"is {endpoint['state']}, not available")
            if not endpoint["private_dns_enabled"]:
                issues.append("has private DNS disabled")
            if issues:
                problems.append(f"{field} VPC endpoint {aws_id} " + " and ".join(issues))
    return problems


# --- private access settings ------------------------------------------------------------------------


def _private_access_fields(account_id: str, body: dict) -> dict:
    name = required_str(body, "private_access_settings_name")
    region = required_str(body, "region")
    if not aws_bridge.region_exists(region):
        raise invalid(f"region {region} is not a valid AWS region.")
    level = body.get("private_access_level") or "ACCOUNT"
    if level not in _PRIVATE_ACCESS_LEVELS:
        raise invalid(f"private_access_level {level!r} is not one of {sorted(_PRIVATE_ACCESS_LEVELS)}.")
    public = body.get("public_access_enabled", False)
    if not isinstance(public, bool):
        raise invalid("public_access_enabled must be a boolean.")
    allowed = string_list(body, "allowed_vpc_endpoint_ids")
    for vpc_endpoint_id in allowed:
        registration = STORE.kind(account_id, "vpc_endpoints").get(vpc_endpoint_id)
        if registration is None:
            raise invalid(
                f"allowed_vpc_endpoint_ids: VPC endpoint configuration {vpc_endpoint_id} does not exist in "
                f"account {account_id}."
            )
        if registration["region"] != region:
            raise invalid(
                f"allowed_vpc_endpoint_ids: VPC endpoint configuration {vpc_endpoint_id} is registered in "
                f"{registration['region']}, not {region}."
            )
    return {
        "private_access_settings_name": name,
        "region": region,
        "public_access_enabled": public,
        "private_access_level": level,
        "allowed_vpc_endpoint_ids": list(allowed),
    }


def create_private_access_settings(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    record = {
        "private_access_settings_id": str(uuid.uuid4()),
        **_private_access_fields(account_id, body),
        "account_id": account_id,
    }
    STORE.kind(account_id, "private_access_settings")[record["private_access_settings_id"]] = record
    return record


def replace_private_access_settings(account_id: str, record: dict, body: dict) -> dict:
    """PUT overwrites every field (the SDK's `replace`); ids in the body are ignored."""
    fields = _private_access_fields(account_id, body)
    pas_id = record["private_access_settings_id"]
    users = users_of(account_id, "private_access_settings_id", pas_id)
    if fields["region"] != record["region"] and users:
        raise invalid(
            f"Private access settings {pas_id} cannot move to region {fields['region']}: used by workspace(s) "
            f"{', '.join(map(str, users))} in {record['region']}."
        )
    record.update(fields)
    return record
