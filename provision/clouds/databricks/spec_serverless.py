"""[serverless.network_policy] and [serverless.ncc]: serverless egress control, staged (DRY_RUN first, ENFORCED by
`provision up --enforce-network-policy` or `enforcement = "enforced"`), and an optional network connectivity
configuration with private endpoint rules.

Checked before any call: `restriction` restricted | full (default restricted) and `enforcement` dry_run | enforced
(default dry_run); allowed internet destinations are DNS names (Databricks' DNS_NAME type: no URL, port, IP or
wildcard), allowed storage destinations S3 bucket names (by S3's naming rules; in the deployment's region); both
apply only to a restricted policy. A private endpoint rule names an AWS endpoint service of the deployment's
region (`com.amazonaws.vpce.<region>.vpce-svc-...`: an NCC serves only its own region), once each, with the DNS
names serverless compute should reach through it.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from provision.errors import FieldProblem, SpecError
from provision.spec import Checker, Section

DRY_RUN, ENFORCED = "DRY_RUN", "ENFORCED"
RESTRICTIONS = {"restricted": True, "full": False}
ENFORCEMENTS = {"dry_run": DRY_RUN, "enforced": ENFORCED}
_WHERE = "serverless"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SERVICE = re.compile(r"^com\.amazonaws\.vpce\.(?P<region>[a-z0-9-]+)\.vpce-svc-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class NetworkPolicySpec:
    restricted: bool
    enforcement: str  # DRY_RUN or ENFORCED
    internet_destinations: tuple[str, ...]
    storage_buckets: tuple[str, ...]


@dataclass(frozen=True)
class PrivateEndpointRuleSpec:
    endpoint_service: str
    domain_names: tuple[str, ...]


@dataclass(frozen=True)
class NccSpec:
    private_endpoint_rules: tuple[PrivateEndpointRuleSpec, ...]


@dataclass(frozen=True)
class ServerlessSpec:
    network_policy: NetworkPolicySpec | None
    ncc: NccSpec | None


def dns_problem(name: str) -> str | None:
    """Why `name` is not a DNS name Databricks accepts as a DNS_NAME destination (None: it is one)."""
    if "://" in name or "/" in name:
        return f"{name!r} is a URL or path; give the host name only (e.g. pypi.org)"
    if ":" in name:
        return f"{name!r} has a port; give the host name only"
    try:
        ipaddress.ip_address(name)
        return f"{name!r} is an IP address; only DNS names are allowed destinations"
    except ValueError:
        pass
    if "*" in name:
        return f"{name!r} has a wildcard; list each host name"
    if name != name.lower():
        return f"{name!r} must be lowercase"
    if len(name) > 253 or "." not in name:
        return f"{name!r} is not a fully qualified DNS name (labels separated by dots, at most 253 characters)"
    bad = [label for label in name.split(".") if not _LABEL.fullmatch(label)]
    if bad:
        return f"{name!r} has an invalid label {bad[0]!r} (1-63 letters, digits or hyphens, not starting or ending with a hyphen)"
    return None


def bucket_problem(name: str) -> str | None:
    """Why `name` is not an S3 bucket name (None: it is one)."""
    if not _BUCKET.fullmatch(name):
        return f"{name!r} is not an S3 bucket name (3-63 lowercase letters, digits, dots or hyphens, starting and ending with a letter or digit)"
    if ".." in name or ".-" in name or "-." in name:
        return f"{name!r} has adjacent dots or a dot next to a hyphen, which S3 refuses"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        return f"{name!r} is formatted as an IP address, which S3 refuses"
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        return f"{name!r} uses a prefix or suffix S3 reserves"
    return None


def _names(check: Checker, table: dict[str, Any], key: str, where: str, problem: Any) -> tuple[str, ...] | None:
    listed = check.string_list(table, key, where)
    if listed is None:
        return None if key in table else ()
    ok = True
    for i, name in enumerate(listed):
        reason = problem(name)
        if reason is None and name in listed[:i]:
            reason = f"{name!r} is listed twice"
        if reason:
            check.fail(f"{where}[{i}]", reason)
            ok = False
    return tuple(listed) if ok else None


def _choice(check: Checker, table: dict[str, Any], key: str, where: str, choices: dict[str, Any], default: str) -> Any:
    value = check.string(table, key, where, required=False, default=default)
    if value is None:
        return None
    if value not in choices:
        check.fail(where, f"{value!r} is not one of {', '.join(choices)}")
        return None
    return choices[value]


def _network_policy(check: Checker, serverless: dict[str, Any]) -> NetworkPolicySpec | None:
    where = f"{_WHERE}.network_policy"
    table = check.table(serverless, "network_policy", {"restriction", "enforcement", "allowed_internet_destinations", "allowed_storage_buckets"},
                        prefix=f"{_WHERE}.")
    restricted = _choice(check, table, "restriction", f"{where}.restriction", RESTRICTIONS, "restricted")
    enforcement = _choice(check, table, "enforcement", f"{where}.enforcement", ENFORCEMENTS, "dry_run")
    internet = _names(check, table, "allowed_internet_destinations", f"{where}.allowed_internet_destinations", dns_problem)
    buckets = _names(check, table, "allowed_storage_buckets", f"{where}.allowed_storage_buckets", bucket_problem)
    if restricted is False:
        for key, value in (("allowed_internet_destinations", internet), ("allowed_storage_buckets", buckets)):
            if value:
                check.fail(f"{where}.{key}", 'applies only with restriction = "restricted" (a full-access policy allows every destination)')
                return None
    if restricted is None or enforcement is None or internet is None or buckets is None:
        return None
    return NetworkPolicySpec(restricted, enforcement, internet, buckets)


def _ncc(check: Checker, serverless: dict[str, Any], region: str | None) -> NccSpec | None:
    where = f"{_WHERE}.ncc"
    table = check.table(serverless, "ncc", {"private_endpoint_rules"}, prefix=f"{_WHERE}.")
    items = table.get("private_endpoint_rules", [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        check.fail(f"{where}.private_endpoint_rules", f"must be an array of tables ([[{where}.private_endpoint_rules]])")
        return None
    rules, ok, services = [], True, []
    for i, item in enumerate(items):
        at = f"{where}.private_endpoint_rules[{i}]"
        check.unknown(item, {"endpoint_service", "domain_names"}, f"{at}.")
        service = check.string(item, "endpoint_service", f"{at}.endpoint_service")
        domains = _names(check, item, "domain_names", f"{at}.domain_names", dns_problem)
        if service is not None:
            match = _SERVICE.fullmatch(service)
            if match is None:
                check.fail(f"{at}.endpoint_service", f"{service!r} is not an AWS endpoint service name (com.amazonaws.vpce.<region>.vpce-svc-<id>)")
                service = None
            elif region is not None and match["region"] != region:
                check.fail(f"{at}.endpoint_service", f"is in {match['region']}, not the deployment's region {region}: an NCC reaches services in its own region only")
                service = None
            elif service in services:
                check.fail(f"{at}.endpoint_service", f"{service!r} has a rule already")
                service = None
        if service is None or domains is None:
            ok = False
            continue
        services.append(service)
        rules.append(PrivateEndpointRuleSpec(service, domains))
    return NccSpec(tuple(rules)) if ok else None


def _parse(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> ServerlessSpec | None:
    if _WHERE not in data:
        return None
    before = len(check.problems)
    serverless = check.table(data, _WHERE, {"network_policy", "ncc"})
    policy = _network_policy(check, serverless) if "network_policy" in serverless else None
    ncc = _ncc(check, serverless, parsed.get("region")) if "ncc" in serverless else None
    if len(check.problems) > before:
        return None
    return ServerlessSpec(policy, ncc)


SERVERLESS = Section("serverless", ("serverless",), _parse)


def enforce(data: dict[str, Any], source: str = "<spec>") -> dict[str, Any]:
    """The raw spec with [serverless.network_policy] enforcement set to "enforced" (`--enforce-network-policy`).
    Raises SpecError naming the field when the spec has no network policy."""
    serverless = data.get(_WHERE)
    if not isinstance(serverless, dict) or not isinstance(serverless.get("network_policy"), dict):
        raise SpecError(source, [FieldProblem(f"{_WHERE}.network_policy", "is required by --enforce-network-policy: the spec has no network policy to enforce")])
    enforced = copy.deepcopy(data)
    enforced[_WHERE]["network_policy"]["enforcement"] = "enforced"
    return enforced


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What a live deployment may not do with [serverless]: remove the network policy or the NCC (their steps would
    leave the graph while the objects live on), remove a private endpoint rule, or change the endpoint service of
    one (rules are steps by position, found by their endpoint service: the old rule would be left behind). The
    restriction, enforcement (either way: ENFORCED back to DRY_RUN is a rollback), destinations and a rule's domain
    names converge in place; rules may be added at the end."""
    refused: list[str] = []
    old, new = before.get(_WHERE) or {}, after.get(_WHERE) or {}
    if old.get("network_policy") and not new.get("network_policy"):
        refused.append(f"{_WHERE}.network_policy (removing it)")
    if old.get("ncc") and not new.get("ncc"):
        refused.append(f"{_WHERE}.ncc (removing it)")
    elif old.get("ncc") and new.get("ncc"):
        was, now = old["ncc"]["private_endpoint_rules"], new["ncc"]["private_endpoint_rules"]
        if len(now) < len(was):
            refused.append(f"{_WHERE}.ncc.private_endpoint_rules (removing a rule)")
        for i, (a, b) in enumerate(zip(was, now)):
            if a["endpoint_service"] != b["endpoint_service"]:
                refused.append(f"{_WHERE}.ncc.private_endpoint_rules[{i}].endpoint_service (changing it; add a rule instead)")
    return refused


def _policy_table(data: dict[str, Any]) -> dict[str, Any] | None:
    serverless = (data or {}).get(_WHERE)
    policy = serverless.get("network_policy") if isinstance(serverless, dict) else None
    return policy if isinstance(policy, dict) else None


def enforced(data: dict[str, Any]) -> bool:
    """Whether a raw spec (the state file's spec as run) enforces its network policy."""
    policy = _policy_table(data)
    return bool(policy) and str(policy.get("enforcement", "")).lower() == "enforced"


def explicit(data: dict[str, Any]) -> bool:
    """Whether a raw spec says its network policy's enforcement itself (rather than taking the default)."""
    policy = _policy_table(data)
    return bool(policy) and "enforcement" in policy
