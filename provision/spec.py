"""The deployment spec: TOML in, a validated, immutable Spec out.

Everything is checked before any API call, and every problem is reported at once, each naming its field
(`network.vpc_cidr: ...`). Credentials never appear here: AWS comes from boto3's default chain and
Databricks from databricks-sdk's unified auth (optionally a named profile).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provision.orchestrator.errors import FieldProblem, SpecError
from provision.regions import EGRESS_FACTS, PRIVATELINK_SERVICES

# AWS regions where Databricks runs E2 workspaces.
DATABRICKS_AWS_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
        "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1",
        "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
        "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    }
)
TOPOLOGIES = ("basic", "privatelink", "hub-spoke")
PRIVATE_ACCESS_LEVELS = ("ACCOUNT", "ENDPOINT")
PRICING_TIERS = ("STANDARD", "PREMIUM", "ENTERPRISE")
NAT_MODES = ("single", "per_az")
# Databricks requires workspace subnets between /17 and /26.
PRIVATE_NETMASK_RANGE = (17, 26)
# AWS allows subnets between /16 and /28.
SUBNET_NETMASK_RANGE = (16, 28)

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,26}[a-z0-9]$")
_WORKSPACE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,63}$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PROFILE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
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
class SpokeSpec:
    name: str
    vpc_cidr: str
    private_subnet_cidrs: tuple[str, ...]
    tgw_subnet_cidrs: tuple[str, ...]
    workspace_name: str
    bucket_name: str


@dataclass(frozen=True)
class HubSpec:
    vpc_cidr: str
    az_count: int
    tgw_subnet_cidrs: tuple[str, ...]
    public_subnet_cidrs: tuple[str, ...]
    firewall_subnet_cidrs: tuple[str, ...]
    allowed_domains: tuple[str, ...]
    web_app_host: str
    relay_host: str
    metastore_host: str
    control_plane_cidr: str
    spokes: tuple[SpokeSpec, ...]
    workspace_token: bool


@dataclass(frozen=True)
class DatabricksSpec:
    account_id: str
    workspace_name: str
    pricing_tier: str
    host: str | None
    profile: str | None


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


@dataclass(frozen=True)
class TimeoutsSpec:
    retry_deadline_seconds: float
    workspace_seconds: float
    resource_seconds: float


@dataclass(frozen=True)
class Spec:
    name: str
    region: str
    topology: str
    tags: dict[str, str]
    network: NetworkSpec | None  # None when the workspace goes into an existing VPC
    databricks: DatabricksSpec
    storage: StorageSpec
    timeouts: TimeoutsSpec
    existing: ExistingSpec = field(default_factory=ExistingSpec)
    privatelink: PrivateLinkSpec | None = None
    hub: HubSpec | None = None
    raw: dict[str, Any] = field(compare=False, repr=False, default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The spec as run, for the state file (re-validated by from_dict on resume)."""
        return self.raw


class _Checker:
    """Collects problems; each accessor returns a value of the right type or None after recording why."""

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def fail(self, field_name: str, reason: str) -> None:
        self.problems.append(FieldProblem(field_name, reason))

    def table(self, data: dict[str, Any], key: str, allowed: set[str], prefix: str = "") -> dict[str, Any]:
        value = data.get(key, {})
        where = f"{prefix}{key}"
        if not isinstance(value, dict):
            self.fail(where, f"must be a table, got {type(value).__name__}")
            return {}
        self.unknown(value, allowed, f"{where}.")
        return value

    def unknown(self, data: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for key in data:
            if key not in allowed:
                self.fail(f"{prefix}{key}" if key else f'{prefix}""', "unknown field")

    def string(self, data: dict[str, Any], key: str, where: str, *, required: bool = True, default: str | None = None) -> str | None:
        if key not in data:
            if required:
                self.fail(where, "is required")
            return default
        value = data[key]
        if not isinstance(value, str):
            self.fail(where, f"must be a string, got {type(value).__name__}")
            return None
        return value

    def integer(self, data: dict[str, Any], key: str, where: str, default: int) -> int | None:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"must be an integer, got {type(value).__name__}")
            return None
        return value

    def number(self, data: dict[str, Any], key: str, where: str, default: float, minimum: float) -> float | None:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"must be a number, got {type(value).__name__}")
            return None
        if not math.isfinite(value) or value > 7 * 24 * 3600:
            self.fail(where, f"must be a finite number of seconds up to a week, got {value}")
            return None
        if value < minimum:
            self.fail(where, f"must be at least {minimum:g}, got {value:g}")
            return None
        return float(value)

    def string_list(self, data: dict[str, Any], key: str, where: str) -> list[str] | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(where, "must be a list of strings")
            return None
        return value


def derived_bucket_name(name: str, account_id: str, region: str) -> str:
    """Deterministic, globally unlikely to collide: the deployment name plus a short hash."""
    digest = hashlib.sha256(f"{account_id}/{region}/{name}".encode()).hexdigest()[:8]
    return f"{name}-root-{digest}"


def _bucket_problem(bucket: str) -> str | None:
    if not _BUCKET_RE.fullmatch(bucket):
        return "must be 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        return "must not contain '..', '.-' or '-.'"
    if re.match(r"^\d+\.\d+\.\d+\.\d+$", bucket):
        return "must not look like an IP address"
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        return "uses a prefix or suffix S3 reserves"
    return None


def _parse_cidr(check: _Checker, text: str, where: str) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        reason = str(exc)
        if "has host bits set" in reason:
            reason = f"{text!r} has host bits set (did you mean {ipaddress.IPv4Network(text, strict=False)}?)"
        else:
            reason = f"{text!r} is not a valid IPv4 CIDR block"
        check.fail(where, reason)
        return None
    return net


def _allocate(vpc: ipaddress.IPv4Network, prefixes: list[int]) -> list[ipaddress.IPv4Network] | None:
    """Carve blocks of the given prefix lengths from the VPC in order, each aligned; None if they don't fit."""
    cursor = int(vpc.network_address)
    end = int(vpc.broadcast_address) + 1
    blocks = []
    for prefix in prefixes:
        size = 2 ** (32 - prefix)
        cursor = (cursor + size - 1) // size * size
        if cursor + size > end:
            return None
        blocks.append(ipaddress.IPv4Network((cursor, prefix)))
        cursor += size
    return blocks


def _network(check: _Checker, data: dict[str, Any], region: str | None, existing_vpc: bool) -> NetworkSpec | None:
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
    vpc = _parse_cidr(check, vpc_text, "network.vpc_cidr") if vpc_text is not None else None
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
            block = _parse_cidr(check, text, f"{where}[{i}]")
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
        carved = _allocate(vpc, wanted) if not taken else None
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


def _existing(check: _Checker, data: dict[str, Any]) -> ExistingSpec:
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
    if bucket is not None and (problem := _bucket_problem(bucket)):
        check.fail("existing.bucket_name", f"{bucket!r} {problem}")
    role = check.string(table, "cross_account_role_arn", "existing.cross_account_role_arn", required=False)
    if role is not None and not _ROLE_ARN_RE.fullmatch(role):
        check.fail("existing.cross_account_role_arn", f"{role!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    return ExistingSpec(vpc_id, tuple(subnets or ()), group, bucket, role)


def _privatelink(check: _Checker, data: dict[str, Any], region: str | None, topology: str | None, network: NetworkSpec | None) -> PrivateLinkSpec | None:
    allowed = {"endpoint_subnet_cidr", "workspace_service", "relay_service", "public_access_enabled", "private_access_level"}
    if topology != "privatelink":
        if "privatelink" in data:
            check.fail("privatelink", f"only applies to topology \"privatelink\", not {topology!r}")
        return None
    table = check.table(data, "privatelink", allowed)
    if "privatelink" not in data:
        check.fail("privatelink", "is required for topology \"privatelink\" (at least endpoint_subnet_cidr)")
        return None
    cidr_text = check.string(table, "endpoint_subnet_cidr", "privatelink.endpoint_subnet_cidr")
    cidr = _parse_cidr(check, cidr_text, "privatelink.endpoint_subnet_cidr") if cidr_text is not None else None
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


_SPOKE_NAME_RE = re.compile(r"[a-z][a-z0-9]{0,11}")


def _hub(check: _Checker, data: dict[str, Any], region: str | None, name: str | None, account_id: str | None, dbx: dict[str, Any]) -> HubSpec | None:
    """The hub VPC (TGW, NAT and firewall subnets per zone), the firewall's allow-list, and the spokes."""
    hub = check.table(data, "hub", {"vpc_cidr", "az_count"})
    if "hub" not in data:
        check.fail("hub", "is required for topology \"hub-spoke\" (at least vpc_cidr)")
        return None
    vpc_text = check.string(hub, "vpc_cidr", "hub.vpc_cidr")
    vpc = _parse_cidr(check, vpc_text, "hub.vpc_cidr") if vpc_text is not None else None
    az_count = check.integer(hub, "az_count", "hub.az_count", default=2)
    if az_count is not None and not 2 <= az_count <= 6:
        check.fail("hub.az_count", f"must be between 2 and 6, got {az_count}")
        az_count = None
    hub_blocks = None
    if vpc is not None and az_count is not None:
        hub_blocks = _allocate(vpc, [28] * (3 * az_count))
        if hub_blocks is None:
            check.fail("hub.vpc_cidr", f"{vpc} is too small for {az_count} zones of /28 TGW, NAT and firewall subnets")

    fw = check.table(data, "firewall", {"allowed_domains", "web_app_host", "relay_host", "metastore_host", "control_plane_cidr"})
    domains = check.string_list(fw, "allowed_domains", "firewall.allowed_domains") or []
    for i, domain in enumerate(domains):
        if not re.fullmatch(r"\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", domain):
            check.fail(f"firewall.allowed_domains[{i}]", f"{domain!r} is not a domain (a leading dot allows subdomains)")
    facts = EGRESS_FACTS.get(region or "")
    values = {}
    for key, attr in (("web_app_host", "web_app"), ("relay_host", "relay"), ("metastore_host", "metastore"), ("control_plane_cidr", "control_plane_cidr")):
        value = check.string(fw, key, f"firewall.{key}", required=False)
        if value is None and facts is not None:
            value = getattr(facts, attr)
        elif value is None and region:
            check.fail(f"firewall.{key}", f"no Databricks egress facts are known for region {region}; set it")
        values[key] = value
    if values.get("control_plane_cidr"):
        _parse_cidr(check, values["control_plane_cidr"], "firewall.control_plane_cidr")

    token = dbx.get("workspace_token", False)
    if not isinstance(token, bool):
        check.fail("databricks.workspace_token", "must be true or false")
        token = False

    raw_spokes = data.get("spokes")
    spokes: list[SpokeSpec] = []
    if not isinstance(raw_spokes, list) or not raw_spokes:
        check.fail("spokes", "needs at least one [[spokes]] entry (name, vpc_cidr)")
        raw_spokes = []
    taken: list[tuple[str, ipaddress.IPv4Network]] = [("hub.vpc_cidr", vpc)] if vpc is not None else []
    names: set[str] = set()
    for i, raw in enumerate(raw_spokes):
        where = f"spokes[{i}]"
        if not isinstance(raw, dict):
            check.fail(where, "must be a table")
            continue
        check.unknown(raw, {"name", "vpc_cidr", "private_subnet_netmask", "workspace_name", "bucket_name"}, f"{where}.")
        spoke_name = check.string(raw, "name", f"{where}.name")
        if spoke_name is not None and not _SPOKE_NAME_RE.fullmatch(spoke_name):
            check.fail(f"{where}.name", f"{spoke_name!r} must be 1-12 lowercase letters and digits, starting with a letter")
            spoke_name = None
        if spoke_name in names:
            check.fail(f"{where}.name", f"{spoke_name!r} is used by another spoke")
        names.add(spoke_name or "")
        cidr_text = check.string(raw, "vpc_cidr", f"{where}.vpc_cidr")
        cidr = _parse_cidr(check, cidr_text, f"{where}.vpc_cidr") if cidr_text is not None else None
        if cidr is not None:
            for other_where, other in taken:
                if cidr.overlaps(other):
                    check.fail(f"{where}.vpc_cidr", f"{cidr} overlaps {other} ({other_where})")
            taken.append((f"{where}.vpc_cidr", cidr))
        mask = check.integer(raw, "private_subnet_netmask", f"{where}.private_subnet_netmask", default=19)
        lo, hi = PRIVATE_NETMASK_RANGE
        if mask is not None and not lo <= mask <= hi:
            check.fail(f"{where}.private_subnet_netmask", f"/{mask} is outside the Databricks limit /{lo}-/{hi}")
            mask = None
        blocks = None
        if cidr is not None and mask is not None and az_count is not None:
            blocks = _allocate(cidr, [mask] * az_count + [28] * az_count)
            if blocks is None:
                check.fail(f"{where}.vpc_cidr", f"{cidr} is too small for {az_count} /{mask} workspace subnets and {az_count} /28 TGW subnets")
        workspace_name = check.string(raw, "workspace_name", f"{where}.workspace_name", required=False)
        if workspace_name is None and name and spoke_name:
            workspace_name = f"{name}-{spoke_name}"
        bucket = check.string(raw, "bucket_name", f"{where}.bucket_name", required=False)
        if bucket is not None and (problem := _bucket_problem(bucket)):
            check.fail(f"{where}.bucket_name", f"{bucket!r} {problem}")
        elif bucket is None and name and spoke_name and account_id and region:
            bucket = derived_bucket_name(f"{name}-{spoke_name}", account_id, region)
        if spoke_name and cidr is not None and blocks is not None and workspace_name and bucket and az_count is not None:
            spokes.append(SpokeSpec(
                spoke_name, str(cidr), tuple(map(str, blocks[:az_count])), tuple(map(str, blocks[az_count:])), workspace_name, bucket,
            ))
    if vpc is None or az_count is None or hub_blocks is None or None in values.values() or len(spokes) != len(raw_spokes):
        return None
    n = az_count
    return HubSpec(
        vpc_cidr=str(vpc), az_count=n,
        tgw_subnet_cidrs=tuple(map(str, hub_blocks[:n])), public_subnet_cidrs=tuple(map(str, hub_blocks[n:2 * n])),
        firewall_subnet_cidrs=tuple(map(str, hub_blocks[2 * n:])),
        allowed_domains=tuple(domains), spokes=tuple(spokes), workspace_token=token, **values,
    )


def from_dict(data: dict[str, Any], source: str = "<spec>") -> Spec:
    """Validate a parsed spec completely; raise SpecError listing every problem."""
    check = _Checker()
    top = {
        "name", "region", "topology", "tags", "network", "databricks", "storage", "timeouts", "existing", "privatelink",
        "hub", "firewall", "spokes",
    }
    check.unknown(data, top, "")

    name = check.string(data, "name", "name")
    if name is not None and not _NAME_RE.fullmatch(name):
        check.fail("name", f"{name!r} must be 3-28 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen")
        name = None
    region = check.string(data, "region", "region")
    if region is not None and region not in DATABRICKS_AWS_REGIONS:
        check.fail("region", f"{region!r} is not an AWS region where Databricks runs (known: {', '.join(sorted(DATABRICKS_AWS_REGIONS))})")
        region = None
    topology = check.string(data, "topology", "topology", required=False, default="basic")
    if topology is not None and topology not in TOPOLOGIES:
        check.fail("topology", f"unknown topology {topology!r}; choose one of {', '.join(TOPOLOGIES)}")

    tags_raw = data.get("tags", {})
    tags: dict[str, str] = {}
    if not isinstance(tags_raw, dict):
        check.fail("tags", "must be a table of string values")
    else:
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

    existing = _existing(check, data)
    hub_spoke = topology == "hub-spoke"
    network = _network(check, data, region, existing_vpc=existing.vpc_id is not None) if not hub_spoke else None
    if hub_spoke and "network" in data:
        check.fail("network", "does not apply to topology \"hub-spoke\": use [hub] and [[spokes]]")
    if not hub_spoke:
        for key in ("hub", "firewall", "spokes"):
            if key in data:
                check.fail(key, f"only applies to topology \"hub-spoke\", not {topology!r}")
    privatelink = _privatelink(check, data, region, topology, network)

    dbx = check.table(data, "databricks", {"account_id", "workspace_name", "pricing_tier", "host", "profile", "workspace_token"})
    if "databricks" not in data:
        check.fail("databricks", "is required")
    account_id = check.string(dbx, "account_id", "databricks.account_id")
    if account_id is not None and not _UUID_RE.fullmatch(account_id):
        check.fail("databricks.account_id", f"{account_id!r} is not a Databricks account id (a lowercase UUID)")
        account_id = None
    workspace_name = check.string(dbx, "workspace_name", "databricks.workspace_name", required=False, default=name)
    if workspace_name is not None and not _WORKSPACE_NAME_RE.fullmatch(workspace_name):
        check.fail("databricks.workspace_name", f"{workspace_name!r} must be 1-64 letters, digits, spaces, '_' or '-', starting with a letter or digit")
    # PrivateLink needs the Enterprise tier.
    tier = check.string(dbx, "pricing_tier", "databricks.pricing_tier", required=False, default="ENTERPRISE" if topology == "privatelink" else "PREMIUM")
    if tier is not None and tier not in PRICING_TIERS:
        check.fail("databricks.pricing_tier", f"must be one of {', '.join(PRICING_TIERS)}, got {tier!r}")
    elif tier is not None and topology == "privatelink" and tier != "ENTERPRISE":
        check.fail("databricks.pricing_tier", f"PrivateLink needs the ENTERPRISE tier, got {tier!r}")
    # No default here: a named profile may carry its own host; clients.py falls back to the AWS account console.
    host = check.string(dbx, "host", "databricks.host", required=False)
    if host is not None and not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?/?", host):
        check.fail("databricks.host", f"{host!r} must be an https:// URL of the account console")
    profile = check.string(dbx, "profile", "databricks.profile", required=False)
    if profile is not None and not _PROFILE_RE.fullmatch(profile):
        check.fail("databricks.profile", f"{profile!r} is not a valid profile name")

    storage = check.table(data, "storage", {"bucket_name"})
    bucket = check.string(storage, "bucket_name", "storage.bucket_name", required=False)
    if existing.bucket_name is not None:
        if bucket is not None:
            check.fail("storage.bucket_name", "cannot be combined with existing.bucket_name")
        bucket = existing.bucket_name
    elif bucket is not None:
        problem = _bucket_problem(bucket)
        if problem:
            check.fail("storage.bucket_name", f"{bucket!r} {problem}")
    elif name and account_id and region:
        bucket = derived_bucket_name(name, account_id, region)

    hub = _hub(check, data, region, name, account_id, dbx) if hub_spoke else None

    tmo = check.table(data, "timeouts", {"retry_deadline_seconds", "workspace_seconds", "resource_seconds"})
    retry_deadline = check.number(tmo, "retry_deadline_seconds", "timeouts.retry_deadline_seconds", 300, 1)
    workspace_seconds = check.number(tmo, "workspace_seconds", "timeouts.workspace_seconds", 1800, 1)
    resource_seconds = check.number(tmo, "resource_seconds", "timeouts.resource_seconds", 900, 1)

    if check.problems:
        raise SpecError(source, check.problems)
    assert name and region and topology and account_id and workspace_name and tier and bucket
    assert retry_deadline is not None and workspace_seconds is not None and resource_seconds is not None
    return Spec(
        name=name,
        region=region,
        topology=topology,
        tags=tags,
        network=network,
        databricks=DatabricksSpec(account_id, workspace_name, tier, host.rstrip("/") if host else None, profile),
        storage=StorageSpec(bucket, existing=existing.bucket_name is not None),
        timeouts=TimeoutsSpec(retry_deadline, workspace_seconds, resource_seconds),
        existing=existing,
        privatelink=privatelink,
        hub=hub,
        raw=data,
    )


def load(path: Path) -> Spec:
    """Read and validate a spec file; a missing or unparsable file is a SpecError too."""
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(source, [FieldProblem("(file)", "does not exist")]) from None
    except OSError as exc:
        raise SpecError(source, [FieldProblem("(file)", f"cannot be read: {exc.strerror}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, [FieldProblem("(file)", f"is not valid TOML: {exc}")]) from None
    return from_dict(data, source)


def describe(spec: Spec) -> dict[str, Any]:
    """The validated, derived spec (subnet CIDRs, zones, bucket) for `validate` and `plan`."""
    data = asdict(spec)
    data.pop("raw", None)
    return data
