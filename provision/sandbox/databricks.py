"""Local emulator of the Databricks Account API (AWS), reached by the real databricks-sdk over HTTP.

It serves the provisioning endpoints the tool uses (credentials, storage configurations, networks,
workspaces, VPC endpoint registrations, private access settings) plus the host-metadata probe the
SDK sends while constructing a client. Paths, JSON field names and error bodies follow
databricks-sdk 0.156 (service/provisioning.py, errors/), so the SDK parses responses and raises its
typed errors exactly as against the real service.

It runs in the same process as moto's server and checks references against moto's global in-process
backends (IAM roles, S3 buckets, EC2 VPCs/subnets/security groups), mimicking the real API's
validation: cross-account role trust and IAM propagation, VPC/subnet/security-group consistency, and
the network checks Databricks runs when a workspace finishes provisioning. Like Databricks, a workspace
that reaches RUNNING writes into its root bucket (`<region>-prod/<workspace_id>/...` and
`ephemeral/<region>-prod/<workspace_id>/...`, two versions of one object if the bucket is versioned),
straight into moto's S3 backend as Databricks' own principal would (bucket policies are not consulted),
so a teardown that does not empty the bucket meets BucketNotEmpty as on AWS. A failed write fails the
deployment.

Back-end PrivateLink, with the AWS half in aws.py (rule 13), so the "apply twice" ordering is real:
- POST vpc-endpoints registers an AWS interface endpoint that must exist in the given region and
  connect to that region's Databricks workspace or relay service (else 400 INVALID_PARAMETER_VALUE).
  Registering is what makes Databricks accept the endpoint: it leaves `pendingAcceptance` and goes
  `pending` -> `available` on the AWS side, and only then can private DNS be enabled there. The
  record's use_case is WORKSPACE_ACCESS or DATAPLANE_RELAY_ACCESS (the SDK's EndpointUseCase values)
  and its state mirrors the AWS endpoint's State on every read (`deleted` once it is gone). DELETE
  is refused (400 INVALID_STATE) while a network lists it in vpc_endpoints.
- private-access-settings: create / get / list / PUT (the SDK's `replace`) / delete, checking
  region, private_access_level (ACCOUNT or ENDPOINT) and that allowed_vpc_endpoint_ids are
  registrations in the same region. DELETE is refused (INVALID_STATE) while a workspace uses it; a
  workspace must name existing settings of its own region.
- A network's vpc_endpoints.rest_api / dataplane_relay must be registrations of the workspace /
  relay service whose AWS endpoint is in the network's VPC.
- A workspace whose network has vpc_endpoints goes RUNNING only if every listed AWS endpoint is
  `available` with private DNS enabled when provisioning ends; otherwise it is FAILED with a status
  message saying the back-end PrivateLink endpoints are not ready (clusters could not reach the
  control plane), and fixing them then PATCHing the workspace re-runs the deployment.

Each workspace's own REST API, minimally, reached by the real WorkspaceClient: the workspace with
deployment name D is served under this host at the path prefix `/workspaces/D` (`workspace_host()`;
the SDK keeps a path in `host`, so its requests go to `/workspaces/D/api/2.0/...`):
- GET  .well-known/databricks-config (no auth): what a workspace host answers, with account_id and
  workspace_id (a string, as the SDK copies it into Config.workspace_id and sends it back in the
  X-Databricks-Workspace-Id header), so the SDK treats the host as a workspace.
- POST api/2.0/token/create {comment, lifetime_seconds} -> {token_value: "dapi<32 hex>", token_info};
  GET api/2.0/token/list -> {token_infos} (never values); POST api/2.0/token/delete {token_id} -> {}.
  Tokens belong to their workspace and go with it; only a SHA-256 of each value is kept, never the
  value, and the token_infos appear in inventory() under "tokens" (with their workspace_id).
  Omitted lifetime_seconds means two years (the SDK's documented default); expired tokens vanish.
- GET api/2.0/preview/scim/v2/Me: the authenticated user (the sandbox account admin).
Requests are checked the way the real host would meet them: first the host itself (unknown or
deleted deployment -> 404 RESOURCE_DOES_NOT_EXIST), then its state, then auth (the sandbox token or
a live token of this workspace as Bearer, else 401 UNAUTHENTICATED). A real workspace URL does not
resolve until the first deployment finishes, which the SDK meets as connection errors and retries;
here a workspace still in its first PROVISIONING answers 503 TEMPORARILY_UNAVAILABLE with
Retry-After: 1, which the SDK retries the same way (so a client that outlasts provisioning gets
through). A workspace that has been RUNNING keeps serving while an update re-provisions it. A FAILED
workspace (or any other state) is refused at once with 400 INVALID_STATE instead of a retry loop that
could only time out. Every workspace response carries X-Databricks-Org-Id, like the real host.

All state lives in one module-level, lock-protected store (moto's backends are global too), keyed by
Databricks account id and kind. `inventory()` dumps it and `reset()` clears it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from datetime import UTC, datetime
from typing import Any, Callable

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from provision.regions import PRIVATELINK_SERVICES
from provision.sandbox import oauth
from provision.sandbox.settings import DATABRICKS_AWS_ACCOUNT_ID, SANDBOX_AWS_ACCOUNT_ID, SandboxSettings

KINDS = (
    "credentials",
    "storage_configurations",
    "networks",
    "workspaces",
    "vpc_endpoints",
    "private_access_settings",
    "tokens",  # workspace personal access tokens (token_infos plus workspace_id), served by the workspace API
)
# URL segment -> (store kind, id field in the JSON body)
_SEGMENTS: dict[str, tuple[str, str]] = {
    "credentials": ("credentials", "credentials_id"),
    "storage-configurations": ("storage_configurations", "storage_configuration_id"),
    "networks": ("networks", "network_id"),
    "workspaces": ("workspaces", "workspace_id"),
    "vpc-endpoints": ("vpc_endpoints", "vpc_endpoint_id"),
    "private-access-settings": ("private_access_settings", "private_access_settings_id"),
}
_ACCOUNT_ID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ROLE_ARN_RE = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/.+$")
_DEPLOYMENT_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DATABRICKS_PRINCIPALS = {DATABRICKS_AWS_ACCOUNT_ID, f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"}
_PRICING_TIERS = {"COMMUNITY_EDITION", "DEDICATED", "ENTERPRISE", "PREMIUM", "STANDARD", "UNKNOWN"}
_PRIVATE_ACCESS_LEVELS = {"ACCOUNT", "ENDPOINT"}
# Databricks endpoint service kind (provision/regions.py) -> the registration's use_case (EndpointUseCase)
# and the vpc_endpoints list of a network that takes it.
_USE_CASES = {"workspace": "WORKSPACE_ACCESS", "relay": "DATAPLANE_RELAY_ACCESS"}
_NETWORK_ENDPOINT_USE_CASES = {"rest_api": "WORKSPACE_ACCESS", "dataplane_relay": "DATAPLANE_RELAY_ACCESS"}
# Fields a PATCH may change; the SDK sends a whole Workspace body, so read-only ones are ignored.
_MUTABLE_WORKSPACE_FIELDS = (
    "workspace_name",
    "credentials_id",
    "storage_configuration_id",
    "network_id",
    "private_access_settings_id",
    "custom_tags",
    "managed_services_customer_managed_key_id",
    "storage_customer_managed_key_id",
    "network_connectivity_config_id",
    "pricing_tier",
)
# Changing these re-runs deployment on a RUNNING workspace, as the real API does.
_REDEPLOY_FIELDS = {"credentials_id", "storage_configuration_id", "network_id", "private_access_settings_id"}


class ApiError(Exception):
    """An error answered as {"error_code", "message"}; the SDK maps code first, then HTTP status."""

    def __init__(self, status: int, error_code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = headers or {}


def _not_found(what: str, obj_id: Any) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{what} {obj_id} does not exist.")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Store:
    """Every emulator object, per Databricks account and kind. Records are API-shaped dicts; keys
    starting with "_" are private bookkeeping and never leave the store."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.accounts: dict[str, dict[str, dict[Any, dict]]] = {}

    def kind(self, account_id: str, kind: str) -> dict[Any, dict]:
        return self.accounts.setdefault(account_id, {k: {} for k in KINDS})[kind]

    def all_workspaces(self) -> list[dict]:
        return [ws for acct in self.accounts.values() for ws in acct["workspaces"].values()]

    def clear(self) -> None:
        with self.lock:
            self.accounts.clear()


STORE = _Store()


def reset() -> None:
    """Forget every emulated Databricks object and issued OAuth token (moto's AWS state is untouched)."""
    STORE.clear()
    oauth.reset()


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def inventory(settings_or_app: Any = None) -> dict:
    """Every object per account per kind, API-shaped: {account_id: {kind: [obj, ...]}}.

    Given the settings (or an app from make_databricks_app), due workspace transitions are applied
    first so the dump matches what a GET would return."""
    settings = settings_or_app if isinstance(settings_or_app, SandboxSettings) else None
    if settings is None:
        settings = getattr(settings_or_app, "sandbox_settings", None)
    with STORE.lock:
        for account_id, kinds in STORE.accounts.items():
            _purge_expired_tokens(account_id)
            for registration in kinds["vpc_endpoints"].values():
                _sync_endpoint(settings, registration)
            for ws in kinds["workspaces"].values() if settings is not None else ():
                _advance(settings, account_id, ws)
        return {
            account_id: {kind: [_public(r) for r in records.values()] for kind, records in kinds.items()}
            for account_id, kinds in STORE.accounts.items()
        }


# --- moto lookups --------------------------------------------------------------------------------


def _iam_role(role_arn: str) -> Any | None:
    from moto.iam.models import iam_backends

    match = _ROLE_ARN_RE.match(role_arn)
    # Indexing a BackendDict creates the account, so only look in accounts moto already knows.
    if not match or match.group(1) not in iam_backends:
        return None
    try:
        return iam_backends[match.group(1)]["aws"].get_role_by_arn(role_arn)
    except Exception:  # moto's NotFoundException
        return None


def _bucket_exists(name: str) -> bool:
    from moto.s3.models import s3_backends

    # moto 5.2.5 keys S3 by partition ("global" is an alias of "aws").
    return name in s3_backends[SANDBOX_AWS_ACCOUNT_ID]["aws"].buckets


def _write_root_bucket(bucket_name: str, ws: dict) -> None:
    """What a new workspace leaves in its root bucket (DBFS root and ephemeral job/cluster data)."""
    from moto.s3.models import s3_backends

    s3 = s3_backends[SANDBOX_AWS_ACCOUNT_ID]["aws"]
    prefix = f"{ws['aws_region']}-prod/{ws['workspace_id']}"
    manifest = {"workspace_id": ws["workspace_id"], "deployment_name": ws["deployment_name"]}
    # Written twice in a versioned bucket, so emptying it needs the noncurrent versions too.
    writes = 2 if s3.get_bucket(bucket_name).is_versioned else 1
    for n in range(writes):
        body = json.dumps({**manifest, "generation": n + 1}).encode()
        s3.put_object(bucket_name, f"{prefix}/databricks/workspace-manifest.json", body)
    s3.put_object(bucket_name, f"{prefix}/user/hive/warehouse/", b"")
    s3.put_object(bucket_name, f"ephemeral/{prefix}/cluster-logs/README", b"cluster logs of this workspace\n")


def _ec2(region: str) -> Any | None:
    from moto.ec2.models import ec2_backends

    backends = ec2_backends[SANDBOX_AWS_ACCOUNT_ID]
    return backends[region] if region in backends else None


def _find_vpc_region(vpc_id: str) -> str | None:
    """Region of a VPC, searching only regions moto has instantiated (touching others would create
    their default VPCs as a side effect)."""
    from moto.ec2.models import ec2_backends

    for region, backend in list(ec2_backends[SANDBOX_AWS_ACCOUNT_ID].items()):
        if vpc_id in backend.vpcs:
            return region
    return None


def _subnet(ec2: Any, subnet_id: str) -> Any | None:
    try:
        return ec2.get_subnet(subnet_id)
    except Exception:  # moto's InvalidSubnetIdError
        return None


def _truthy(value: Any) -> bool:
    # moto keeps True from creation but the raw "true"/"false" string after ModifyVpcAttribute.
    return str(value).lower() == "true"


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


# --- request helpers ------------------------------------------------------------------------------


def _json_body(request: Request) -> dict:
    if not request.get_data():
        return {}
    try:
        body = json.loads(request.get_data())
    except ValueError as e:
        raise ApiError(400, "MALFORMED_REQUEST", f"Could not parse request body as JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "MALFORMED_REQUEST", "Request body must be a JSON object.")
    return body


def _required_str(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{field} is required and must be a non-empty string.")
    return value


def _string_list(body: dict, field: str) -> list[str]:
    value = body.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _invalid(f"{field} must be a list of strings.")
    return value


def _get(account_id: str, kind: str, obj_id: Any) -> dict:
    record = STORE.kind(account_id, kind).get(obj_id)
    if record is None:
        label = {
            "credentials": "Credential configuration",
            "storage_configurations": "Storage configuration",
            "networks": "Network configuration",
            "workspaces": "Workspace",
            "vpc_endpoints": "VPC endpoint configuration",
            "private_access_settings": "Private access settings",
        }[kind]
        raise _not_found(label, obj_id)
    return record


def _referenced(account_id: str, kind: str, obj_id: Any, field: str) -> dict:
    """A body reference to a missing object is a bad parameter (400), unlike a missing path id (404)."""
    record = STORE.kind(account_id, kind).get(obj_id)
    if record is None:
        raise _invalid(f"{field} {obj_id} does not exist in account {account_id}.")
    return record


# --- credentials ----------------------------------------------------------------------------------


def _create_credentials(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    name = _required_str(body, "credentials_name")
    role_arn = ((body.get("aws_credentials") or {}).get("sts_role") or {}).get("role_arn")
    if not isinstance(role_arn, str) or not _ROLE_ARN_RE.match(role_arn):
        raise _invalid("aws_credentials.sts_role.role_arn must be an IAM role ARN.")

    def refuse(detail: str) -> ApiError:
        return ApiError(400, "MALFORMED_REQUEST", f"Failed credentials validation checks: {detail}")

    role = _iam_role(role_arn)
    if role is None:
        raise refuse(f"Verify that the role exists: {role_arn} could not be found.")
    problem = _trust_problem(role.assume_role_policy_document, account_id)
    if problem:
        raise refuse(f"Verify the trust policy of role {role_arn}: {problem}.")
    # moto's create_date is naive UTC; until the role is "propagated" STS would refuse to assume it.
    age = (datetime.now(UTC).replace(tzinfo=None) - role.create_date).total_seconds()
    if age < settings.delay("iam_propagation_seconds", role_arn):
        raise refuse(
            f"Databricks could not assume role {role_arn} (sts:AssumeRole was denied). Verify that the role "
            "exists and its trust policy allows Databricks; new IAM roles can take a few seconds to propagate."
        )
    record = {
        "credentials_id": str(uuid.uuid4()),
        "credentials_name": name,
        "aws_credentials": {"sts_role": {"role_arn": role_arn, "external_id": account_id}},
        "account_id": account_id,
        "creation_time": _now_ms(),
    }
    STORE.kind(account_id, "credentials")[record["credentials_id"]] = record
    return record


# --- storage configurations -----------------------------------------------------------------------


def _create_storage(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    name = _required_str(body, "storage_configuration_name")
    bucket = (body.get("root_bucket_info") or {}).get("bucket_name")
    if not isinstance(bucket, str) or not bucket:
        raise _invalid("root_bucket_info.bucket_name is required.")
    if not _bucket_exists(bucket):
        raise _invalid(f"Root bucket {bucket} does not exist in AWS account {SANDBOX_AWS_ACCOUNT_ID}.")
    record: dict[str, Any] = {
        "storage_configuration_id": str(uuid.uuid4()),
        "storage_configuration_name": name,
        "root_bucket_info": {"bucket_name": bucket},
        "account_id": account_id,
        "creation_time": _now_ms(),
    }
    if body.get("role_arn"):
        record["role_arn"] = body["role_arn"]
    STORE.kind(account_id, "storage_configurations")[record["storage_configuration_id"]] = record
    return record


# --- networks -------------------------------------------------------------------------------------


def _create_network(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    name = _required_str(body, "network_name")
    vpc_id = _required_str(body, "vpc_id")
    subnet_ids = _string_list(body, "subnet_ids")
    sg_ids = _string_list(body, "security_group_ids")
    if len(subnet_ids) < 2:
        raise _invalid("subnet_ids must contain at least two subnets in different availability zones.")
    if not 1 <= len(sg_ids) <= 5:
        raise _invalid("security_group_ids must contain one to five security groups.")
    vpc_endpoints = body.get("vpc_endpoints")
    if vpc_endpoints is not None:
        if not isinstance(vpc_endpoints, dict):
            raise _invalid("vpc_endpoints must be an object with rest_api and dataplane_relay lists.")
        vpc_endpoints = {k: _string_list(vpc_endpoints, k) for k in ("rest_api", "dataplane_relay")}

    region = _find_vpc_region(vpc_id)
    ec2 = _ec2(region) if region else None
    if ec2 is None:
        raise _invalid(f"VPC {vpc_id} does not exist in AWS account {SANDBOX_AWS_ACCOUNT_ID}.")
    zones = set()
    for subnet_id in subnet_ids:
        subnet = _subnet(ec2, subnet_id)
        if subnet is None:
            raise _invalid(f"Subnet {subnet_id} does not exist in {region}.")
        if subnet.vpc_id != vpc_id:
            raise _invalid(f"Subnet {subnet_id} does not belong to VPC {vpc_id}.")
        zones.add(subnet.availability_zone)
    if len(zones) < 2:
        raise _invalid(f"Subnets {', '.join(subnet_ids)} must span at least two availability zones.")
    for sg_id in sg_ids:
        group = ec2.get_security_group_from_id(sg_id)
        if group is None:
            raise _invalid(f"Security group {sg_id} does not exist in {region}.")
        if group.vpc_id != vpc_id:
            raise _invalid(f"Security group {sg_id} does not belong to VPC {vpc_id}.")
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
        "creation_time": _now_ms(),
    }
    if vpc_endpoints is not None:
        record["vpc_endpoints"] = vpc_endpoints
    STORE.kind(account_id, "networks")[record["network_id"]] = record
    return record


def _network_errors(network: dict, region: str) -> list[dict]:
    """The checks Databricks runs against the customer VPC when deploying a workspace."""
    errors: list[dict] = []

    def err(error_type: str, message: str) -> None:
        errors.append({"error_type": error_type, "error_message": message})

    vpc_id = network["vpc_id"]
    ec2 = _ec2(region)
    vpc = ec2.vpcs.get(vpc_id) if ec2 is not None else None
    if vpc is None:
        err("vpc", f"VPC {vpc_id} was not found in region {region}.")
        return errors
    if not _truthy(vpc.enable_dns_support):
        err("vpc", f"VPC {vpc_id} must have DNS support (enableDnsSupport) enabled.")
    if not _truthy(vpc.enable_dns_hostnames):
        err("vpc", f"VPC {vpc_id} must have DNS hostnames (enableDnsHostnames) enabled.")
    zones = set()
    for subnet_id in network["subnet_ids"]:
        subnet = _subnet(ec2, subnet_id)
        if subnet is None or subnet.vpc_id != vpc_id:
            err("subnet", f"Subnet {subnet_id} was not found in VPC {vpc_id}.")
            continue
        zones.add(subnet.availability_zone)
        prefix = ipaddress.ip_network(subnet.cidr_block, strict=False).prefixlen
        if not 17 <= prefix <= 26:
            err("subnet", f"Subnet {subnet_id} has netmask /{prefix}; it must be between /17 and /26.")
    if len(zones) < 2:
        err("subnet", f"Subnets of VPC {vpc_id} must span at least two availability zones.")
    for sg_id in network["security_group_ids"]:
        group = ec2.get_security_group_from_id(sg_id)
        if group is None or group.vpc_id != vpc_id:
            err("securityGroup", f"Security group {sg_id} was not found in VPC {vpc_id}.")
    return errors


# --- VPC endpoint registrations (back-end PrivateLink) ---------------------------------------------


def _aws_endpoint(settings: SandboxSettings | None, aws_vpc_endpoint_id: str, region: str) -> dict | None:
    """The AWS endpoint as DescribeVpcEndpoints shows it now (aws.py's lazy timers applied)."""
    from provision.sandbox import aws

    return aws.vpc_endpoint_snapshot(aws_vpc_endpoint_id, region, settings)


def _sync_endpoint(settings: SandboxSettings | None, registration: dict) -> dict | None:
    """Mirror the AWS endpoint's State into the registration, as Databricks derives it from AWS."""
    endpoint = _aws_endpoint(settings, registration["aws_vpc_endpoint_id"], registration["region"])
    registration["state"] = endpoint["state"] if endpoint is not None else "deleted"
    return endpoint


def _create_vpc_endpoint(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    from provision.sandbox import aws

    name = _required_str(body, "vpc_endpoint_name")
    aws_id = _required_str(body, "aws_vpc_endpoint_id")
    region = _required_str(body, "region")
    if _ec2(region) is None:
        raise _invalid(f"region {region} is not a valid AWS region.")
    services = PRIVATELINK_SERVICES.get(region)
    if services is None:
        raise _invalid(f"AWS PrivateLink to Databricks is not available in region {region}.")
    endpoint = _aws_endpoint(settings, aws_id, region)
    if endpoint is None:
        raise _invalid(f"VPC endpoint {aws_id} does not exist in region {region} of AWS account {SANDBOX_AWS_ACCOUNT_ID}.")
    kind = aws.databricks_service_kind(endpoint["service_name"], region)
    if kind is None:
        raise _invalid(
            f"VPC endpoint {aws_id} connects to {endpoint['service_name']}, which is not a Databricks endpoint "
            f"service in {region} (expected {services.workspace} or {services.relay})."
        )
    if (endpoint["type"] or "").lower() != "interface":
        raise _invalid(f"VPC endpoint {aws_id} must be an Interface endpoint, not {endpoint['type'] or 'Gateway'}.")
    if endpoint["state"] == "deleting":
        raise _invalid(f"VPC endpoint {aws_id} is being deleted.")
    # Registration is what makes the Databricks endpoint service accept the connection.
    aws.accept_vpc_endpoint(aws_id, SANDBOX_AWS_ACCOUNT_ID, region)
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
    _sync_endpoint(settings, record)
    STORE.kind(account_id, "vpc_endpoints")[record["vpc_endpoint_id"]] = record
    return record


def _networks_using_endpoint(account_id: str, vpc_endpoint_id: str) -> list[str]:
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
        raise _invalid(f"{field}: VPC endpoint configuration {vpc_endpoint_id} does not exist in account {account_id}.")
    aws_id = registration["aws_vpc_endpoint_id"]
    if registration["use_case"] != use_case:
        raise _invalid(
            f"{field}: VPC endpoint configuration {vpc_endpoint_id} ({aws_id}) has use case "
            f"{registration['use_case']}; {field} takes {use_case} endpoints only."
        )
    if registration["region"] != region:
        raise _invalid(
            f"{field}: VPC endpoint configuration {vpc_endpoint_id} is registered in {registration['region']}, "
            f"but VPC {vpc_id} is in {region}."
        )
    endpoint = _sync_endpoint(settings, registration)
    if endpoint is None:
        raise _invalid(f"{field}: VPC endpoint {aws_id} no longer exists in {region}.")
    if endpoint["vpc_id"] != vpc_id:
        raise _invalid(f"{field}: VPC endpoint {aws_id} is in VPC {endpoint['vpc_id']}, not in VPC {vpc_id}.")


def _privatelink_problems(settings: SandboxSettings, account_id: str, network: dict, region: str) -> list[str]:
    """Why the network's back-end PrivateLink endpoints cannot carry cluster traffic yet."""
    problems: list[str] = []
    for field in ("rest_api", "dataplane_relay"):
        for vpc_endpoint_id in (network.get("vpc_endpoints") or {}).get(field, []):
            registration = STORE.kind(account_id, "vpc_endpoints").get(vpc_endpoint_id)
            if registration is None:
                problems.append(f"{field} VPC endpoint configuration {vpc_endpoint_id} does not exist")
                continue
            aws_id = registration["aws_vpc_endpoint_id"]
            endpoint = _sync_endpoint(settings, registration)
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
    name = _required_str(body, "private_access_settings_name")
    region = _required_str(body, "region")
    if _ec2(region) is None:
        raise _invalid(f"region {region} is not a valid AWS region.")
    level = body.get("private_access_level") or "ACCOUNT"
    if level not in _PRIVATE_ACCESS_LEVELS:
        raise _invalid(f"private_access_level {level!r} is not one of {sorted(_PRIVATE_ACCESS_LEVELS)}.")
    public = body.get("public_access_enabled", False)
    if not isinstance(public, bool):
        raise _invalid("public_access_enabled must be a boolean.")
    allowed = _string_list(body, "allowed_vpc_endpoint_ids")
    for vpc_endpoint_id in allowed:
        registration = STORE.kind(account_id, "vpc_endpoints").get(vpc_endpoint_id)
        if registration is None:
            raise _invalid(
                f"allowed_vpc_endpoint_ids: VPC endpoint configuration {vpc_endpoint_id} does not exist in "
                f"account {account_id}."
            )
        if registration["region"] != region:
            raise _invalid(
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


def _create_private_access_settings(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    record = {
        "private_access_settings_id": str(uuid.uuid4()),
        **_private_access_fields(account_id, body),
        "account_id": account_id,
    }
    STORE.kind(account_id, "private_access_settings")[record["private_access_settings_id"]] = record
    return record


def _replace_private_access_settings(account_id: str, record: dict, body: dict) -> dict:
    """PUT overwrites every field (the SDK's `replace`); ids in the body are ignored."""
    fields = _private_access_fields(account_id, body)
    pas_id = record["private_access_settings_id"]
    users = _users_of(account_id, "private_access_settings_id", pas_id)
    if fields["region"] != record["region"] and users:
        raise _invalid(
            f"Private access settings {pas_id} cannot move to region {fields['region']}: used by workspace(s) "
            f"{', '.join(map(str, users))} in {record['region']}."
        )
    record.update(fields)
    return record


# --- workspaces -----------------------------------------------------------------------------------


def _advance(settings: SandboxSettings, account_id: str, ws: dict) -> None:
    """Finish provisioning lazily: once the delay has passed, validate and go RUNNING or FAILED."""
    if ws["workspace_status"] != "PROVISIONING":
        return
    if time.monotonic() - ws["_provisioning_since"] < settings.delay("workspace_provisioning_seconds", str(ws["workspace_id"])):
        return
    problems: list[str] = []
    storage = STORE.kind(account_id, "storage_configurations").get(ws["storage_configuration_id"])
    if storage and not _bucket_exists(storage["root_bucket_info"]["bucket_name"]):
        problems.append(f"root bucket {storage['root_bucket_info']['bucket_name']} no longer exists")
    network = STORE.kind(account_id, "networks").get(ws.get("network_id"))
    if network is not None:
        errors = _network_errors(network, ws["aws_region"])
        network["error_messages"] = errors
        network["vpc_status"] = "BROKEN" if errors else "VALID"
        problems += [e["error_message"] for e in errors]
        not_ready = _privatelink_problems(settings, account_id, network, ws["aws_region"])
        if not_ready:
            problems.append(
                "back-end PrivateLink endpoints are not ready, so clusters cannot reach the control plane: "
                + ", ".join(not_ready)
            )
    if storage and not problems:
        bucket = storage["root_bucket_info"]["bucket_name"]
        try:
            _write_root_bucket(bucket, ws)
        except Exception as e:  # moto's S3 errors; Databricks fails the deployment the same way
            problems.append(f"could not write to root bucket {bucket}: {type(e).__name__}: {e}")
    if problems:
        ws["workspace_status"] = "FAILED"
        ws["workspace_status_message"] = "Workspace failed to deploy: " + "; ".join(problems)
    else:
        ws["workspace_status"] = "RUNNING"
        ws["workspace_status_message"] = "Workspace is running."
        ws["_served"] = True  # its URL now answers, and keeps answering through later updates


def _check_workspace_refs(account_id: str, values: dict, workspace_id: int | None) -> None:
    _referenced(account_id, "credentials", values.get("credentials_id"), "credentials_id")
    storage_id = values.get("storage_configuration_id")
    _referenced(account_id, "storage_configurations", storage_id, "storage_configuration_id")
    network_id = values.get("network_id")
    if network_id:
        _referenced(account_id, "networks", network_id, "network_id")
        # A network configuration describes one workspace's subnets and cannot be shared.
        for other in STORE.kind(account_id, "workspaces").values():
            if other.get("network_id") == network_id and other["workspace_id"] != workspace_id:
                used_by = other["workspace_id"]
                raise _invalid(f"Network configuration {network_id} is already used by workspace {used_by}.")
    pas_id = values.get("private_access_settings_id")
    if pas_id:
        pas = _referenced(account_id, "private_access_settings", pas_id, "private_access_settings_id")
        if pas["region"] != values.get("aws_region"):
            raise _invalid(
                f"Private access settings {pas_id} are for region {pas['region']}, "
                f"not the workspace's region {values.get('aws_region')}."
            )
    tier = values.get("pricing_tier")
    if tier is not None and tier not in _PRICING_TIERS:
        raise _invalid(f"pricing_tier {tier} is not one of {sorted(_PRICING_TIERS)}.")


def _attach_network(account_id: str, network_id: str | None, workspace_id: int | None) -> None:
    network = STORE.kind(account_id, "networks").get(network_id)
    if network is None:
        return
    if workspace_id is not None:
        network["workspace_id"] = workspace_id
    else:  # freed: the next workspace re-validates it
        network.pop("workspace_id", None)
        network["vpc_status"], network["error_messages"] = "UNATTACHED", []


def _unique_deployment_name(workspace_name: str) -> str:
    taken = {ws["deployment_name"] for ws in STORE.all_workspaces()}
    base = re.sub(r"[^a-z0-9-]+", "-", workspace_name.lower()).strip("-")[:50].strip("-") or "workspace"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _create_workspace(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    name = _required_str(body, "workspace_name")
    region = _required_str(body, "aws_region")
    if _ec2(region) is None:
        raise _invalid(f"aws_region {region} is not a valid AWS region.")
    _required_str(body, "credentials_id")
    _required_str(body, "storage_configuration_id")
    _check_workspace_refs(account_id, body, None)
    deployment = body.get("deployment_name")
    if deployment is not None:
        if not isinstance(deployment, str) or not _DEPLOYMENT_RE.match(deployment):
            raise _invalid(f"deployment_name {deployment!r} is not a valid subdomain label.")
        # Deployment names are global across accounts: they form the workspace URL.
        if any(ws["deployment_name"] == deployment for ws in STORE.all_workspaces()):
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"Deployment name {deployment} is already in use.")
    else:
        deployment = _unique_deployment_name(name)
    workspace_id = random.randint(10**15, 10**16 - 1)
    record: dict[str, Any] = {
        "workspace_id": workspace_id,
        "workspace_name": name,
        "deployment_name": deployment,
        "aws_region": region,
        "cloud": "aws",
        "account_id": account_id,
        "credentials_id": body["credentials_id"],
        "storage_configuration_id": body["storage_configuration_id"],
        "pricing_tier": body.get("pricing_tier") or "PREMIUM",
        "workspace_status": "PROVISIONING",
        "workspace_status_message": "Workspace resources are being set up.",
        "creation_time": _now_ms(),
        "_provisioning_since": time.monotonic(),
    }
    for optional in (
        "network_id",
        "private_access_settings_id",
        "custom_tags",
        "managed_services_customer_managed_key_id",
        "storage_customer_managed_key_id",
        "network_connectivity_config_id",
    ):
        if body.get(optional) is not None:
            record[optional] = body[optional]
    STORE.kind(account_id, "workspaces")[workspace_id] = record
    _attach_network(account_id, record.get("network_id"), workspace_id)
    return record


def _update_workspace(account_id: str, ws: dict, body: dict, mask: str | None) -> dict:
    if mask and mask != "*":
        fields = [f.strip() for f in mask.split(",") if f.strip()]
        bad = [f for f in fields if f not in _MUTABLE_WORKSPACE_FIELDS]
        if bad:
            raise _invalid(f"update_mask names fields that cannot be updated: {', '.join(bad)}.")
    else:
        fields = [f for f in _MUTABLE_WORKSPACE_FIELDS if body.get(f) is not None]
    changes = {f: body.get(f) for f in fields if body.get(f) != ws.get(f)}
    _check_workspace_refs(account_id, {**ws, **changes}, ws["workspace_id"])
    if "network_id" in changes:
        _attach_network(account_id, ws.get("network_id"), None)
        _attach_network(account_id, changes["network_id"], ws["workspace_id"])
    for field, value in changes.items():
        if value is None:
            ws.pop(field, None)
        else:
            ws[field] = value
    redeploy = ws["workspace_status"] == "RUNNING" and bool(_REDEPLOY_FIELDS & changes.keys())
    if ws["workspace_status"] == "FAILED" or redeploy:
        ws["workspace_status"] = "PROVISIONING"
        ws["workspace_status_message"] = "Workspace is being updated."
        ws["_provisioning_since"] = time.monotonic()
    return ws


def _users_of(account_id: str, field: str, obj_id: str) -> list[int]:
    return [ws["workspace_id"] for ws in STORE.kind(account_id, "workspaces").values() if ws.get(field) == obj_id]


# --- each workspace's own API ----------------------------------------------------------------------

_WORKSPACE_PREFIX = "/workspaces"
_DEFAULT_TOKEN_LIFETIME_SECONDS = 2 * 365 * 24 * 3600  # "remains valid for 2 years" (SDK TokensAPI.create)


def workspace_host(emulator_host: str, deployment_name: str) -> str:
    """The URL at which the emulator serves workspace `deployment_name`: a WorkspaceClient host."""
    return f"{emulator_host.rstrip('/')}{_WORKSPACE_PREFIX}/{urllib.parse.quote(deployment_name, safe='')}"


def _token_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _purge_expired_tokens(account_id: str) -> None:
    """Expired tokens stop authenticating and drop out of token/list, as on the real service."""
    now = _now_ms()
    tokens = STORE.kind(account_id, "tokens")
    for token_id in [t for t, info in tokens.items() if 0 <= info["expiry_time"] <= now]:
        del tokens[token_id]


def _token_info(record: dict) -> dict:
    """A stored token as the Tokens API shows it (PublicTokenInfo): never its value or hash."""
    return {k: record[k] for k in ("token_id", "creation_time", "expiry_time", "comment") if k in record}


def _workspace_tokens(ws: dict) -> dict[str, dict]:
    return {
        token_id: record
        for token_id, record in STORE.kind(ws["account_id"], "tokens").items()
        if record["workspace_id"] == ws["workspace_id"]
    }


def _served_workspace(settings: SandboxSettings, deployment: str) -> dict:
    """The workspace whose URL this is, if that URL answers now (see the module docstring)."""
    ws = next((w for w in STORE.all_workspaces() if w["deployment_name"] == deployment), None)
    if ws is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"No workspace is served at deployment {deployment}.")
    _advance(settings, ws["account_id"], ws)
    status = ws["workspace_status"]
    if status == "RUNNING" or (status == "PROVISIONING" and ws.get("_served")):
        return ws
    if status == "PROVISIONING":
        raise ApiError(
            503,
            "TEMPORARILY_UNAVAILABLE",
            f"Workspace {ws['workspace_id']} ({deployment}) is still being provisioned; try again later.",
            {"Retry-After": "1"},
        )
    raise ApiError(
        400,
        "INVALID_STATE",
        f"Workspace {ws['workspace_id']} ({deployment}) is {status}, not RUNNING: {ws.get('workspace_status_message', '')}",
    )


def _authenticate(settings: SandboxSettings, request: Request, ws: dict) -> None:
    """The sandbox token, an OAuth token from this workspace's issuer, or a live personal access token of
    this very workspace."""
    auth = request.headers.get("Authorization", "")
    if hmac.compare_digest(auth.encode(), f"Bearer {settings.token}".encode()):
        return
    if oauth.accepts(auth, f"workspace:{ws['workspace_id']}"):
        return
    if auth.startswith("Bearer "):
        digest = _token_hash(auth[len("Bearer ") :])
        if any(hmac.compare_digest(digest, t["_sha256"]) for t in _workspace_tokens(ws).values()):
            return
    raise ApiError(401, "UNAUTHENTICATED", "Invalid access token: send Authorization: Bearer <token>.")


def _me(settings: SandboxSettings, ws: dict) -> dict:
    """The account admin the sandbox token (and every token it created) acts as, as SCIM shows a user."""
    user_id = str(int(hashlib.sha256(ws["account_id"].encode()).hexdigest(), 16) % 10**16)
    user_name = "sandbox-admin@example.com"
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": user_id,
        "userName": user_name,
        "displayName": "Sandbox Admin",
        "active": True,
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "groups": [{"display": "admins", "type": "direct", "value": "1", "$ref": "Groups/1"}],
    }


def _create_token(ws: dict, body: dict) -> dict:
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise _invalid("comment must be a string.")
    lifetime = body.get("lifetime_seconds")
    if lifetime is None:
        lifetime = _DEFAULT_TOKEN_LIFETIME_SECONDS
    elif not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        raise _invalid(f"lifetime_seconds must be a positive number of seconds, not {lifetime!r}.")
    value = "dapi" + secrets.token_hex(16)
    now = _now_ms()
    record: dict[str, Any] = {
        "token_id": secrets.token_hex(32),
        "creation_time": now,
        "expiry_time": now + lifetime * 1000,
        "workspace_id": ws["workspace_id"],
        "_sha256": _token_hash(value),
    }
    if comment is not None:
        record["comment"] = comment
    STORE.kind(ws["account_id"], "tokens")[record["token_id"]] = record
    return {"token_value": value, "token_info": _token_info(record)}


def _handle_workspace(settings: SandboxSettings, request: Request, endpoint: str, args: dict) -> Response:
    ws = _served_workspace(settings, args["deployment"])
    org_id = {"X-Databricks-Org-Id": str(ws["workspace_id"])}
    if endpoint == "ws_metadata":
        # What a workspace host answers (unauthenticated): with workspace_id, so the SDK sees a workspace.
        host = workspace_host(request.host_url, ws["deployment_name"])
        body = {
            "oidc_endpoint": f"{host}/oidc",
            "account_id": ws["account_id"],
            "workspace_id": str(ws["workspace_id"]),
            "cloud": "AWS",
        }
        return Response(json.dumps(body), mimetype="application/json", headers=org_id)
    if endpoint == "ws_oidc_discovery":
        issuer = f"{workspace_host(request.host_url, ws['deployment_name'])}/oidc"
        return Response(json.dumps(oauth.discovery(issuer)), mimetype="application/json", headers=org_id)
    if endpoint == "ws_oidc_token":
        return _token_response(settings, request, f"workspace:{ws['workspace_id']}")
    if endpoint == "ws_unknown":
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} /{args['rest']}'.", org_id)
    try:
        _authenticate(settings, request, ws)
        # Sent by the SDK once host metadata named the workspace; a unified host routes by it.
        claimed = request.headers.get("X-Databricks-Workspace-Id")
        if claimed is not None and claimed != str(ws["workspace_id"]):
            raise _invalid(f"X-Databricks-Workspace-Id {claimed} does not match workspace {ws['workspace_id']}.")
        _purge_expired_tokens(ws["account_id"])
        if endpoint == "ws_token_create":
            result = _create_token(ws, _json_body(request))
        elif endpoint == "ws_token_list":
            result = {"token_infos": [_token_info(t) for t in _workspace_tokens(ws).values()]}
        elif endpoint == "ws_token_delete":
            token_id = _required_str(_json_body(request), "token_id")
            if token_id not in _workspace_tokens(ws):
                raise _not_found("Token", token_id)
            del STORE.kind(ws["account_id"], "tokens")[token_id]
            result = {}
        else:  # ws_me
            result = _me(settings, ws)
    except ApiError as e:
        e.headers = {**org_id, **e.headers}
        raise
    return Response(json.dumps(result), mimetype="application/json", headers=org_id)


# --- WSGI app -------------------------------------------------------------------------------------

_CREATORS: dict[str, Callable[[SandboxSettings, str, dict], dict]] = {
    "credentials": _create_credentials,
    "storage_configurations": _create_storage,
    "networks": _create_network,
    "workspaces": _create_workspace,
    "vpc_endpoints": _create_vpc_endpoint,
    "private_access_settings": _create_private_access_settings,
}

_URLS = Map(
    [
        Rule("/.well-known/databricks-config", endpoint="host_metadata", methods=["GET"]),
        Rule("/api/2.0/accounts/<account_id>/<segment>", endpoint="collection", methods=["GET", "POST"]),
        Rule(
            "/api/2.0/accounts/<account_id>/<segment>/<obj_id>",
            endpoint="item",
            methods=["GET", "DELETE", "PATCH", "PUT"],
        ),
        # Each workspace's own API (see workspace_host); an unknown path or method still checks the
        # workspace first, then answers ENDPOINT_NOT_FOUND as a workspace does.
        Rule(f"{_WORKSPACE_PREFIX}/<deployment>/.well-known/databricks-config", endpoint="ws_metadata", methods=["GET"]),
        Rule(f"{_WORKSPACE_PREFIX}/<deployment>/api/2.0/token/create", endpoint="ws_token_create", methods=["POST"]),
        Rule(f"{_WORKSPACE_PREFIX}/<deployment>/api/2.0/token/list", endpoint="ws_token_list", methods=["GET"]),
        Rule(f"{_WORKSPACE_PREFIX}/<deployment>/api/2.0/token/delete", endpoint="ws_token_delete", methods=["POST"]),
        Rule(f"{_WORKSPACE_PREFIX}/<deployment>/api/2.0/preview/scim/v2/Me", endpoint="ws_me", methods=["GET"]),
        Rule("/oidc/accounts/<account_id>/.well-known/oauth-authorization-server", endpoint="oidc_discovery", methods=["GET"]),
        Rule("/oidc/accounts/<account_id>/v1/token", endpoint="oidc_token", methods=["POST"]),
        Rule(
            f"{_WORKSPACE_PREFIX}/<deployment>/oidc/.well-known/oauth-authorization-server",
            endpoint="ws_oidc_discovery",
            methods=["GET"],
        ),
        Rule(f"{_WORKSPACE_PREFIX}/<deployment>/oidc/v1/token", endpoint="ws_oidc_token", methods=["POST"]),
        Rule(f"{_WORKSPACE_PREFIX}/<deployment>/<path:rest>", endpoint="ws_unknown"),
    ],
    strict_slashes=False,
)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(status: int, error_code: str, message: str) -> Response:
    return _json({"error_code": error_code, "message": message}, status)


def _refresh(settings: SandboxSettings, account_id: str, kind: str, record: dict) -> None:
    """Apply what changed since the last read: workspace transitions, endpoint states from AWS."""
    if kind == "workspaces":
        _advance(settings, account_id, record)
    elif kind == "vpc_endpoints":
        _sync_endpoint(settings, record)


# The only kinds that accept an update, and with which method (as the SDK sends it).
_UPDATE_METHODS = {"workspaces": "PATCH", "private_access_settings": "PUT"}


def _token_response(settings: SandboxSettings, request: Request, audience: str) -> Response:
    try:
        body = oauth.issue(settings.oauth_clients, request.headers.get("Authorization", ""), request.get_data(), audience)
    except oauth.OAuthError as e:
        return _json(e.body(), e.status)
    return Response(json.dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"})


def _handle(settings: SandboxSettings, request: Request, endpoint: str, args: dict) -> Response:
    if endpoint == "oidc_discovery":
        return _json(oauth.discovery(f"{request.host_url.rstrip('/')}/oidc/accounts/{args['account_id']}"))
    if endpoint == "oidc_token":
        return _token_response(settings, request, f"account:{args['account_id']}")
    if endpoint == "host_metadata":
        # What an account host answers: no workspace_id, so the SDK treats it as account-level.
        host = request.host_url.rstrip("/")
        oidc = f"{host}/oidc/accounts/{{account_id}}"
        return _json({"oidc_endpoint": oidc, "account_id": settings.account_id, "cloud": "AWS"})

    account_id, segment = args["account_id"], args["segment"]
    if segment not in _SEGMENTS:
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'.")
    if not _ACCOUNT_ID_RE.match(account_id):
        raise _invalid(f"Account id {account_id} is not a valid account id.")
    kind, id_field = _SEGMENTS[segment]

    if endpoint == "collection":
        if request.method == "POST":
            return _json(_public(_CREATORS[kind](settings, account_id, _json_body(request))))
        records = list(STORE.kind(account_id, kind).values())
        for record in records:
            _refresh(settings, account_id, kind, record)
        return _json([_public(r) for r in records])  # the SDK iterates a bare JSON array

    obj_id: Any = args["obj_id"]
    if kind == "workspaces":
        try:
            obj_id = int(obj_id)
        except ValueError:
            raise _invalid(f"workspace_id {obj_id} must be an integer.") from None
    if request.method in ("PATCH", "PUT") and _UPDATE_METHODS.get(kind) != request.method:
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not supported on {segment}.")
    record = _get(account_id, kind, obj_id)
    _refresh(settings, account_id, kind, record)

    if request.method == "GET":
        return _json(_public(record))
    if request.method == "PATCH":
        body = _json_body(request)
        return _json(_public(_update_workspace(account_id, record, body, request.args.get("update_mask"))))
    if request.method == "PUT":
        return _json(_public(_replace_private_access_settings(account_id, record, _json_body(request))))
    # DELETE: configurations still referenced by a workspace cannot go, as in the real API.
    if kind != "workspaces":
        users = _users_of(account_id, id_field, obj_id)
        if users:
            raise ApiError(
                400,
                "INVALID_STATE",
                f"{segment} {obj_id} cannot be deleted: it is used by workspace(s) {', '.join(map(str, users))}.",
            )
        networks = _networks_using_endpoint(account_id, obj_id) if kind == "vpc_endpoints" else []
        if networks:
            raise ApiError(
                400,
                "INVALID_STATE",
                f"{segment} {obj_id} cannot be deleted: it is used by network configuration(s) {', '.join(networks)}.",
            )
    else:
        _attach_network(account_id, record.get("network_id"), None)
        tokens = STORE.kind(account_id, "tokens")
        for token_id in [t for t, info in tokens.items() if info["workspace_id"] == obj_id]:
            del tokens[token_id]
    del STORE.kind(account_id, kind)[obj_id]
    return _json(_public(record))


def make_databricks_app(settings: SandboxSettings) -> Callable:
    """A WSGI app emulating the Databricks Account API; settings are read at request time."""

    def app(environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        try:
            if request.path.startswith("/api/"):
                # The sandbox token, or an OAuth token from the issuer of the account in the path.
                auth = request.headers.get("Authorization", "")
                parts = request.path.split("/")
                account = parts[4] if len(parts) > 4 and parts[3] == "accounts" else ""
                if not (
                    hmac.compare_digest(auth.encode(), f"Bearer {settings.token}".encode())
                    or oauth.accepts(auth, f"account:{account}")
                ):
                    raise ApiError(401, "UNAUTHENTICATED", "Invalid access token: send Authorization: Bearer <token>.")
            try:
                endpoint, args = _URLS.bind_to_environ(environ).match()
            except HTTPException as e:
                code = "ENDPOINT_NOT_FOUND" if e.code == 404 else "METHOD_NOT_ALLOWED"
                raise ApiError(e.code or 404, code, f"No API found for '{request.method} {request.path}'.") from None
            with STORE.lock:
                if endpoint.startswith("ws_"):
                    response = _handle_workspace(settings, request, endpoint, args)
                else:
                    response = _handle(settings, request, endpoint, args)
        except ApiError as e:
            response = _error(e.status, e.error_code, e.message)
            response.headers.update(e.headers)
        except Exception as e:  # a JSON 500 still reaches the SDK as a typed InternalError
            response = _error(500, "INTERNAL_ERROR", f"{type(e).__name__}: {e}")
        return response(environ, start_response)

    app.sandbox_settings = settings  # type: ignore[attr-defined]  # lets inventory(app) find the settings
    return app
