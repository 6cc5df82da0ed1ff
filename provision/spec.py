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

# AWS regions where Databricks runs E2 workspaces.
DATABRICKS_AWS_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
        "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1",
        "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
        "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    }
)
TOPOLOGIES = ("basic",)
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


@dataclass(frozen=True)
class NetworkSpec:
    vpc_cidr: str
    az_count: int
    availability_zones: tuple[str, ...]
    private_subnet_cidrs: tuple[str, ...]
    public_subnet_cidrs: tuple[str, ...]
    nat: str


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
    network: NetworkSpec
    databricks: DatabricksSpec
    storage: StorageSpec
    timeouts: TimeoutsSpec
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


def _network(check: _Checker, data: dict[str, Any], region: str | None) -> NetworkSpec | None:
    allowed = {
        "vpc_cidr", "az_count", "availability_zones", "private_subnet_netmask", "public_subnet_netmask",
        "private_subnet_cidrs", "public_subnet_cidrs", "nat",
    }
    net = check.table(data, "network", allowed)
    if "network" not in data:
        check.fail("network", "is required")
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


def from_dict(data: dict[str, Any], source: str = "<spec>") -> Spec:
    """Validate a parsed spec completely; raise SpecError listing every problem."""
    check = _Checker()
    top = {"name", "region", "topology", "tags", "network", "databricks", "storage", "timeouts"}
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

    network = _network(check, data, region)

    dbx = check.table(data, "databricks", {"account_id", "workspace_name", "pricing_tier", "host", "profile"})
    if "databricks" not in data:
        check.fail("databricks", "is required")
    account_id = check.string(dbx, "account_id", "databricks.account_id")
    if account_id is not None and not _UUID_RE.fullmatch(account_id):
        check.fail("databricks.account_id", f"{account_id!r} is not a Databricks account id (a lowercase UUID)")
        account_id = None
    workspace_name = check.string(dbx, "workspace_name", "databricks.workspace_name", required=False, default=name)
    if workspace_name is not None and not _WORKSPACE_NAME_RE.fullmatch(workspace_name):
        check.fail("databricks.workspace_name", f"{workspace_name!r} must be 1-64 letters, digits, spaces, '_' or '-', starting with a letter or digit")
    tier = check.string(dbx, "pricing_tier", "databricks.pricing_tier", required=False, default="PREMIUM")
    if tier is not None and tier not in PRICING_TIERS:
        check.fail("databricks.pricing_tier", f"must be one of {', '.join(PRICING_TIERS)}, got {tier!r}")
    # No default here: a named profile may carry its own host; clients.py falls back to the AWS account console.
    host = check.string(dbx, "host", "databricks.host", required=False)
    if host is not None and not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?/?", host):
        check.fail("databricks.host", f"{host!r} must be an https:// URL of the account console")
    profile = check.string(dbx, "profile", "databricks.profile", required=False)
    if profile is not None and not _PROFILE_RE.fullmatch(profile):
        check.fail("databricks.profile", f"{profile!r} is not a valid profile name")

    storage = check.table(data, "storage", {"bucket_name"})
    bucket = check.string(storage, "bucket_name", "storage.bucket_name", required=False)
    if bucket is not None:
        problem = _bucket_problem(bucket)
        if problem:
            check.fail("storage.bucket_name", f"{bucket!r} {problem}")
    elif name and account_id and region:
        bucket = derived_bucket_name(name, account_id, region)

    tmo = check.table(data, "timeouts", {"retry_deadline_seconds", "workspace_seconds", "resource_seconds"})
    retry_deadline = check.number(tmo, "retry_deadline_seconds", "timeouts.retry_deadline_seconds", 300, 1)
    workspace_seconds = check.number(tmo, "workspace_seconds", "timeouts.workspace_seconds", 1800, 1)
    resource_seconds = check.number(tmo, "resource_seconds", "timeouts.resource_seconds", 900, 1)

    if check.problems:
        raise SpecError(source, check.problems)
    assert name and region and topology and network and account_id and workspace_name and tier and bucket
    assert retry_deadline is not None and workspace_seconds is not None and resource_seconds is not None
    return Spec(
        name=name,
        region=region,
        topology=topology,
        tags=tags,
        network=network,
        databricks=DatabricksSpec(account_id, workspace_name, tier, host.rstrip("/") if host else None, profile),
        storage=StorageSpec(bucket),
        timeouts=TimeoutsSpec(retry_deadline, workspace_seconds, resource_seconds),
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
