"""What the Databricks emulator sees of the sandbox's AWS account, as Databricks sees a customer's account:
the only module of the emulator that touches moto's backends or the AWS sandbox.

Everything else asks here and gets plain values back (never moto objects), so the emulator's rules do
not depend on moto's models, and the AWS side could move to another process behind this one module.
Lookups never instantiate a moto region or account (indexing a BackendDict would create one, with a
default VPC as a side effect).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.ec2.models import ec2_backends
from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.s3.models import s3_backends

import provision.clouds.aws.sandbox.endpoints as endpoints  # noqa: PLR0402  (imports the module, not its package)
from provision.clouds.aws.sandbox.iam import CHANGED_AT
from provision.sandbox.settings import SANDBOX_AWS_ACCOUNT_ID, SandboxSettings

_ROLE_ACCOUNT_RE = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/.+$")


@dataclass(frozen=True)
class Role:
    trust_policy: Any  # the assume-role policy document as IAM stores it (JSON, maybe URL-encoded)
    age_seconds: float  # since creation: STS refuses to assume a role that has not propagated yet
    arn: str = ""
    # The role's inline policy documents (JSON text, maybe URL-encoded), by policy name: what Unity Catalog's
    # storage credential validation reads to decide which S3 operations the role may perform.
    inline_policies: tuple[tuple[str, str], ...] = ()
    # Since the latest of its creation, its last trust policy update and its last inline policy put: what
    # STS and IAM have not propagated yet may still answer as before.
    settled_seconds: float | None = None


@dataclass(frozen=True)
class KmsKey:
    region: str
    state: str  # KMS KeyState: Enabled, Disabled, PendingDeletion, ...
    policy: Any  # the key policy document as KMS stores it (JSON text)


@dataclass(frozen=True)
class Vpc:
    dns_support: bool
    dns_hostnames: bool


@dataclass(frozen=True)
class Subnet:
    vpc_id: str
    zone: str
    cidr_block: str


def role(role_arn: str) -> Role | None:
    match = _ROLE_ACCOUNT_RE.match(role_arn)
    if not match or match.group(1) not in iam_backends:
        return None
    try:
        found = iam_backends[match.group(1)]["aws"].get_role_by_arn(role_arn)
    except Exception:  # moto's NotFoundException
        return None
    # moto's create_date is naive UTC, as is the change stamp of the AWS sandbox's IAM patches.
    now = datetime.now(UTC).replace(tzinfo=None)
    age = (now - found.create_date).total_seconds()
    changed = getattr(found, CHANGED_AT, None)
    settled = age if changed is None else min(age, (now - changed).total_seconds())
    inline = tuple((str(name), str(doc)) for name, doc in sorted(found.policies.items()))
    return Role(str(found.assume_role_policy_document), age, str(found.arn), inline, settled)


def kms_key(key_arn: str) -> KmsKey | None:
    """A KMS key by ARN, as Databricks' principal would see it through DescribeKey and the key policy."""
    parts = key_arn.split(":")
    if len(parts) != 6 or parts[2] != "kms" or not parts[5].startswith("key/") or parts[4] not in kms_backends:
        return None
    region, key_id = parts[3], parts[5].removeprefix("key/")
    backends = kms_backends[parts[4]]
    if region not in list(backends.keys()):  # never instantiate a region here
        return None
    found = backends[region].keys.get(key_id)
    return None if found is None else KmsKey(region, found.key_state, found.policy)


def _s3() -> Any:
    # moto 5.2.5 keys S3 by partition ("global" is an alias of "aws").
    return s3_backends[SANDBOX_AWS_ACCOUNT_ID]["aws"]


def bucket_exists(name: str) -> bool:
    return name in _s3().buckets


def bucket_is_versioned(name: str) -> bool:
    return bool(_s3().get_bucket(name).is_versioned)


def put_object(bucket: str, key: str, body: bytes) -> None:
    """Write as Databricks' own principal would: bucket policies are not consulted."""
    _s3().put_object(bucket, key, body)


def _ec2(region: str) -> Any | None:
    backends = ec2_backends[SANDBOX_AWS_ACCOUNT_ID]
    return backends[region] if region in backends else None


def region_exists(region: str) -> bool:
    return _ec2(region) is not None


def vpc_region(vpc_id: str) -> str | None:
    """Region of a VPC, searching only regions moto has instantiated."""
    for region, backend in list(ec2_backends[SANDBOX_AWS_ACCOUNT_ID].items()):
        if vpc_id in backend.vpcs:
            return region
    return None


def _truthy(value: Any) -> bool:
    # moto keeps True from creation but the raw "true"/"false" string after ModifyVpcAttribute.
    return str(value).lower() == "true"


def vpc(region: str, vpc_id: str) -> Vpc | None:
    ec2 = _ec2(region)
    found = ec2.vpcs.get(vpc_id) if ec2 is not None else None
    if found is None:
        return None
    return Vpc(_truthy(found.enable_dns_support), _truthy(found.enable_dns_hostnames))


def subnet(region: str, subnet_id: str) -> Subnet | None:
    ec2 = _ec2(region)
    try:
        found = ec2.get_subnet(subnet_id) if ec2 is not None else None
    except Exception:  # moto's InvalidSubnetIdError
        return None
    return None if found is None else Subnet(found.vpc_id, found.availability_zone, found.cidr_block)


def security_group_vpc(region: str, group_id: str) -> str | None:
    """The VPC of a security group, or None if the group does not exist in the region."""
    ec2 = _ec2(region)
    group = ec2.get_security_group_from_id(group_id) if ec2 is not None else None
    return None if group is None else group.vpc_id


# --- back-end PrivateLink: the provider side of the Databricks endpoint services ---------------------------


def endpoint(settings: SandboxSettings | None, aws_vpc_endpoint_id: str, region: str) -> dict | None:
    """The AWS endpoint as DescribeVpcEndpoints shows it now (the AWS sandbox's timers applied)."""
    return endpoints.vpc_endpoint_snapshot(aws_vpc_endpoint_id, region, settings)


def endpoint_service_kind(service_name: str | None, region: str) -> str | None:
    """"workspace" or "relay" for the region's Databricks endpoint services, else None."""
    return endpoints.databricks_service_kind(service_name, region)


def accept_endpoint(aws_vpc_endpoint_id: str, region: str) -> None:
    """Accept the connection, as the endpoint service's owner (Databricks) does on registration."""
    endpoints.accept_vpc_endpoint(aws_vpc_endpoint_id, SANDBOX_AWS_ACCOUNT_ID, region)
