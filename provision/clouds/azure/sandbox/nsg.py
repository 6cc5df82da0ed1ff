"""Microsoft.Network network security groups.

- GET shows securityRules (each with id, type, etag, provisioningState and NRP's plural companions),
  ARM's six defaultSecurityRules, and `subnets` [{id}] for every subnet the NSG is associated with.
- Rules are validated as NRP does: missing address or port fields -> SecurityRuleParametersMissing
  ("Required security rule parameters are missing for security rule with Id: <id>. Security rule must
  specify SourceAddressPrefixes, SourceAddressPrefix, or SourceApplicationSecurityGroups.", Azure/sap-hana
  #135); a bad port -> SecurityRuleInvalidPortRange ("... Value should be an integer OR integer range with
  '-' delimiter. Valid range 0-65535.", hashicorp/terraform-provider-azurerm PR #1530); priority outside
  100-4096 -> SecurityRuleInvalidPriority and two rules with the same priority and direction ->
  SecurityRuleConflict (both codes recalled; the range is the one MicrosoftDocs/azure-docs#42798 confirms);
  a protocol/access/direction outside NRP's values -> SecurityRuleParameterContainsUnsupportedValue.
- An NSG on the subnets of a workspace carries the rules Azure Databricks added
  ("Microsoft.Databricks-workspaces_UseOnly_..."); a PUT that drops one the workspace's network intent
  policy needs is refused with ConflictWithNetworkIntentPolicy ("Found conflicts with NetworkIntentPolicy.
  Details: Network Security Group cannot have resources which conflict with its subnets' network intent
  policies. ...", Azure/azure-quickstart-templates#6670): a re-apply must keep them.
- DELETE of an NSG still on a subnet -> InUseNetworkSecurityGroupCannotBeDeleted ("Network security group
  <id> cannot be deleted because it is in use by the following resources: <subnet ids>. In order to delete
  the Network security group, remove the association with the resource(s). To learn how to do this, see
  aka.ms/deletensg.", DataBiosphere/terra-workspace-manager PR #502, pulumi/pulumi-azure-native#3051).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import provision.clouds.azure.sandbox.lro as lro  # noqa: PLR0402
import provision.clouds.azure.sandbox.resources as resources  # noqa: PLR0402
import provision.clouds.azure.sandbox.rules as rules  # noqa: PLR0402
from provision.clouds.azure.sandbox.network import NS
from provision.clouds.azure.sandbox.store import (
    STORE,
    bad_request,
    etag,
    new_guid,
    provider_id,
    public,
    same,
)

_DEFAULTS = (
    ("AllowVnetInBound", "Allow inbound traffic from all VMs in VNET", "VirtualNetwork", "VirtualNetwork", "Allow", 65000, "Inbound"),
    ("AllowAzureLoadBalancerInBound", "Allow inbound traffic from azure load balancer", "AzureLoadBalancer", "*", "Allow", 65001, "Inbound"),
    ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
    ("AllowVnetOutBound", "Allow outbound traffic from all VMs to all VMs in VNET", "VirtualNetwork", "VirtualNetwork", "Allow", 65000, "Outbound"),
    ("AllowInternetOutBound", "Allow outbound traffic from all VMs to Internet", "*", "Internet", "Allow", 65001, "Outbound"),
    ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
)
_PROTOCOLS = ("Tcp", "Udp", "Icmp", "Esp", "Ah", "*")
# What a workspace's network intent policy needs of an NSG: each returns [(nip id, required rule props)].
NSG_REQUIREMENTS: list[Callable[[dict], list[tuple[str, dict]]]] = []


def nsg_id(sub: str, rg: str, name: str) -> str:
    return provider_id(sub, rg, NS, "networkSecurityGroups", name)


def associated_subnets(nsg: dict) -> list[dict]:
    return [s for s in STORE.of_kind("subnets") if same((s["properties"].get("networkSecurityGroup") or {}).get("id"), nsg["id"])]


def render(nsg: dict) -> dict:
    out = public(nsg)
    subnets = associated_subnets(nsg)
    if subnets:
        out["properties"]["subnets"] = [{"id": s["id"]} for s in subnets]
    return out


def _default_rules(rid: str) -> list[dict]:
    return [
        {
            "name": name,
            "id": f"{rid}/defaultSecurityRules/{name}",
            "etag": etag(),
            "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
            "properties": {
                "provisioningState": "Succeeded", "description": text, "protocol": "*", "sourcePortRange": "*",
                "destinationPortRange": "*", "sourceAddressPrefix": src, "destinationAddressPrefix": dst,
                "access": access, "priority": priority, "direction": direction, "sourcePortRanges": [],
                "destinationPortRanges": [], "sourceAddressPrefixes": [], "destinationAddressPrefixes": [],
            },
        }
        for name, text, src, dst, access, priority, direction in _DEFAULTS
    ]


def _choice(value: Any, allowed: tuple[str, ...], field: str, rule_id: str) -> str:
    match = next((a for a in allowed if isinstance(value, str) and a.lower() == value.lower()), None)
    if match is None and rules.enforced("nsg-rule-validation"):
        raise bad_request(
            "SecurityRuleParameterContainsUnsupportedValue",
            f"Security rule parameter {field} for rule with Id {rule_id} cannot be {value}. Allowed values are {', '.join(allowed)}.",
        )
    return match or str(value)


def _ports(values: list, rule_id: str) -> None:
    for value in values:
        text = str(value).strip()
        ok = text == "*"
        if not ok:
            bounds = text.split("-")
            ok = len(bounds) <= 2 and all(b.isdigit() and 0 <= int(b) <= 65535 for b in bounds)
            ok = ok and (len(bounds) == 1 or int(bounds[0]) <= int(bounds[1]))
        if not ok and rules.enforced("nsg-rule-validation"):
            raise bad_request(
                "SecurityRuleInvalidPortRange",
                f"Security rule has invalid Port range. Value provided: {value}. Value should be an integer OR integer "
                "range with '-' delimiter. Valid range 0-65535.",
            )


def _rule(rid: str, given: dict) -> dict:
    name = given.get("name") or ""
    rule_id = f"{rid}/securityRules/{name}"
    p = dict(given.get("properties") or {})
    for side, extra in (("source", "SourceApplicationSecurityGroups"), ("destination", "DestinationApplicationSecurityGroups")):
        has_address = p.get(f"{side}AddressPrefix") or p.get(f"{side}AddressPrefixes") or p.get(extra[0].lower() + extra[1:])
        if not has_address and rules.enforced("nsg-rule-validation"):
            cap = side.capitalize()
            raise bad_request(
                "SecurityRuleParametersMissing",
                f"Required security rule parameters are missing for security rule with Id: {rule_id}. Security rule "
                f"must specify {cap}AddressPrefixes, {cap}AddressPrefix, or {extra}.",
            )
        if not (p.get(f"{side}PortRange") or p.get(f"{side}PortRanges")) and rules.enforced("nsg-rule-validation"):
            cap = side.capitalize()
            raise bad_request(
                "SecurityRuleParametersMissing",
                f"Required security rule parameters are missing for security rule with Id: {rule_id}. Security rule "
                f"must specify {cap}PortRanges or {cap}PortRange.",
            )
        _ports([p[f"{side}PortRange"]] if p.get(f"{side}PortRange") else list(p.get(f"{side}PortRanges") or []), rule_id)
    p["protocol"] = _choice(p.get("protocol"), _PROTOCOLS, "Protocol", rule_id)
    p["access"] = _choice(p.get("access"), ("Allow", "Deny"), "Access", rule_id)
    p["direction"] = _choice(p.get("direction"), ("Inbound", "Outbound"), "Direction", rule_id)
    priority = p.get("priority")
    if (not isinstance(priority, int) or isinstance(priority, bool) or not 100 <= priority <= 4096) and rules.enforced("nsg-rule-validation"):
        raise bad_request("SecurityRuleInvalidPriority", f"Security rule has invalid Priority. Value provided: {priority} Allowed range 100-4096.")
    for key in ("sourcePortRanges", "destinationPortRanges", "sourceAddressPrefixes", "destinationAddressPrefixes"):
        p.setdefault(key, [])
    p["provisioningState"] = "Succeeded"
    return {"name": name, "id": rule_id, "etag": etag(), "type": "Microsoft.Network/networkSecurityGroups/securityRules", "properties": p}


def _check_conflicts(shaped: list[dict]) -> None:
    seen: dict[tuple, str] = {}
    for rule in shaped:
        key = (rule["properties"].get("priority"), rule["properties"]["direction"].lower())
        if key in seen and rules.enforced("nsg-rule-validation"):
            raise bad_request(
                "SecurityRuleConflict",
                f"Security rule {rule['name']} conflicts with rule {seen[key]}. Rules cannot have the same Priority "
                "and Direction. To learn more, see aka.ms/nsgrules.",
            )
        seen[key] = rule["name"]


def supports(rule: dict, need: dict) -> bool:
    """Does an NSG rule let through what a network intent policy rule needs?"""
    have = rule["properties"]

    def covers(value: Any, wanted: Any) -> bool:
        return value == "*" or str(value).lower() == str(wanted).lower()

    return (
        have["direction"].lower() == need["direction"].lower()
        and have["access"].lower() == need["access"].lower()
        and covers(have["protocol"], need["protocol"])
        and covers(have.get("sourceAddressPrefix", ""), need["sourceAddressPrefix"])
        and covers(have.get("destinationAddressPrefix", ""), need["destinationAddressPrefix"])
        and covers(have.get("destinationPortRange", ""), need["destinationPortRange"])
    )


def _check_intent_policies(nsg_record_id: str, shaped: list[dict]) -> None:
    if not rules.enforced("nsg-keeps-databricks-rules"):
        return
    missing = [(nip, need) for hook in NSG_REQUIREMENTS for nip, need in hook({"id": nsg_record_id}) if not any(supports(r, need) for r in shaped)]
    if not missing:
        return
    nip = missing[0][0]
    lines = [
        f"Network Security Group doesn't have supporting Security Rule for Network Intent Policy Security Rule: Name: "
        f"{need['name']}, Id: {nip}/securityRules/{need['name']}, Access: {need['access']}, Direction: {need['direction']}, "
        f"Protocol: {need['protocol'].lower()}, SourceAddressPrefix: {need['sourceAddressPrefix']}, SourcePortRange: *, "
        f"DestinationAddressPrefix: {need['destinationAddressPrefix']}, DestinationPortRange: {need['destinationPortRange']}"
        for nip_, need in missing
    ]
    raise bad_request(
        "ConflictWithNetworkIntentPolicy",
        "Found conflicts with NetworkIntentPolicy. Details: Network Security Group cannot have resources which conflict "
        f"with its subnets' network intent policies.\r\nNetwork Security Group: {nsg_record_id} conflicts with Network "
        f"Intent Policy: {nip.rsplit('/', 1)[-1]}\r\n " + "\r\n ----\r\n ".join(lines),
    )


def add_rules(nsg: dict, wanted: list[dict]) -> None:
    """Add rules (name + properties without priority) the way Azure Databricks does: each at the lowest free
    priority from 100 in its direction, unless a rule of that name is already there."""
    current = nsg["properties"]["securityRules"]
    for want in wanted:
        if any(same(r["name"], want["name"]) for r in current):
            continue
        taken = {r["properties"].get("priority") for r in current if r["properties"]["direction"] == want["direction"]}
        priority = next(p for p in range(100, 4097) if p not in taken)
        props = {k: v for k, v in want.items() if k != "name"}
        current.append(_rule(nsg["id"], {"name": want["name"], "properties": {**props, "priority": priority}}))
    nsg["etag"] = etag()


def _put(ctx: Any) -> tuple[int, Any, dict]:
    rg, name, body = ctx.args["rg"], ctx.args["nsg"], ctx.body()
    resources.group(ctx, rg, write=True)
    location = resources.require_location(body)
    rid = nsg_id(ctx.sub, rg, name)
    existing = STORE.get(rid)
    lro.ensure_idle(ctx, [existing])
    record_id = existing["id"] if existing else rid
    shaped = [_rule(record_id, r) for r in (body.get("properties") or {}).get("securityRules") or [] if isinstance(r, dict)]
    _check_conflicts(shaped)
    _check_intent_policies(record_id, shaped)
    nsg = existing or {"id": rid, "name": name, "type": "Microsoft.Network/networkSecurityGroups", "_kind": "network_security_groups"}
    nsg.update({"location": location, "etag": etag()})
    if body.get("tags"):
        nsg["tags"] = dict(body["tags"])
    else:
        nsg.pop("tags", None)
    nsg["properties"] = {
        "provisioningState": "Updating",
        "resourceGuid": (existing or {}).get("properties", {}).get("resourceGuid") or new_guid(),
        "securityRules": shaped,
        "defaultSecurityRules": _default_rules(record_id),
    }
    STORE.add(nsg)
    op = lro.schedule(nsg, ctx.at, ctx.delay("azure_resource_seconds", rid), "Succeeded", ns=NS, location=location)
    return lro.reply_put(ctx, render(nsg), op, existing is None)


def _nsg(ctx: Any) -> tuple[int, Any, dict]:
    if ctx.method == "PUT":
        return _put(ctx)
    rg, name = ctx.args["rg"], ctx.args["nsg"]
    reply, nsg = resources.read_or_gone(ctx, rg, nsg_id(ctx.sub, rg, name), f"Microsoft.Network/networkSecurityGroups/{name}", render)
    if reply is not None:
        return reply
    lro.ensure_idle(ctx, [nsg])
    subnets = associated_subnets(nsg)
    if subnets and rules.enforced("in-use-nsg-delete"):
        raise bad_request(
            "InUseNetworkSecurityGroupCannotBeDeleted",
            f"Network security group {nsg['id']} cannot be deleted because it is in use by the following resources: "
            f"{', '.join(s['id'] for s in subnets)}. In order to delete the Network security group, remove the "
            "association with the resource(s). To learn how to do this, see aka.ms/deletensg.",
        )
    op = lro.schedule(nsg, ctx.at, ctx.delay("azure_resource_seconds", nsg["id"]), "deleted", ns=NS, location=nsg["location"])
    nsg["properties"]["provisioningState"] = "Deleting"
    return lro.reply_delete(ctx, op)


def _list(ctx: Any) -> tuple[int, Any, dict]:
    return resources.list_kind(ctx, "network_security_groups", render)


lro.USERS["network_security_groups"] = lambda nsg: [s["id"] for s in associated_subnets(nsg)]

_RG = "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.network"
ROUTES = [
    ("/subscriptions/<sub>/providers/microsoft.network/networksecuritygroups", "nsg_list_sub", "network", "networkSecurityGroups", ["GET"]),
    (f"{_RG}/networksecuritygroups", "nsg_list", "network", "networkSecurityGroups", ["GET"]),
    (f"{_RG}/networksecuritygroups/<nsg>", "nsg", "network", "networkSecurityGroups", ["GET", "PUT", "DELETE"]),
]
HANDLERS = {"nsg_list_sub": _list, "nsg_list": _list, "nsg": _nsg}
