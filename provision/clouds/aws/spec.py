"""The AWS sections of a spec: region and tags (AWS's rules), the workspace network (new or existing),
PrivateLink, and the root bucket. Each parser records every problem with its field and returns None on failure.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from provision.regions import PRIVATELINK_SERVICES
from provision.spec import Checker, Section, allocate, parse_cidr

# AWS regions where Databricks runs E2 workspaces.
DATABRICKS_AWS_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
        "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1",
        "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
        "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    }
)
PRIVATE_ACCESS_LEVELS = ("ACCOUNT", "ENDPOINT")
NAT_MODES = ("single", "per_az")
# Databricks requires workspace subnets between /17 and /26.
PRIVATE_NETMASK_RANGE = (17, 26)
# AWS allows subnets between /16 and /28.
SUBNET_NETMASK_RANGE = (16, 28)

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ID_RES = {
    "vpc": re.compile(r"vpc-[0-9a-f]{8,17}"),
    "subnet": re.compile(r"subnet-[0-9a-f]{8,17}"),
    "sg": re.compile(r"sg-[0-9a-f]{8,17}"),
}
_ROLE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_SERVICE_RE = re.compile(r"com\.amazonaws\.vpce\.[a-z0-9-]+\.vpce-svc-[0-9a-f]{8,17}")


@dataclass(frozen=True)
class NetworkSpec:
    vpc_cidr: str
    az_count: int
    availability_zones: tuple[str, ...]
    private_subnet_cidrs: tuple[str, ...]
    public_subnet_cidrs: tuple[str, ...]
    nat: str


@dataclass(frozen=True)
class StorageSpec:
    bucket_name: str
    existing: bool = False  # the user's bucket: read, never modified destructively, never deleted


@dataclass(frozen=True)
class ExistingSpec:
    """Infrastructure the user already has. Checked by a preflight before anything is created."""

    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_id: str | None = None
    bucket_name: str | None = None
    cross_account_role_arn: str | None = None


@dataclass(frozen=True)
class PrivateLinkSpec:
    endpoint_subnet_cidr: str
    workspace_service: str
    relay_service: str
    public_access_enabled: bool
    private_access_level: str


def derived_bucket_name(name: str, account_id: str, region: str) -> str:
    """Deterministic, globally unlikely to collide: the deployment name plus a short hash."""
    digest = hashlib.sha256(f"{account_id}/{region}/{name}".encode()).hexdigest()[:8]
    return f"{name}-root-{digest}"


def bucket_problem(bucket: str) -> str | None:
    if not _BUCKET_RE.fullmatch(bucket):
        return "must be 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        return "must not contain '..', '.-' or '-.'"
    if re.match(r"^\d+\.\d+\.\d+\.\d+$", bucket):
        return "must not look like an IP address"
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        return "uses a prefix or suffix S3 reserves"
    return None


def parse_region(check: Checker, data: dict[str, Any]) -> str | None:
    region = check.string(data, "region", "region")
    if region is not None and region not in DATABRICKS_AWS_REGIONS:
        check.fail("region", f"{region!r} is not an AWS region where Databricks runs (known: {', '.join(sorted(DATABRICKS_AWS_REGIONS))})")
        return None
    return region


def parse_tags(check: Checker, data: dict[str, Any]) -> dict[str, str]:
    tags_raw = data.get("tags", {})
    tags: dict[str, str] = {}
    if not isinstance(tags_raw, dict):
        check.fail("tags", "must be a table of string values")
        return tags
    for key, value in tags_raw.items():
        where = f"tags.{key}"
        if not isinstance(value, str):
            check.fail(where, "must be a string")
        elif key == "Name" or key.startswith(("provision:", "aws:")):
            check.fail(where, "is reserved (provision sets Name and provision:* itself; aws:* is AWS's)")
        elif not 1 <= len(key) <= 128 or len(value) > 256:
            check.fail(where, "AWS limits tag keys to 128 and values to 256 characters")
        else:
            tags[key] = value
    return tags


def _network(check: Checker, data: dict[str, Any], region: str | None, existing_vpc: bool) -> NetworkSpec | None:
    allowed = {
        "vpc_cidr", "az_count", "availability_zones", "private_subnet_netmask", "public_subnet_netmask",
        "private_subnet_cidrs", "public_subnet_cidrs", "nat",
    }
    if existing_vpc:
        if "network" in data:
            check.fail("network", "cannot be combined with existing.vpc_id: the VPC and its subnets already exist")
        return None
    net = check.table(data, "network", allowed)
    if "network" not in data:
        check.fail("network", "is required (or name an existing VPC in existing.vpc_id)")
        return None
    vpc_text = check.string(net, "vpc_cidr", "network.vpc_cidr")
    vpc = parse_cidr(check, vpc_text, "network.vpc_cidr") if vpc_text is not None else None
    if vpc is not None and not 16 <= vpc.prefixlen <= 28:
        check.fail("network.vpc_cidr", f"netmask /{vpc.prefixlen} is outside AWS's /16-/28 for a VPC")
        vpc = None

    zones = check.string_list(net, "availability_zones", "network.availability_zones")
    az_count = check.integer(net, "az_count", "network.az_count", default=len(zones) if zones else 2)
    if az_count is not None and az_count < 2:
        check.fail("network.az_count", f"Databricks needs subnets in at least 2 availability zones, got {az_count}")
        az_count = None
    if az_count is not None and az_count > 6:
        check.fail("network.az_count", f"at most 6 availability zones are supported, got {az_count}")
        az_count = None
    if zones is not None:
        if az_count is not None and len(zones) != az_count:
            check.fail("network.availability_zones", f"lists {len(zones)} zones but network.az_count is {az_count}")
        if len(set(zones)) != len(zones):
            check.fail("network.availability_zones", "zones must be distinct")
        if len(zones) < 2:
            check.fail("network.availability_zones", "Databricks needs at least 2 distinct availability zones")
        for zone in zones:
            if region and not re.fullmatch(re.escape(region) + r"[a-z]", zone):
                check.fail("network.availability_zones", f"{zone!r} is not a zone of region {region}")
    # Without explicit zones, the run resolves the region's first az_count available zones once
    # (describe_availability_zones) and records them in the state file: zone letters vary by region
    # and by account, so they cannot be guessed here.

    nat = check.string(net, "nat", "network.nat", required=False, default="single")
    if nat is not None and nat not in NAT_MODES:
        check.fail("network.nat", f"must be one of {', '.join(NAT_MODES)}, got {nat!r}")

    private_mask = check.integer(net, "private_subnet_netmask", "network.private_subnet_netmask", default=19)
    public_mask = check.integer(net, "public_subnet_netmask", "network.public_subnet_netmask", default=26)
    lo, hi = PRIVATE_NETMASK_RANGE
    if private_mask is not None and not lo <= private_mask <= hi:
        check.fail("network.private_subnet_netmask", f"/{private_mask} is outside the Databricks limit /{lo}-/{hi}")
        private_mask = None
    slo, shi = SUBNET_NETMASK_RANGE
    if public_mask is not None and not slo <= public_mask <= shi:
        check.fail("network.public_subnet_netmask", f"/{public_mask} is outside AWS's /{slo}-/{shi}")
        public_mask = None

    def explicit(key: str, limits: tuple[int, int], limit_name: str) -> list[ipaddress.IPv4Network] | None:
        texts = check.string_list(net, key, f"network.{key}")
        if texts is None:
            return None
        where = f"network.{key}"
        blocks = []
        for i, text in enumerate(texts):
            block = parse_cidr(check, text, f"{where}[{i}]")
            if block is None:
                continue
            if not limits[0] <= block.prefixlen <= limits[1]:
                check.fail(f"{where}[{i}]", f"netmask /{block.prefixlen} is outside {limit_name} /{limits[0]}-/{limits[1]}")
            if vpc is not None and not block.subnet_of(vpc):
                check.fail(f"{where}[{i}]", f"{block} is not inside network.vpc_cidr {vpc}")
            blocks.append(block)
        if az_count is not None and len(texts) != az_count:
            check.fail(where, f"needs one CIDR per availability zone ({az_count}), got {len(texts)}")
        return blocks

    private = explicit("private_subnet_cidrs", PRIVATE_NETMASK_RANGE, "the Databricks limit")
    public = explicit("public_subnet_cidrs", SUBNET_NETMASK_RANGE, "AWS's limit")
    if vpc is not None and az_count is not None and (private is None or public is None):
        wanted: list[int] = []
        if private is None and private_mask is not None:
            wanted += [private_mask] * az_count
        if public is None and public_mask is not None:
            wanted += [public_mask] * az_count
        taken = (private or []) + (public or [])
        carved = allocate(vpc, wanted) if not taken else None
        if taken and wanted:
            check.fail("network", "give both private_subnet_cidrs and public_subnet_cidrs, or neither")
        elif wanted and carved is None:
            check.fail(
                "network.vpc_cidr",
                f"{vpc} is too small for {az_count} private /{private_mask} and {az_count} public /{public_mask} subnets",
            )
        elif carved is not None and private_mask is not None and public_mask is not None:
            private, public = carved[:az_count], carved[az_count:]
    all_blocks = [("private_subnet_cidrs", b) for b in private or []] + [("public_subnet_cidrs", b) for b in public or []]
    for i, (name_a, a) in enumerate(all_blocks):
        for name_b, b in all_blocks[i + 1 :]:
            if a.overlaps(b):
                check.fail(f"network.{name_b}", f"{b} overlaps {a} (network.{name_a})")
    if vpc is None or private is None or public is None or nat is None or az_count is None:
        return None
    return NetworkSpec(
        vpc_cidr=str(vpc),
        az_count=az_count,
        availability_zones=tuple(zones or ()),
        private_subnet_cidrs=tuple(str(b) for b in private),
        public_subnet_cidrs=tuple(str(b) for b in public),
        nat=nat,
    )


def _existing(check: Checker, data: dict[str, Any]) -> ExistingSpec:
    table = check.table(data, "existing", {"vpc_id", "subnet_ids", "security_group_id", "bucket_name", "cross_account_role_arn"})

    def resource_id(key: str, kind: str) -> str | None:
        value = check.string(table, key, f"existing.{key}", required=False)
        if value is not None and not _ID_RES[kind].fullmatch(value):
            check.fail(f"existing.{key}", f"{value!r} is not a {kind} id")
            return None
        return value

    vpc_id = resource_id("vpc_id", "vpc")
    group = resource_id("security_group_id", "sg")
    subnets = check.string_list(table, "subnet_ids", "existing.subnet_ids")
    if subnets is not None:
        for i, subnet in enumerate(subnets):
            if not _ID_RES["subnet"].fullmatch(subnet):
                check.fail(f"existing.subnet_ids[{i}]", f"{subnet!r} is not a subnet id")
        if len(set(subnets)) != len(subnets):
            check.fail("existing.subnet_ids", "subnets must be distinct")
        if len(subnets) < 2:
            check.fail("existing.subnet_ids", "Databricks needs at least 2 subnets in distinct availability zones")
    network_keys = [k for k in ("vpc_id", "subnet_ids", "security_group_id") if k in table]
    if network_keys and len(network_keys) < 3:
        missing = [f"existing.{k}" for k in ("vpc_id", "subnet_ids", "security_group_id") if k not in table]
        check.fail(missing[0], f"is required with {', '.join('existing.' + k for k in network_keys)}: an existing network is a VPC, its subnets and a security group")
    bucket = check.string(table, "bucket_name", "existing.bucket_name", required=False)
    if bucket is not None and (problem := bucket_problem(bucket)):
        check.fail("existing.bucket_name", f"{bucket!r} {problem}")
    role = check.string(table, "cross_account_role_arn", "existing.cross_account_role_arn", required=False)
    if role is not None and not _ROLE_ARN_RE.fullmatch(role):
        check.fail("existing.cross_account_role_arn", f"{role!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    return ExistingSpec(vpc_id, tuple(subnets or ()), group, bucket, role)


def _privatelink(check: Checker, data: dict[str, Any], region: str | None, network: NetworkSpec | None) -> PrivateLinkSpec | None:
    allowed = {"endpoint_subnet_cidr", "workspace_service", "relay_service", "public_access_enabled", "private_access_level"}
    table = check.table(data, "privatelink", allowed)
    if "privatelink" not in data:
        check.fail("privatelink", "is required for topology \"privatelink\" (at least endpoint_subnet_cidr)")
        return None
    cidr_text = check.string(table, "endpoint_subnet_cidr", "privatelink.endpoint_subnet_cidr")
    cidr = parse_cidr(check, cidr_text, "privatelink.endpoint_subnet_cidr") if cidr_text is not None else None
    if cidr is not None and not SUBNET_NETMASK_RANGE[0] <= cidr.prefixlen <= SUBNET_NETMASK_RANGE[1]:
        check.fail("privatelink.endpoint_subnet_cidr", f"netmask /{cidr.prefixlen} is outside AWS's /16-/28")
        cidr = None
    if cidr is not None and network is not None:
        vpc = ipaddress.IPv4Network(network.vpc_cidr)
        if not cidr.subnet_of(vpc):
            check.fail("privatelink.endpoint_subnet_cidr", f"{cidr} is not inside network.vpc_cidr {vpc}")
        for other in network.private_subnet_cidrs + network.public_subnet_cidrs:
            if cidr.overlaps(ipaddress.IPv4Network(other)):
                check.fail("privatelink.endpoint_subnet_cidr", f"{cidr} overlaps the workspace network's subnet {other}")
    known = PRIVATELINK_SERVICES.get(region or "")
    services = {}
    for key in ("workspace_service", "relay_service"):
        value = check.string(table, key, f"privatelink.{key}", required=False)
        if value is not None and not _SERVICE_RE.fullmatch(value):
            check.fail(f"privatelink.{key}", f"{value!r} is not a VPC endpoint service name (com.amazonaws.vpce.<region>.vpce-svc-...)")
            value = None
        elif value is not None and region and not value.startswith(f"com.amazonaws.vpce.{region}."):
            check.fail(f"privatelink.{key}", f"{value!r} is not a service of region {region}")
            value = None
        elif value is None and known is not None:
            value = known.workspace if key == "workspace_service" else known.relay
        elif value is None and region:
            check.fail(
                f"privatelink.{key}",
                f"no Databricks endpoint service is known for region {region}; set privatelink.workspace_service and privatelink.relay_service",
            )
        services[key] = value
    public = table.get("public_access_enabled", True)
    if not isinstance(public, bool):
        check.fail("privatelink.public_access_enabled", f"must be true or false, got {type(public).__name__}")
    elif not public:
        # With back-end PrivateLink only, no private path exists for users: they would lose the workspace.
        check.fail("privatelink.public_access_enabled", "false needs front-end PrivateLink, which this topology does not build; users could not reach the workspace")
    level = check.string(table, "private_access_level", "privatelink.private_access_level", required=False, default="ACCOUNT")
    if level is not None and level not in PRIVATE_ACCESS_LEVELS:
        check.fail("privatelink.private_access_level", f"must be one of {', '.join(PRIVATE_ACCESS_LEVELS)}, got {level!r}")
    if cidr is None or not services.get("workspace_service") or not services.get("relay_service") or level is None or not isinstance(public, bool):
        return None
    return PrivateLinkSpec(str(cidr), services["workspace_service"], services["relay_service"], public, level)




def _storage(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> StorageSpec | None:
    """The root bucket: the user's existing one, a name from the spec, or one derived from the deployment."""
    existing: ExistingSpec | None = parsed.get("existing")
    name, account_id, region = parsed.get("name"), parsed.get("account_id"), parsed.get("region")
    storage = check.table(data, "storage", {"bucket_name"})
    bucket = check.string(storage, "bucket_name", "storage.bucket_name", required=False)
    if existing is not None and existing.bucket_name is not None:
        if bucket is not None:
            check.fail("storage.bucket_name", "cannot be combined with existing.bucket_name")
        return StorageSpec(existing.bucket_name, existing=True)
    if bucket is not None:
        problem = bucket_problem(bucket)
        if problem:
            check.fail("storage.bucket_name", f"{bucket!r} {problem}")
            return None
        return StorageSpec(bucket)
    if name and account_id and region:
        return StorageSpec(derived_bucket_name(name, account_id, region))
    return None


def _existing_vpc(parsed: dict[str, Any]) -> bool:
    existing: ExistingSpec | None = parsed.get("existing")
    return existing is not None and existing.vpc_id is not None


# The sections, in the order a topology parses them (each may read what came before it).
EXISTING = Section("existing", ("existing",), lambda check, data, parsed: _existing(check, data))
NETWORK = Section("network", ("network",), lambda check, data, parsed: _network(check, data, parsed.get("region"), _existing_vpc(parsed)))
PRIVATELINK = Section(
    "privatelink", ("privatelink",),
    lambda check, data, parsed: _privatelink(check, data, parsed.get("region"), parsed.get("network")),
)
# After the databricks section: a derived bucket name needs the account id.
STORAGE = Section("storage", ("storage",), _storage)
