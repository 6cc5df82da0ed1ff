"""The hub-and-spoke sections of a spec: the hub VPC, the firewall's allow-list, and the spokes."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from provision.clouds.aws.spec import (
    PRIVATE_NETMASK_RANGE,
    bucket_problem,
    derived_bucket_name,
)
from provision.regions import EGRESS_FACTS
from provision.spec import Checker, Section, allocate, parse_cidr


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
    # Fixed addresses for TCP 3306 instead of the metastore host's A records resolved at each run.
    metastore_addresses: tuple[str, ...] = ()


_SPOKE_NAME_RE = re.compile(r"[a-z][a-z0-9]{0,11}")


def _hub(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> HubSpec | None:
    """The hub VPC (TGW, NAT and firewall subnets per zone), the firewall's allow-list, and the spokes."""
    region, name, account_id = parsed.get("region"), parsed.get("name"), parsed.get("account_id")
    hub = check.table(data, "hub", {"vpc_cidr", "az_count"})
    if "hub" not in data:
        check.fail("hub", "is required for topology \"hub-spoke\" (at least vpc_cidr)")
        return None
    vpc_text = check.string(hub, "vpc_cidr", "hub.vpc_cidr")
    vpc = parse_cidr(check, vpc_text, "hub.vpc_cidr") if vpc_text is not None else None
    az_count = check.integer(hub, "az_count", "hub.az_count", default=2)
    if az_count is not None and not 2 <= az_count <= 6:
        check.fail("hub.az_count", f"must be between 2 and 6, got {az_count}")
        az_count = None
    hub_blocks = None
    if vpc is not None and az_count is not None:
        hub_blocks = allocate(vpc, [28] * (3 * az_count))
        if hub_blocks is None:
            check.fail("hub.vpc_cidr", f"{vpc} is too small for {az_count} zones of /28 TGW, NAT and firewall subnets")

    fw = check.table(data, "firewall", {"allowed_domains", "web_app_host", "relay_host", "metastore_host", "control_plane_cidr", "metastore_addresses"})
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
        parse_cidr(check, values["control_plane_cidr"], "firewall.control_plane_cidr")
    metastore_addresses = _metastore_addresses(check, fw)

    databricks = parsed.get("databricks")
    token = bool(databricks and databricks.workspace_token)

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
        cidr = parse_cidr(check, cidr_text, f"{where}.vpc_cidr") if cidr_text is not None else None
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
            blocks = allocate(cidr, [mask] * az_count + [28] * az_count)
            if blocks is None:
                check.fail(f"{where}.vpc_cidr", f"{cidr} is too small for {az_count} /{mask} workspace subnets and {az_count} /28 TGW subnets")
        workspace_name = check.string(raw, "workspace_name", f"{where}.workspace_name", required=False)
        if workspace_name is None and name and spoke_name:
            workspace_name = f"{name}-{spoke_name}"
        bucket = check.string(raw, "bucket_name", f"{where}.bucket_name", required=False)
        if bucket is not None and (problem := bucket_problem(bucket)):
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
        allowed_domains=tuple(domains), spokes=tuple(spokes), workspace_token=token, metastore_addresses=metastore_addresses, **values,
    )


# Each address is one rule of the metastore group (capacity 100, with its drop rule).
MAX_METASTORE_ADDRESSES = 20


def _metastore_addresses(check: Checker, fw: dict[str, Any]) -> tuple[str, ...]:
    where = "firewall.metastore_addresses"
    listed = check.string_list(fw, "metastore_addresses", where)
    if listed is None:
        return ()
    if not listed or len(listed) > MAX_METASTORE_ADDRESSES:
        check.fail(where, f"must list 1 to {MAX_METASTORE_ADDRESSES} IPv4 addresses (omit it to resolve firewall.metastore_host at each run)")
        return ()
    for i, text in enumerate(listed):
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            check.fail(f"{where}[{i}]", f"{text!r} is not an IPv4 address")
            continue
        if not address.is_global:
            check.fail(f"{where}[{i}]", f"{text} is not a public address (the metastore is reached through the NAT gateway)")
    return tuple(listed)




# After the databricks section: spokes derive workspace and bucket names from the account id.
HUB = Section("hub", ("hub", "firewall", "spokes"), _hub)


# The hub's network cannot change under a live deployment; its firewall allow-list and facts converge in place.
_FIXED = ("vpc_cidr", "az_count", "tgw_subnet_cidrs", "public_subnet_cidrs", "firewall_subnet_cidrs")


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Hub-and-spoke grows by appending spokes: the hub's network and every existing spoke stay as built,
    and tokens can be turned on."""
    old_hub, new_hub = before.get("hub"), after.get("hub")
    if not (old_hub and new_hub):
        return [] if old_hub == new_hub else ["hub"]
    changed = [f"hub.{k}" for k in _FIXED if old_hub.get(k) != new_hub.get(k)]
    by_name = {s["name"]: s for s in new_hub["spokes"]}
    changed += [f"spokes[{s['name']}] (removing or changing a spoke)" for s in old_hub["spokes"] if by_name.get(s["name"]) != s]
    return changed
