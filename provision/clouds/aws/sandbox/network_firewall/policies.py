"""Network Firewall rule groups and firewall policies: parsing, validation and their operations (rules 1 to 4
of the package docstring)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.network_firewall.service import (
    InvalidOperation,
    InvalidRequest,
    Policy,
    Request,
    ResourceNotFound,
    RuleGroup,
    Store,
    check_token,
    find,
    firewalls_using,
    operation,
    paginate,
    tags_of,
    unique_name,
)

_STANDARD_STATELESS_ACTIONS = {"aws:pass", "aws:drop", "aws:forward_to_sfe"}
_RULE_SOURCES = ("RulesString", "RulesSourceList", "StatefulRules", "StatelessRulesAndCustomActions")
_ARN_KIND = {"STATEFUL": "stateful-rulegroup", "STATELESS": "stateless-rulegroup"}
_DEFAULT_ORDER = "DEFAULT_ACTION_ORDER"
# The API reference's values of FirewallPolicy.StatefulDefaultActions (botocore's network-firewall model).
_STATEFUL_DEFAULT_ACTIONS = {
    "aws:drop_strict", "aws:drop_established", "aws:alert_strict", "aws:alert_established",
    "aws:drop_established_app_layer", "aws:alert_established_app_layer",
    "aws:drop_established_app_layer_to_server", "aws:alert_established_app_layer_to_server",
}
_MAX_PRIORITY = 65535  # the model's Priority shape: 1..65535 (botocore checks only the minimum)
_IN_USE = "Unable to delete the object because it is still in use"
_MAX_CAPACITY = 30000


# --- rule groups (rules 1, 2, 4) ------------------------------------------------------------------------


def _rule_group_kind(kind: str | None) -> str:
    if kind not in _ARN_KIND:
        raise InvalidRequest(f"Rule group type {kind} is not supported: use STATEFUL or STATELESS.")
    return kind  # type: ignore[return-value]


def _rule_group_body(params: dict[str, Any], kind: str) -> dict[str, Any]:
    if ("RuleGroup" in params) == ("Rules" in params):
        raise InvalidRequest("Exactly one of Rules or RuleGroup must be set")
    body = params["RuleGroup"] if "RuleGroup" in params else {"RulesSource": {"RulesString": params["Rules"]}}
    source = body.get("RulesSource") or {}
    kinds = [k for k in _RULE_SOURCES if source.get(k)]
    if len(kinds) != 1:
        raise InvalidRequest(
            "RulesSource must contain exactly one of RulesString, RulesSourceList, StatefulRules or "
            "StatelessRulesAndCustomActions."
        )
    stateless = kinds[0] == "StatelessRulesAndCustomActions"
    if stateless != (kind == "STATELESS"):
        raise InvalidRequest(
            "A STATELESS rule group takes StatelessRulesAndCustomActions, a STATEFUL one RulesString, "
            f"RulesSourceList or StatefulRules; got {kinds[0]} for a {kind} rule group."
        )
    if kinds[0] == "RulesSourceList" and not source["RulesSourceList"].get("Targets"):
        raise InvalidRequest("RulesSourceList.Targets must list at least one domain.")
    if kinds[0] == "StatefulRules":
        sids = [_sid(rule) for rule in source["StatefulRules"]]
        if len(set(sids)) != len(sids):
            raise InvalidRequest(f"Each stateful rule needs a unique sid; duplicated in {sids}.")
    for variable, ip_set in ((body.get("RuleVariables") or {}).get("IPSets") or {}).items():
        for definition in ip_set.get("Definition") or []:
            try:
                ipaddress.ip_network(definition, strict=False)
            except ValueError:
                raise InvalidRequest(f"IP set {variable}: {definition} is not a CIDR block.") from None
    return body


def _sid(rule: dict[str, Any]) -> str:
    for option in rule.get("RuleOptions") or []:
        keyword = option.get("Keyword", "").strip()
        if keyword == "sid" and len(option.get("Settings") or []) == 1:
            return str(option["Settings"][0]).strip()
        if match := re.fullmatch(r"sid\s*:\s*(\S+)", keyword):
            return match.group(1)
    raise InvalidRequest(f"Stateful rule {rule.get('Action')} {rule.get('Header')} has no sid rule option.")


def _consumed_capacity(group: RuleGroup) -> int | None:
    source = group.body.get("RulesSource") or {}
    if source.get("RulesSourceList"):
        listed = source["RulesSourceList"]
        return len(listed.get("Targets") or []) * max(1, len(listed.get("TargetTypes") or []))
    if source.get("StatefulRules"):
        return len(source["StatefulRules"])
    if source.get("RulesString"):
        lines = [line.strip() for line in source["RulesString"].splitlines()]
        return len([line for line in lines if line and not line.startswith("#")])
    return None


def _policies_using(store: Store, group_arn: str) -> list[Policy]:
    return [
        policy
        for policy in store.policies.values()
        if group_arn
        in {ref["ResourceArn"] for key in ("StatefulRuleGroupReferences", "StatelessRuleGroupReferences")
            for ref in policy.document.get(key) or []}
    ]


def _rule_group_response(store: Store, group: RuleGroup, status: str = "ACTIVE") -> dict[str, Any]:
    response: dict[str, Any] = {
        "RuleGroupArn": group.arn,
        "RuleGroupName": group.name,
        "RuleGroupId": group.id,
        "Type": group.type,
        "Capacity": group.capacity,
        "RuleGroupStatus": status,
        "Tags": group.tags,
        "NumberOfAssociations": len(_policies_using(store, group.arn)),
        "LastModifiedTime": group.modified,
    }
    if group.description is not None:
        response["Description"] = group.description
    if (consumed := _consumed_capacity(group)) is not None:
        response["ConsumedCapacity"] = consumed
    return response


def _find_rule_group(req: Request) -> RuleGroup:
    p = req.params
    name, kind = p.get("RuleGroupName"), p.get("Type")
    if name and not p.get("RuleGroupArn") and not kind:
        raise InvalidRequest("Type is required when the rule group is given by RuleGroupName without RuleGroupArn.")
    group = find(
        req.store.rule_groups, p.get("RuleGroupArn"), name,
        lambda n: req.arn(_ARN_KIND.get(kind or "", "stateful-rulegroup"), n), "rule group",
    )
    if kind and group.type != kind:
        raise ResourceNotFound(f"The rule group {p.get('RuleGroupArn') or name} of type {kind} does not exist.")
    return group


@operation("CreateRuleGroup")
def _create_rule_group(req: Request) -> dict[str, Any]:
    p = req.params
    kind = _rule_group_kind(p.get("Type"))
    name, capacity = p["RuleGroupName"], p["Capacity"]
    if not 1 <= capacity <= _MAX_CAPACITY:
        raise InvalidRequest(f"Capacity must be between 1 and {_MAX_CAPACITY}; got {capacity}.")
    arn = req.arn(_ARN_KIND[kind], name)
    unique_name(req.store.rule_groups, arn, "rule group", name)
    body = _rule_group_body(p, kind)
    group = RuleGroup(
        name=name, arn=arn, description=p.get("Description"), tags=tags_of(p), type=kind, capacity=capacity, body=body
    )
    req.store.rule_groups[arn] = group
    return {"UpdateToken": group.token, "RuleGroupResponse": _rule_group_response(req.store, group)}


@operation("DescribeRuleGroup")
def _describe_rule_group(req: Request) -> dict[str, Any]:
    group = _find_rule_group(req)
    return {
        "UpdateToken": group.token,
        "RuleGroup": group.body,
        "RuleGroupResponse": _rule_group_response(req.store, group),
    }


def rule_order(body: dict[str, Any], key: str = "StatefulRuleOptions") -> str:
    return (body.get(key) or {}).get("RuleOrder") or _DEFAULT_ORDER


def _same_order(before: str, after: str) -> None:
    """A rule group's or policy's rule order is fixed at creation (the error AWS answers when an update
    changes it, as CloudFormation relays it in awslabs/landing-zone-accelerator-on-aws#23)."""
    if before != after:
        raise InvalidRequest(f"parameter is invalid, parameter: [{after}]")


@operation("UpdateRuleGroup")
def _update_rule_group(req: Request) -> dict[str, Any]:
    group = _find_rule_group(req)
    check_token(group, req.params.get("UpdateToken"), "rule group")
    body = _rule_group_body(req.params, group.type)
    if group.type == "STATEFUL":
        _same_order(rule_order(group.body), rule_order(body))
    group.body = body
    if "Description" in req.params:
        group.description = req.params["Description"]
    group.changed()
    return {"UpdateToken": group.token, "RuleGroupResponse": _rule_group_response(req.store, group)}


@operation("ListRuleGroups")
def _list_rule_groups(req: Request) -> dict[str, Any]:
    p = req.params
    groups = [] if p.get("Scope") == "MANAGED" else list(req.store.rule_groups.values())
    if p.get("Type"):
        groups = [g for g in groups if g.type == p["Type"]]
    groups.sort(key=lambda g: (g.name, g.arn))
    page, token = paginate(groups, p)
    result: dict[str, Any] = {"RuleGroups": [{"Name": g.name, "Arn": g.arn} for g in page]}
    if token:
        result["NextToken"] = token
    return result


@operation("DeleteRuleGroup")
def _delete_rule_group(req: Request) -> dict[str, Any]:
    group = _find_rule_group(req)
    if _policies_using(req.store, group.arn):
        raise InvalidOperation(_IN_USE)
    response = _rule_group_response(req.store, group, status="DELETING")
    del req.store.rule_groups[group.arn]
    return {"RuleGroupResponse": response}


# --- firewall policies (rules 2, 3, 4) ------------------------------------------------------------------


def _check_stateless_actions(document: dict[str, Any], key: str) -> None:
    actions = document.get(key) or []
    custom = {a.get("ActionName") for a in document.get("StatelessCustomActions") or []}
    standard = [a for a in actions if a in _STANDARD_STATELESS_ACTIONS]
    unknown = [a for a in actions if a not in _STANDARD_STATELESS_ACTIONS and a not in custom]
    if len(standard) != 1 or unknown:
        raise InvalidRequest(
            f"{key} must hold exactly one of aws:pass, aws:drop or aws:forward_to_sfe, plus optional custom "
            f"actions defined in StatelessCustomActions; got {actions}."
        )


def _check_stateful_actions(document: dict[str, Any], order: str) -> None:
    actions = document.get("StatefulDefaultActions") or []
    if actions and order != "STRICT_ORDER":
        raise InvalidRequest("StatefulDefaultActions can only be set when the stateful rule order is STRICT_ORDER.")
    unknown = [a for a in actions if a not in _STATEFUL_DEFAULT_ACTIONS]
    if unknown:
        raise InvalidRequest(f"StatefulDefaultActions: {unknown} are not stateful default actions; use {sorted(_STATEFUL_DEFAULT_ACTIONS)}.")
    drops = [a for a in actions if a.startswith("aws:drop")]
    if len(drops) > 1:
        raise InvalidRequest(f"StatefulDefaultActions may hold one drop action, got {drops}.")


def _check_priorities(document: dict[str, Any]) -> None:
    """Under STRICT_ORDER each stateful reference has a priority, unique in the policy, in 1..65535."""
    seen: dict[int, str] = {}
    for reference in document.get("StatefulRuleGroupReferences") or []:
        arn, priority = reference["ResourceArn"], reference.get("Priority")
        if priority is None:
            raise InvalidRequest(f"Stateful rule group {arn} needs a Priority under STRICT_ORDER.")
        if not 1 <= priority <= _MAX_PRIORITY:
            raise InvalidRequest(f"Priority {priority} of stateful rule group {arn} is outside 1..{_MAX_PRIORITY}.")
        if priority in seen:
            raise InvalidRequest(
                f"Stateful rule groups {seen[priority]} and {arn} have the same Priority {priority}; priorities must be "
                "unique within a firewall policy."
            )
        seen[priority] = arn


def _check_policy(store: Store, document: dict[str, Any]) -> None:
    _check_stateless_actions(document, "StatelessDefaultActions")
    _check_stateless_actions(document, "StatelessFragmentDefaultActions")
    order = rule_order(document, "StatefulEngineOptions")
    _check_stateful_actions(document, order)
    if order == "STRICT_ORDER":
        _check_priorities(document)
    seen: set[str] = set()
    for key, kind in (("StatefulRuleGroupReferences", "STATEFUL"), ("StatelessRuleGroupReferences", "STATELESS")):
        for reference in document.get(key) or []:
            arn = reference["ResourceArn"]
            group = store.rule_groups.get(arn)
            if group is None or group.type != kind:
                raise InvalidRequest(f"{key}: {arn} is not an existing {kind} rule group.")
            if arn in seen:
                raise InvalidRequest(f"{key}: rule group {arn} is referenced more than once.")
            seen.add(arn)
            if kind == "STATELESS":
                continue
            group_order = (group.body.get("StatefulRuleOptions") or {}).get("RuleOrder") or _DEFAULT_ORDER
            if group_order != order:
                raise InvalidRequest(
                    f"Rule group {arn} has rule order {group_order}, which does not match the firewall policy's "
                    f"stateful rule order {order}."
                )
            if order == _DEFAULT_ORDER and reference.get("Priority") is not None:
                raise InvalidRequest(
                    f"Stateful rule group {arn} cannot have a Priority under DEFAULT_ACTION_ORDER."
                )


def _policy_response(store: Store, policy: Policy, status: str = "ACTIVE") -> dict[str, Any]:
    def capacity(key: str) -> int:
        groups = [store.rule_groups.get(ref["ResourceArn"]) for ref in policy.document.get(key) or []]
        return sum(group.capacity for group in groups if group is not None)

    response: dict[str, Any] = {
        "FirewallPolicyName": policy.name,
        "FirewallPolicyArn": policy.arn,
        "FirewallPolicyId": policy.id,
        "FirewallPolicyStatus": status,
        "Tags": policy.tags,
        "ConsumedStatelessRuleCapacity": capacity("StatelessRuleGroupReferences"),
        "ConsumedStatefulRuleCapacity": capacity("StatefulRuleGroupReferences"),
        "NumberOfAssociations": len(firewalls_using(store, policy.arn)),
        "LastModifiedTime": policy.modified,
    }
    if policy.description is not None:
        response["Description"] = policy.description
    return response


def _find_policy(req: Request) -> Policy:
    p = req.params
    return find(
        req.store.policies, p.get("FirewallPolicyArn"), p.get("FirewallPolicyName"),
        lambda n: req.arn("firewall-policy", n), "firewall policy",
    )


@operation("CreateFirewallPolicy")
def _create_firewall_policy(req: Request) -> dict[str, Any]:
    p = req.params
    name = p["FirewallPolicyName"]
    arn = req.arn("firewall-policy", name)
    unique_name(req.store.policies, arn, "firewall policy", name)
    _check_policy(req.store, p["FirewallPolicy"])
    policy = Policy(name=name, arn=arn, description=p.get("Description"), tags=tags_of(p), document=p["FirewallPolicy"])
    req.store.policies[arn] = policy
    return {"UpdateToken": policy.token, "FirewallPolicyResponse": _policy_response(req.store, policy)}


@operation("DescribeFirewallPolicy")
def _describe_firewall_policy(req: Request) -> dict[str, Any]:
    policy = _find_policy(req)
    return {
        "UpdateToken": policy.token,
        "FirewallPolicyResponse": _policy_response(req.store, policy),
        "FirewallPolicy": policy.document,
    }


@operation("UpdateFirewallPolicy")
def _update_firewall_policy(req: Request) -> dict[str, Any]:
    policy = _find_policy(req)
    check_token(policy, req.params.get("UpdateToken"), "firewall policy")
    _same_order(rule_order(policy.document, "StatefulEngineOptions"), rule_order(req.params["FirewallPolicy"], "StatefulEngineOptions"))
    _check_policy(req.store, req.params["FirewallPolicy"])
    policy.document = req.params["FirewallPolicy"]
    if "Description" in req.params:
        policy.description = req.params["Description"]
    policy.changed()
    return {"UpdateToken": policy.token, "FirewallPolicyResponse": _policy_response(req.store, policy)}


@operation("ListFirewallPolicies")
def _list_firewall_policies(req: Request) -> dict[str, Any]:
    policies = sorted(req.store.policies.values(), key=lambda policy: policy.name)
    page, token = paginate(policies, req.params)
    result: dict[str, Any] = {"FirewallPolicies": [{"Name": policy.name, "Arn": policy.arn} for policy in page]}
    if token:
        result["NextToken"] = token
    return result


@operation("DeleteFirewallPolicy")
def _delete_firewall_policy(req: Request) -> dict[str, Any]:
    policy = _find_policy(req)
    if firewalls_using(req.store, policy.arn):
        raise InvalidOperation(_IN_USE)
    response = _policy_response(req.store, policy, status="DELETING")
    del req.store.policies[policy.arn]
    return {"FirewallPolicyResponse": response}


# --- inventory (listing.py) ------------------------------------------------------------------------


@lists("firewall_policy")
def _list_firewall_policies(clients: Clients) -> list[dict]:
    return clients("network-firewall").list_firewall_policies()["FirewallPolicies"]


@lists("rule_group")
def _list_rule_groups(clients: Clients) -> list[dict]:
    return clients("network-firewall").list_rule_groups()["RuleGroups"]
