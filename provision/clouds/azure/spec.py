"""The Azure section of a spec, `[azure]`: the subscription, location, resource group and tags, the workspace
VNet (new, from a CIDR and three subnet sizes, or an existing one by id and subnet names), and the workspace.

Credentials never appear here: azure-identity's default chain finds them. Each name is checked by the rules ARM
applies to its resource type, so a bad name fails here, with its field, not halfway through a run.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from provision.spec import Checker, Section, allocate, parse_cidr

# Azure regions where Azure Databricks runs (location names as ARM spells them).
DATABRICKS_AZURE_LOCATIONS = frozenset(
    {
        "eastus", "eastus2", "westus", "westus2", "westus3", "centralus", "northcentralus", "southcentralus",
        "westcentralus", "canadacentral", "canadaeast", "brazilsouth", "mexicocentral", "northeurope", "westeurope",
        "uksouth", "ukwest", "francecentral", "germanywestcentral", "switzerlandnorth", "switzerlandwest", "norwayeast",
        "swedencentral", "italynorth", "polandcentral", "spaincentral", "uaenorth", "qatarcentral", "israelcentral",
        "southafricanorth", "centralindia", "southindia", "westindia", "eastasia", "southeastasia", "japaneast",
        "japanwest", "koreacentral", "australiaeast", "australiasoutheast", "australiacentral", "australiacentral2",
    }
)
SKUS = ("premium", "standard", "trial")
# The workspace VNet: Databricks takes /16 to /24; each subnet /26 or larger.
VNET_PREFIX_RANGE = (16, 24)
LARGEST_SUBNET_PREFIX = 26
# The endpoint subnet holds only the endpoints' interfaces: /28 (11 usable addresses in Azure) is enough.
LARGEST_ENDPOINT_SUBNET_PREFIX = 28
# Address ranges Azure VNets take for a private network: RFC 1918 and the shared (CGNAT) range.
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(c) for c in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))
DEFAULT_SUBNET_PREFIXES = {"host": 24, "container": 24, "endpoint": 26}

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# ARM's naming rules (Microsoft.Resources/resourcegroups, Microsoft.Databricks/workspaces, Microsoft.Network subnets).
_RESOURCE_GROUP_RE = re.compile(r"^[-\w._()]{1,90}$")
_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9_-]{3,64}$")
_SUBNET_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,78}[A-Za-z0-9_])?$")
_VNET_ID_RE = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w._()]{1,90})"
    r"/providers/Microsoft\.Network/virtualNetworks/(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_])?)$",
    re.IGNORECASE,
)
# Azure tags: at most 50 per resource (ours are two of them); names up to 512 characters without these.
_TAG_FORBIDDEN = set('<>%&\\?/')
MAX_TAGS = 50
OWN_TAGS = 2
_AZURE_KEYS = {"subscription_id", "location", "resource_group", "resource_group_exists", "tags", "browser_authentication", "network", "workspace"}


@dataclass(frozen=True)
class AzureNetworkSpec:
    """A new VNet (vnet_cidr and the subnets carved from it) or an existing one (existing_vnet_id)."""

    vnet_cidr: str | None
    host_subnet_cidr: str | None
    container_subnet_cidr: str | None
    endpoint_subnet_cidr: str | None
    # An existing VNet's subnets, by name (a new VNet's are named after the deployment).
    existing_vnet_id: str | None = None
    host_subnet: str | None = None
    container_subnet: str | None = None
    endpoint_subnet: str | None = None

    @property
    def existing(self) -> bool:
        return self.existing_vnet_id is not None


@dataclass(frozen=True)
class AzureWorkspaceSpec:
    name: str
    sku: str
    managed_resource_group: str


@dataclass(frozen=True)
class AzureSpec:
    subscription_id: str
    location: str
    resource_group: str
    resource_group_exists: bool
    browser_authentication: bool
    network: AzureNetworkSpec
    workspace: AzureWorkspaceSpec


def _table(data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("azure", {})
    return value if isinstance(value, dict) else {}


def parse_region(check: Checker, data: dict[str, Any]) -> str | None:
    """An Azure spec's region is `azure.location`."""
    if "region" in data:
        check.fail("region", "an Azure spec names its location as azure.location, not region")
    location = check.string(_table(data), "location", "azure.location")
    # ARM takes "EastUS2" and "eastus2" alike; the canonical form is lowercase without spaces.
    location = location.replace(" ", "").lower() if location is not None else None
    if location is not None and location not in DATABRICKS_AZURE_LOCATIONS:
        near = sorted(loc for loc in DATABRICKS_AZURE_LOCATIONS if loc.startswith(location.lower()[:4]))
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        check.fail("azure.location", f"{location!r} is not an Azure location where Azure Databricks runs{hint}")
        return None
    return location


def tag_problem(key: str, value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not key or len(key) > 512:
        return "tag names must be 1-512 characters"
    if set(key) & _TAG_FORBIDDEN:
        return "tag names cannot contain < > % & \\ ? /"
    if key.lower().startswith(("microsoft", "azure", "windows", "provision:")):
        return "tag names starting with microsoft, azure, windows or provision: are reserved"
    if len(value) > 256:
        return "tag values must be at most 256 characters"
    return None


def parse_tags(check: Checker, data: dict[str, Any]) -> dict[str, str]:
    """`azure.tags`, by Azure's tag rules."""
    if "tags" in data:
        check.fail("tags", "an Azure spec puts its tags in azure.tags")
    tags = _table(data).get("tags", {})
    if not isinstance(tags, dict):
        check.fail("azure.tags", f"must be a table, got {type(tags).__name__}")
        return {}
    if len(tags) > MAX_TAGS - OWN_TAGS:
        check.fail("azure.tags", f"at most {MAX_TAGS - OWN_TAGS} tags (Azure allows {MAX_TAGS} per resource; provision adds {OWN_TAGS})")
    out = {}
    for key, value in tags.items():
        problem = tag_problem(key, value)
        if problem:
            check.fail(f"azure.tags.{key}", problem)
        else:
            out[key] = value
    return out


def resource_group_problem(name: str) -> str | None:
    if not _RESOURCE_GROUP_RE.fullmatch(name) or name.endswith("."):
        return "must be 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending with '.'"
    return None


def _bool(check: Checker, table: dict[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        check.fail(where, f"must be true or false, got {type(value).__name__}")
        return False
    return value


def _prefix(check: Checker, table: dict[str, Any], key: str, default: int, largest: int = LARGEST_SUBNET_PREFIX) -> int | None:
    where = f"azure.network.{key}"
    value = check.integer(table, key, where, default)
    if value is None:
        return None
    if not 16 <= value <= largest:
        check.fail(where, f"must be a prefix length from 16 to {largest} (a /{largest} or larger subnet), got {value}")
        return None
    return value


def _network(check: Checker, table: dict[str, Any], subscription_id: str | None) -> AzureNetworkSpec | None:
    keys = {"vnet_cidr", "host_subnet_size", "container_subnet_size", "endpoint_subnet_size", "existing_vnet_id",
            "host_subnet", "container_subnet", "endpoint_subnet"}
    net = check.table(table, "network", keys, "azure.")
    if "network" not in table:
        check.fail("azure.network", "is required: vnet_cidr for a new VNet, or existing_vnet_id")
        return None
    existing = check.string(net, "existing_vnet_id", "azure.network.existing_vnet_id", required=False)
    if existing is not None:
        return _existing_network(check, net, existing, subscription_id)
    for key in ("host_subnet", "container_subnet", "endpoint_subnet"):
        if key in net:
            check.fail(f"azure.network.{key}", "names a subnet of an existing VNet: only with azure.network.existing_vnet_id")
    text = check.string(net, "vnet_cidr", "azure.network.vnet_cidr")
    vnet = parse_cidr(check, text, "azure.network.vnet_cidr") if text is not None else None
    if vnet is not None and not VNET_PREFIX_RANGE[0] <= vnet.prefixlen <= VNET_PREFIX_RANGE[1]:
        check.fail("azure.network.vnet_cidr", f"must be a /{VNET_PREFIX_RANGE[0]} to /{VNET_PREFIX_RANGE[1]} block, got /{vnet.prefixlen}")
        vnet = None
    if vnet is not None and not any(vnet.subnet_of(r) for r in PRIVATE_RANGES):
        check.fail("azure.network.vnet_cidr", f"{vnet} is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10)")
        vnet = None
    prefixes = [
        _prefix(check, net, "host_subnet_size", DEFAULT_SUBNET_PREFIXES["host"]),
        _prefix(check, net, "container_subnet_size", DEFAULT_SUBNET_PREFIXES["container"]),
        _prefix(check, net, "endpoint_subnet_size", DEFAULT_SUBNET_PREFIXES["endpoint"], LARGEST_ENDPOINT_SUBNET_PREFIX),
    ]
    if vnet is None or None in prefixes:
        return None
    blocks = allocate(vnet, [p for p in prefixes if p is not None])
    if blocks is None:
        sizes = " + ".join(f"/{p}" for p in prefixes)
        check.fail("azure.network.vnet_cidr", f"{vnet} cannot hold the three subnets ({sizes}); use a larger VNet or smaller subnets")
        return None
    return AzureNetworkSpec(str(vnet), *(str(b) for b in blocks))


def _existing_network(check: Checker, net: dict[str, Any], vnet_id: str, subscription_id: str | None) -> AzureNetworkSpec | None:
    for key in ("vnet_cidr", "host_subnet_size", "container_subnet_size", "endpoint_subnet_size"):
        if key in net:
            check.fail(f"azure.network.{key}", "is for a new VNet: cannot be combined with azure.network.existing_vnet_id")
    match = _VNET_ID_RE.fullmatch(vnet_id)
    if not match:
        check.fail("azure.network.existing_vnet_id", f"{vnet_id!r} is not a VNet resource id (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<name>)")
        return None
    if subscription_id and match["sub"].lower() != subscription_id.lower():
        check.fail("azure.network.existing_vnet_id", f"is in subscription {match['sub']}, not azure.subscription_id {subscription_id}")
    names = {}
    for key in ("host_subnet", "container_subnet", "endpoint_subnet"):
        name = check.string(net, key, f"azure.network.{key}")
        if name is not None and not _SUBNET_RE.fullmatch(name):
            check.fail(f"azure.network.{key}", f"{name!r} is not a valid subnet name (1-80 letters, digits, '.', '_', '-')")
            name = None
        names[key] = name
    given = [n for n in names.values() if n]
    if len({n.lower() for n in given}) < len(given):
        check.fail("azure.network", "host_subnet, container_subnet and endpoint_subnet must be three different subnets")
        return None
    if None in names.values():
        return None
    return AzureNetworkSpec(None, None, None, None, vnet_id, names["host_subnet"], names["container_subnet"], names["endpoint_subnet"])


def _workspace(check: Checker, table: dict[str, Any], deployment: str | None, resource_group: str | None) -> AzureWorkspaceSpec | None:
    ws = check.table(table, "workspace", {"name", "sku", "managed_resource_group"}, "azure.")
    name = check.string(ws, "name", "azure.workspace.name", required=False, default=deployment)
    if name is not None and not _WORKSPACE_RE.fullmatch(name):
        check.fail("azure.workspace.name", f"{name!r} must be 3-64 letters, digits, '_' or '-'")
        name = None
    sku = check.string(ws, "sku", "azure.workspace.sku", required=False, default="premium")
    if sku is not None and sku not in SKUS:
        check.fail("azure.workspace.sku", f"must be one of {', '.join(SKUS)}, got {sku!r}")
        sku = None
    elif sku is not None and sku != "premium":
        check.fail("azure.workspace.sku", f"back-end Private Link and secure cluster connectivity need the premium SKU, got {sku!r}")
        sku = None
    managed = check.string(ws, "managed_resource_group", "azure.workspace.managed_resource_group", required=False,
                           default=f"managed-{name}" if name else None)
    if managed is not None:
        problem = resource_group_problem(managed)
        if problem:
            check.fail("azure.workspace.managed_resource_group", f"{managed!r} {problem}")
            managed = None
        elif resource_group is not None and managed.lower() == resource_group.lower():
            check.fail("azure.workspace.managed_resource_group", "must differ from azure.resource_group: Azure Databricks creates and owns it")
            managed = None
    if name is None or sku is None or managed is None:
        return None
    return AzureWorkspaceSpec(name, sku, managed)


def _azure(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> AzureSpec | None:
    if "azure" not in data:
        check.fail("azure", "is required")
    table = check.table(data, "azure", _AZURE_KEYS)
    subscription = check.string(table, "subscription_id", "azure.subscription_id")
    if subscription is not None and not _UUID_RE.fullmatch(subscription):
        check.fail("azure.subscription_id", f"{subscription!r} is not an Azure subscription id (a UUID)")
        subscription = None
    group = check.string(table, "resource_group", "azure.resource_group")
    if group is not None:
        problem = resource_group_problem(group)
        if problem:
            check.fail("azure.resource_group", f"{group!r} {problem}")
            group = None
    exists = _bool(check, table, "resource_group_exists", "azure.resource_group_exists")
    browser = _bool(check, table, "browser_authentication", "azure.browser_authentication")
    network = _network(check, table, subscription)
    workspace = _workspace(check, table, parsed.get("name"), group)
    location = parsed.get("region")
    if subscription is None or group is None or network is None or workspace is None or location is None:
        return None
    return AzureSpec(subscription.lower(), location, group, exists, browser, network, workspace)


AZURE = Section("azure", ("azure",), _azure)


def subnet_ranges(net: AzureNetworkSpec) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(c) for c in (net.host_subnet_cidr, net.container_subnet_cidr, net.endpoint_subnet_cidr) if c]
