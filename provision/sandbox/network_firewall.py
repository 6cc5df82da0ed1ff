"""AWS Network Firewall in the sandbox: the operations provision calls, over boto3's real wire protocol
(JSON 1.0, X-Amz-Target "NetworkFirewall_20201112.<Operation>"), answered here instead of by moto 5.2.5,
which implements five of the service's operations (no rule groups, no policies, no deletion, no endpoints).

Requests that come through an app made by `aws.make_aws_app` never reach moto's networkfirewall backend:
`NetworkFirewallResponse.call_action` is patched (through aws.py's patch machinery, so moto used any
other way stays stock). moto still parses each request with botocore's model and serializes each answer
and each error, so shapes and error bodies are the service's own. The state lives on the EC2 backend of
the request's account and region, so POST /_sandbox/reset forgets it with the VPCs it refers to.

Fidelity rules:

1. Rule groups: CreateRuleGroup takes Type STATEFUL or STATELESS, a Capacity of 1..30000 and exactly one
   of RuleGroup or Rules (a Suricata string, stored as RulesSource.RulesString); the RulesSource holds
   exactly one kind of source; StatelessRulesAndCustomActions only in a STATELESS group and nothing else
   in one; each stateful rule carries a unique sid (RuleOption "sid" with one setting, or "sid:<n>");
   RuleVariables IP set definitions are CIDRs. DescribeRuleGroup finds a group by ARN, or by name with
   Type (required then, as the API reference says). UpdateRuleGroup replaces the body (Capacity and
   Type cannot change). ListRuleGroups filters on Type (Scope MANAGED lists nothing) and pages.
   Anything invalid is InvalidRequestException; a name already taken (per type) is too.
2. Update tokens: every create, describe and update answers an UpdateToken, a new one after each change.
   UpdateRuleGroup and UpdateFirewallPolicy require the current one, else InvalidTokenException;
   UpdateFirewallDeleteProtection checks it only when given (it is optional there).
3. Firewall policies: StatelessDefaultActions and StatelessFragmentDefaultActions each hold exactly one
   of aws:pass, aws:drop, aws:forward_to_sfe (other entries must be StatelessCustomActions); every
   StatefulRuleGroupReference must name an existing STATEFUL group, every stateless reference an existing
   STATELESS group, no group twice; a stateful group's StatefulRuleOptions.RuleOrder must equal the
   policy's StatefulEngineOptions.RuleOrder (both default DEFAULT_ACTION_ORDER); Priority is required on
   stateful references under STRICT_ORDER and refused under DEFAULT_ACTION_ORDER, and so are
   StatefulDefaultActions. All of it InvalidRequestException, on create and on update.
4. In use: DeleteRuleGroup while a policy references the group, and DeleteFirewallPolicy while a firewall
   (also one still DELETING) uses the policy, fail with InvalidOperationException "Unable to delete the
   object because it is still in use" (the message Terraform's provider retries on). A deleted group or
   policy is answered with status DELETING and is gone at once.
5. Firewalls: CreateFirewall needs an existing policy, an existing VPC and one or more of its subnets, at
   most one per Availability Zone (InvalidRequestException otherwise; firewalls attached to a transit
   gateway are not modelled). DeleteProtection, SubnetChangeProtection and FirewallPolicyChangeProtection
   are TRUE when omitted (the API reference: "When you create a firewall, the operation initializes this
   flag to TRUE"), so a tool has to pass DeleteProtection=False or clear it before deleting. The firewall is
   PROVISIONING (ConfigurationSyncStateSummary PENDING, SyncStates {}) for
   `firewall_provisioning_seconds`, then READY / IN_SYNC with SyncStates {<zone>: {Attachment: {SubnetId,
   EndpointId, Status READY}, Config: {<policy and stateful group ARNs>: IN_SYNC}}}.
   UpdateFirewallDeleteProtection changes the flag. ListFirewalls filters on VpcIds and pages;
   Describe/UpdateLoggingConfiguration store the configuration as given.
6. Endpoints are real EC2 resources: at CreateFirewall each subnet gets a GatewayLoadBalancer-type VPC
   endpoint (service com.amazonaws.vpce.<region>.vpce-svc-..., RequesterManaged, state pending, then
   available when the firewall is READY) with a requester-managed network interface
   (gateway_load_balancer_endpoint) in the subnet. So DescribeVpcEndpoints lists them, CreateRoute/ReplaceRoute accept them as VpcEndpointId route
   targets, and DeleteSubnet / DeleteVpc fail with DependencyViolation while they exist (aws.py rules 5
   and 6). aws.py's endpoint lifecycle (rule 9) leaves them alone: the firewall drives them.
7. DeleteFirewall fails with InvalidOperationException while DeleteProtection is TRUE, and while any route
   of any route table targets one of its endpoints: AWS documents removing those routes as a
   prerequisite of deleting a firewall; that the API itself refuses is this sandbox's choice (stricter: a
   teardown that works here also works on AWS, where a firewall deleted under live routes leaves them as
   blackholes). Otherwise it is DELETING (attachments DELETING, endpoints `deleting`) for
   `firewall_deleting_seconds`, then gone: DescribeFirewall fails with ResourceNotFoundException, its
   endpoints are gone from EC2 and their network interfaces are released, lingering like every released
   interface for `eni_release_seconds` (aws.py rule 12). DeleteFirewall on a DELETING firewall answers it
   again.
8. Tags: Tags on create, TagResource, UntagResource and ListTagsForResource on the ARN of any rule group,
   policy or firewall, shown in the describe answers too.
9. Errors are the service's: HTTP 400 with a JSON body whose __type is ResourceNotFoundException (an
   unknown name or ARN), InvalidRequestException, InvalidOperationException or InvalidTokenException, so
   botocore raises ClientError with that Code. An operation not listed here fails with
   UnsupportedOperationException rather than silently doing nothing.

Time-based states advance lazily at the start of every Network Firewall and every EC2 request of the
same account and region (aws.py's state machine calls `advance`), under aws.py's lock.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import ec2_backends
from moto.ec2.models.vpcs import VPCEndPoint
from moto.ec2.utils import random_vpc_ep_id
from moto.networkfirewall.responses import NetworkFirewallResponse

from provision.sandbox import aws
from provision.sandbox.settings import SandboxSettings

_STORE_KEY = "_sandbox_network_firewall"
_STANDARD_STATELESS_ACTIONS = {"aws:pass", "aws:drop", "aws:forward_to_sfe"}
_RULE_SOURCES = ("RulesString", "RulesSourceList", "StatefulRules", "StatelessRulesAndCustomActions")
_ARN_KIND = {"STATEFUL": "stateful-rulegroup", "STATELESS": "stateless-rulegroup"}
_DEFAULT_ORDER = "DEFAULT_ACTION_ORDER"
_IN_USE = "Unable to delete the object because it is still in use"
_MAX_CAPACITY = 30000


# --- errors (moto serializes them as the service does: HTTP 400, {"__type": ..., "Message": ...}) ----


class ResourceNotFound(ServiceException):
    code = "ResourceNotFoundException"


class InvalidRequest(ServiceException):
    code = "InvalidRequestException"


class InvalidOperation(ServiceException):
    code = "InvalidOperationException"


class InvalidToken(ServiceException):
    code = "InvalidTokenException"


class UnsupportedOperation(ServiceException):
    code = "UnsupportedOperationException"


# --- state -------------------------------------------------------------------------------------------


def _token() -> str:
    return str(uuid.uuid4())


@dataclass
class _Resource:
    name: str
    arn: str
    description: str | None
    tags: list[dict[str, str]]
    id: str = field(default_factory=_token)
    token: str = field(default_factory=_token)
    modified: datetime = field(default_factory=utcnow)

    def changed(self) -> None:
        self.token = _token()
        self.modified = utcnow()


@dataclass
class _RuleGroup(_Resource):
    type: str = "STATEFUL"
    capacity: int = 0
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Policy(_Resource):
    document: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Firewall(_Resource):
    policy_arn: str = ""
    vpc_id: str = ""
    subnet_ids: list[str] = field(default_factory=list)
    delete_protection: bool = True
    subnet_change_protection: bool = True
    policy_change_protection: bool = True
    status: str = "PROVISIONING"
    since: float = field(default_factory=time.monotonic)
    # zone -> (subnet id, VPC endpoint id)
    endpoints: dict[str, tuple[str, str]] = field(default_factory=dict)
    logging: dict[str, Any] = field(default_factory=lambda: {"LogDestinationConfigs": []})


@dataclass
class _Store:
    rule_groups: dict[str, _RuleGroup] = field(default_factory=dict)
    policies: dict[str, _Policy] = field(default_factory=dict)
    firewalls: dict[str, _Firewall] = field(default_factory=dict)

    def resources(self) -> dict[str, _Resource]:
        return {**self.rule_groups, **self.policies, **self.firewalls}


def _store(backend: Any) -> _Store:
    return backend.__dict__.setdefault(_STORE_KEY, _Store())


@dataclass
class _Request:
    params: dict[str, Any]
    backend: Any  # the EC2 backend of the request's account and region
    settings: SandboxSettings

    @property
    def store(self) -> _Store:
        return _store(self.backend)

    def arn(self, kind: str, name: str) -> str:
        b = self.backend
        return f"arn:{b.partition}:network-firewall:{b.region_name}:{b.account_id}:{kind}/{name}"


# --- dispatch ------------------------------------------------------------------------------------------

_OPERATIONS: dict[str, Callable[[_Request], dict[str, Any]]] = {}


def _operation(name: str) -> Callable[[Callable[[_Request], dict[str, Any]]], Callable[[_Request], dict[str, Any]]]:
    def register(fn: Callable[[_Request], dict[str, Any]]) -> Callable[[_Request], dict[str, Any]]:
        _OPERATIONS[name] = fn
        return fn

    return register


@aws._patches(NetworkFirewallResponse, "call_action")
def _call_action(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    action = self._get_action()
    handler = _OPERATIONS.get(action)
    try:
        if handler is None:
            raise UnsupportedOperation(f"The sandbox does not implement the Network Firewall operation {action}.")
        backend = ec2_backends[self.current_account][self.region]
        aws._advance(backend, settings)  # also advances the firewalls (the hook below)
        result: Any = handler(_Request(dict(getattr(self, "params", None) or {}), backend, settings))
    except ServiceException as exc:
        result = exc
    status, headers, body = self.serialized(ActionResult(result))
    headers, body = self._enrich_response(headers, body)
    return status, headers, body


# --- helpers -------------------------------------------------------------------------------------------


def _find(
    table: dict[str, Any], arn: str | None, name: str | None, arn_for_name: Callable[[str], str], what: str
) -> Any:
    if not arn and not name:
        raise InvalidRequest(f"You must specify the ARN or the name of the {what}, and you can specify both.")
    found = table.get(arn) if arn else table.get(arn_for_name(name))  # type: ignore[arg-type]
    if found is None or (name and found.name != name):
        raise ResourceNotFound(f"The {what} {arn or name} does not exist.")
    return found


def _check_token(resource: _Resource, given: str | None, what: str) -> None:
    if given != resource.token:
        raise InvalidToken(
            f"The update token of {what} {resource.name} is out of date or invalid. Describe the {what} again "
            "to get its current update token, then retry the update."
        )


def _page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
    token = params.get("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError:
        raise InvalidRequest(f"Invalid NextToken: {token}") from None
    size = params.get("MaxResults") or 100
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _tags(params: dict[str, Any]) -> list[dict[str, str]]:
    merged: dict[str, str] = {}
    for tag in params.get("Tags") or []:
        merged[tag["Key"]] = tag["Value"]
    return [{"Key": k, "Value": v} for k, v in merged.items()]


def _unique_name(table: dict[str, Any], arn: str, what: str, name: str) -> None:
    if arn in table:
        raise InvalidRequest(f"A {what} with the name {name} already exists.")


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


def _consumed_capacity(group: _RuleGroup) -> int | None:
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


def _policies_using(store: _Store, group_arn: str) -> list[_Policy]:
    return [
        policy
        for policy in store.policies.values()
        if group_arn
        in {ref["ResourceArn"] for key in ("StatefulRuleGroupReferences", "StatelessRuleGroupReferences")
            for ref in policy.document.get(key) or []}
    ]


def _rule_group_response(store: _Store, group: _RuleGroup, status: str = "ACTIVE") -> dict[str, Any]:
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


def _find_rule_group(req: _Request) -> _RuleGroup:
    p = req.params
    name, kind = p.get("RuleGroupName"), p.get("Type")
    if name and not p.get("RuleGroupArn") and not kind:
        raise InvalidRequest("Type is required when the rule group is given by RuleGroupName without RuleGroupArn.")
    group = _find(
        req.store.rule_groups, p.get("RuleGroupArn"), name,
        lambda n: req.arn(_ARN_KIND.get(kind or "", "stateful-rulegroup"), n), "rule group",
    )
    if kind and group.type != kind:
        raise ResourceNotFound(f"The rule group {p.get('RuleGroupArn') or name} of type {kind} does not exist.")
    return group


@_operation("CreateRuleGroup")
def _create_rule_group(req: _Request) -> dict[str, Any]:
    p = req.params
    kind = _rule_group_kind(p.get("Type"))
    name, capacity = p["RuleGroupName"], p["Capacity"]
    if not 1 <= capacity <= _MAX_CAPACITY:
        raise InvalidRequest(f"Capacity must be between 1 and {_MAX_CAPACITY}; got {capacity}.")
    arn = req.arn(_ARN_KIND[kind], name)
    _unique_name(req.store.rule_groups, arn, "rule group", name)
    body = _rule_group_body(p, kind)
    group = _RuleGroup(
        name=name, arn=arn, description=p.get("Description"), tags=_tags(p), type=kind, capacity=capacity, body=body
    )
    req.store.rule_groups[arn] = group
    return {"UpdateToken": group.token, "RuleGroupResponse": _rule_group_response(req.store, group)}


@_operation("DescribeRuleGroup")
def _describe_rule_group(req: _Request) -> dict[str, Any]:
    group = _find_rule_group(req)
    return {
        "UpdateToken": group.token,
        "RuleGroup": group.body,
        "RuleGroupResponse": _rule_group_response(req.store, group),
    }


@_operation("UpdateRuleGroup")
def _update_rule_group(req: _Request) -> dict[str, Any]:
    group = _find_rule_group(req)
    _check_token(group, req.params.get("UpdateToken"), "rule group")
    group.body = _rule_group_body(req.params, group.type)
    if "Description" in req.params:
        group.description = req.params["Description"]
    group.changed()
    return {"UpdateToken": group.token, "RuleGroupResponse": _rule_group_response(req.store, group)}


@_operation("ListRuleGroups")
def _list_rule_groups(req: _Request) -> dict[str, Any]:
    p = req.params
    groups = [] if p.get("Scope") == "MANAGED" else list(req.store.rule_groups.values())
    if p.get("Type"):
        groups = [g for g in groups if g.type == p["Type"]]
    groups.sort(key=lambda g: (g.name, g.arn))
    page, token = _page(groups, p)
    result: dict[str, Any] = {"RuleGroups": [{"Name": g.name, "Arn": g.arn} for g in page]}
    if token:
        result["NextToken"] = token
    return result


@_operation("DeleteRuleGroup")
def _delete_rule_group(req: _Request) -> dict[str, Any]:
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


def _check_policy(store: _Store, document: dict[str, Any]) -> None:
    _check_stateless_actions(document, "StatelessDefaultActions")
    _check_stateless_actions(document, "StatelessFragmentDefaultActions")
    order = (document.get("StatefulEngineOptions") or {}).get("RuleOrder") or _DEFAULT_ORDER
    if document.get("StatefulDefaultActions") and order != "STRICT_ORDER":
        raise InvalidRequest("StatefulDefaultActions can only be set when the stateful rule order is STRICT_ORDER.")
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
            if order == "STRICT_ORDER" and reference.get("Priority") is None:
                raise InvalidRequest(f"Stateful rule group {arn} needs a Priority under STRICT_ORDER.")
            if order == _DEFAULT_ORDER and reference.get("Priority") is not None:
                raise InvalidRequest(
                    f"Stateful rule group {arn} cannot have a Priority under DEFAULT_ACTION_ORDER."
                )


def _firewalls_using(store: _Store, policy_arn: str) -> list[_Firewall]:
    return [fw for fw in store.firewalls.values() if fw.policy_arn == policy_arn]


def _policy_response(store: _Store, policy: _Policy, status: str = "ACTIVE") -> dict[str, Any]:
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
        "NumberOfAssociations": len(_firewalls_using(store, policy.arn)),
        "LastModifiedTime": policy.modified,
    }
    if policy.description is not None:
        response["Description"] = policy.description
    return response


def _find_policy(req: _Request) -> _Policy:
    p = req.params
    return _find(
        req.store.policies, p.get("FirewallPolicyArn"), p.get("FirewallPolicyName"),
        lambda n: req.arn("firewall-policy", n), "firewall policy",
    )


@_operation("CreateFirewallPolicy")
def _create_firewall_policy(req: _Request) -> dict[str, Any]:
    p = req.params
    name = p["FirewallPolicyName"]
    arn = req.arn("firewall-policy", name)
    _unique_name(req.store.policies, arn, "firewall policy", name)
    _check_policy(req.store, p["FirewallPolicy"])
    policy = _Policy(name=name, arn=arn, description=p.get("Description"), tags=_tags(p), document=p["FirewallPolicy"])
    req.store.policies[arn] = policy
    return {"UpdateToken": policy.token, "FirewallPolicyResponse": _policy_response(req.store, policy)}


@_operation("DescribeFirewallPolicy")
def _describe_firewall_policy(req: _Request) -> dict[str, Any]:
    policy = _find_policy(req)
    return {
        "UpdateToken": policy.token,
        "FirewallPolicyResponse": _policy_response(req.store, policy),
        "FirewallPolicy": policy.document,
    }


@_operation("UpdateFirewallPolicy")
def _update_firewall_policy(req: _Request) -> dict[str, Any]:
    policy = _find_policy(req)
    _check_token(policy, req.params.get("UpdateToken"), "firewall policy")
    _check_policy(req.store, req.params["FirewallPolicy"])
    policy.document = req.params["FirewallPolicy"]
    if "Description" in req.params:
        policy.description = req.params["Description"]
    policy.changed()
    return {"UpdateToken": policy.token, "FirewallPolicyResponse": _policy_response(req.store, policy)}


@_operation("ListFirewallPolicies")
def _list_firewall_policies(req: _Request) -> dict[str, Any]:
    policies = sorted(req.store.policies.values(), key=lambda policy: policy.name)
    page, token = _page(policies, req.params)
    result: dict[str, Any] = {"FirewallPolicies": [{"Name": policy.name, "Arn": policy.arn} for policy in page]}
    if token:
        result["NextToken"] = token
    return result


@_operation("DeleteFirewallPolicy")
def _delete_firewall_policy(req: _Request) -> dict[str, Any]:
    policy = _find_policy(req)
    if _firewalls_using(req.store, policy.arn):
        raise InvalidOperation(_IN_USE)
    response = _policy_response(req.store, policy, status="DELETING")
    del req.store.policies[policy.arn]
    return {"FirewallPolicyResponse": response}


# --- firewalls and their endpoints (rules 5, 6, 7) -------------------------------------------------------


def _subnets_of(req: _Request, vpc_id: str, mappings: list[dict[str, Any]]) -> list[Any]:
    if not mappings:
        raise InvalidRequest("SubnetMappings must name at least one subnet.")
    subnets = []
    for mapping in mappings:
        try:
            subnet = req.backend.get_subnet(mapping["SubnetId"])
        except EC2ClientError:
            raise InvalidRequest(f"Subnet {mapping['SubnetId']} does not exist.") from None
        if subnet.vpc_id != vpc_id:
            raise InvalidRequest(f"Subnet {subnet.id} is not in VPC {vpc_id}.")
        subnets.append(subnet)
    zones = [subnet.availability_zone for subnet in subnets]
    if len(set(zones)) != len(zones):
        raise InvalidRequest("A firewall takes at most one subnet per Availability Zone.")
    return subnets


def _make_endpoint(backend: Any, firewall: _Firewall, subnet: Any, service_name: str) -> str:
    """A GatewayLoadBalancer-type VPC endpoint with its network interface in the subnet."""
    vpce_id = random_vpc_ep_id()
    eni = backend.create_network_interface(subnet, None, description=f"VPC Endpoint Interface {vpce_id}")
    eni.interface_type = "gateway_load_balancer_endpoint"
    eni.requester_managed = True
    endpoint = VPCEndPoint(
        backend, vpce_id, firewall.vpc_id, service_name, "GatewayLoadBalancer", None, [],
        subnet_ids=[subnet.id], network_interface_ids=[eni.id], dns_entries=[], private_dns_enabled=False,
    )
    endpoint.policy_document = None  # Gateway Load Balancer endpoints have no endpoint policy
    endpoint.requester_managed = True  # managed by Network Firewall, as DescribeVpcEndpoints shows on AWS
    endpoint.state = "pending"  # no _sandbox_since: aws.py's endpoint lifecycle leaves it to the firewall
    endpoint._sandbox_firewall = firewall.arn
    backend.vpc_end_points[vpce_id] = endpoint
    return vpce_id


def _set_endpoint_state(backend: Any, firewall: _Firewall, state: str) -> None:
    for _subnet_id, vpce_id in firewall.endpoints.values():
        endpoint = backend.vpc_end_points.get(vpce_id)
        if endpoint is not None:
            endpoint.state = state


def _firewall_document(firewall: _Firewall) -> dict[str, Any]:
    document: dict[str, Any] = {
        "FirewallName": firewall.name,
        "FirewallArn": firewall.arn,
        "FirewallId": firewall.id,
        "FirewallPolicyArn": firewall.policy_arn,
        "VpcId": firewall.vpc_id,
        "SubnetMappings": [{"SubnetId": subnet_id, "IPAddressType": "IPV4"} for subnet_id in firewall.subnet_ids],
        "DeleteProtection": firewall.delete_protection,
        "SubnetChangeProtection": firewall.subnet_change_protection,
        "FirewallPolicyChangeProtection": firewall.policy_change_protection,
        "Tags": firewall.tags,
    }
    if firewall.description is not None:
        document["Description"] = firewall.description
    return document


def _firewall_status(store: _Store, firewall: _Firewall) -> dict[str, Any]:
    if firewall.status == "PROVISIONING":
        return {"Status": "PROVISIONING", "ConfigurationSyncStateSummary": "PENDING", "SyncStates": {}}
    policy = store.policies.get(firewall.policy_arn)
    config = {}
    if policy is not None:
        config[policy.arn] = {"SyncStatus": "IN_SYNC", "UpdateToken": policy.token}
        for reference in policy.document.get("StatefulRuleGroupReferences") or []:
            group = store.rule_groups.get(reference["ResourceArn"])
            if group is not None:
                config[group.arn] = {"SyncStatus": "IN_SYNC", "UpdateToken": group.token}
    attachment_status = "READY" if firewall.status == "READY" else "DELETING"
    return {
        "Status": firewall.status,
        "ConfigurationSyncStateSummary": "IN_SYNC",
        "SyncStates": {
            zone: {
                "Attachment": {"SubnetId": subnet_id, "EndpointId": vpce_id, "Status": attachment_status},
                "Config": config,
            }
            for zone, (subnet_id, vpce_id) in sorted(firewall.endpoints.items())
        },
    }


def _find_firewall(req: _Request) -> _Firewall:
    p = req.params
    return _find(
        req.store.firewalls, p.get("FirewallArn"), p.get("FirewallName"), lambda n: req.arn("firewall", n), "firewall"
    )


def _routes_to(backend: Any, endpoint_ids: set[str]) -> list[str]:
    """'rtb-...: <destination> -> vpce-...' for every route whose target is one of the endpoints."""
    found = []
    for table in backend.route_tables.values():
        for route in table.routes:
            target = route.vpc_endpoint_id or getattr(route.gateway, "id", None)
            if target in endpoint_ids:
                destination = (
                    route.destination_cidr_block
                    or route.destination_ipv6_cidr_block
                    or getattr(route.destination_prefix_list, "id", None)
                )
                found.append(f"{table.id}: {destination} -> {target}")
    return found


@_operation("CreateFirewall")
def _create_firewall(req: _Request) -> dict[str, Any]:
    p = req.params
    name = p["FirewallName"]
    arn = req.arn("firewall", name)
    _unique_name(req.store.firewalls, arn, "firewall", name)
    if p["FirewallPolicyArn"] not in req.store.policies:
        raise InvalidRequest(f"The firewall policy {p['FirewallPolicyArn']} does not exist.")
    vpc_id = p.get("VpcId")
    if not vpc_id or p.get("TransitGatewayId"):
        raise InvalidRequest("The sandbox models VPC firewalls only: give VpcId and SubnetMappings.")
    if vpc_id not in req.backend.vpcs:
        raise InvalidRequest(f"The VPC {vpc_id} does not exist.")
    subnets = _subnets_of(req, vpc_id, p.get("SubnetMappings") or [])
    firewall = _Firewall(
        name=name,
        arn=arn,
        description=p.get("Description"),
        tags=_tags(p),
        policy_arn=p["FirewallPolicyArn"],
        vpc_id=vpc_id,
        subnet_ids=[subnet.id for subnet in subnets],
        delete_protection=p.get("DeleteProtection", True),
        subnet_change_protection=p.get("SubnetChangeProtection", True),
        policy_change_protection=p.get("FirewallPolicyChangeProtection", True),
    )
    service_name = f"com.amazonaws.vpce.{req.backend.region_name}.vpce-svc-{secrets.token_hex(9)[:17]}"
    for subnet in subnets:
        firewall.endpoints[subnet.availability_zone] = (
            subnet.id, _make_endpoint(req.backend, firewall, subnet, service_name)
        )
    req.store.firewalls[arn] = firewall
    return {"Firewall": _firewall_document(firewall), "FirewallStatus": _firewall_status(req.store, firewall)}


@_operation("DescribeFirewall")
def _describe_firewall(req: _Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    return {
        "UpdateToken": firewall.token,
        "Firewall": _firewall_document(firewall),
        "FirewallStatus": _firewall_status(req.store, firewall),
    }


@_operation("ListFirewalls")
def _list_firewalls(req: _Request) -> dict[str, Any]:
    vpc_ids = set(req.params.get("VpcIds") or [])
    firewalls = sorted(
        (fw for fw in req.store.firewalls.values() if not vpc_ids or fw.vpc_id in vpc_ids), key=lambda fw: fw.name
    )
    page, token = _page(firewalls, req.params)
    result: dict[str, Any] = {"Firewalls": [{"FirewallName": fw.name, "FirewallArn": fw.arn} for fw in page]}
    if token:
        result["NextToken"] = token
    return result


@_operation("DeleteFirewall")
def _delete_firewall(req: _Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    if firewall.status != "DELETING":
        if firewall.delete_protection:
            raise InvalidOperation(
                f"Firewall {firewall.name} has DeleteProtection enabled; disable it with "
                "UpdateFirewallDeleteProtection before deleting the firewall."
            )
        routes = _routes_to(req.backend, {vpce_id for _subnet, vpce_id in firewall.endpoints.values()})
        if routes:
            raise InvalidOperation(
                f"Firewall {firewall.name} is still in use: route tables route traffic to its endpoints "
                f"({'; '.join(routes)}). Remove those routes before deleting the firewall."
            )
        firewall.status, firewall.since = "DELETING", time.monotonic()
        firewall.changed()
        _set_endpoint_state(req.backend, firewall, "deleting")
    return {"Firewall": _firewall_document(firewall), "FirewallStatus": _firewall_status(req.store, firewall)}


@_operation("UpdateFirewallDeleteProtection")
def _update_firewall_delete_protection(req: _Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    if req.params.get("UpdateToken") is not None:
        _check_token(firewall, req.params["UpdateToken"], "firewall")
    firewall.delete_protection = req.params["DeleteProtection"]
    firewall.changed()
    return {
        "FirewallArn": firewall.arn,
        "FirewallName": firewall.name,
        "DeleteProtection": firewall.delete_protection,
        "UpdateToken": firewall.token,
    }


@_operation("DescribeLoggingConfiguration")
def _describe_logging_configuration(req: _Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    return {"FirewallArn": firewall.arn, "LoggingConfiguration": firewall.logging}


@_operation("UpdateLoggingConfiguration")
def _update_logging_configuration(req: _Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    firewall.logging = req.params.get("LoggingConfiguration") or {"LogDestinationConfigs": []}
    return {"FirewallArn": firewall.arn, "FirewallName": firewall.name, "LoggingConfiguration": firewall.logging}


def advance(backend: Any, settings: SandboxSettings) -> None:
    """Apply the firewalls' due transitions (called by aws.py's lazy state machine, under its lock)."""
    store = backend.__dict__.get(_STORE_KEY)
    if store is None:
        return
    now = time.monotonic()
    for firewall in list(store.firewalls.values()):
        if firewall.status == "PROVISIONING" and now >= (at := firewall.since + settings.delay("firewall_provisioning_seconds", firewall.arn)):
            firewall.status, firewall.since = "READY", at
            _set_endpoint_state(backend, firewall, "available")
        if firewall.status == "DELETING" and now >= (at := firewall.since + settings.delay("firewall_deleting_seconds", firewall.arn)):
            for _subnet_id, vpce_id in firewall.endpoints.values():
                endpoint = backend.vpc_end_points.pop(vpce_id, None)
                if endpoint is not None:
                    endpoint.state = "deleted"
                    aws._release_enis(backend, endpoint.network_interface_ids, (), at)
            del store.firewalls[firewall.arn]


aws.register_advance_hook("network_firewall", advance)


# --- tags (rule 8) --------------------------------------------------------------------------------------


def _tagged(req: _Request) -> _Resource:
    arn = req.params.get("ResourceArn")
    resource = req.store.resources().get(arn)  # type: ignore[arg-type]
    if resource is None:
        raise ResourceNotFound(f"The resource {arn} does not exist.")
    return resource


@_operation("TagResource")
def _tag_resource(req: _Request) -> dict[str, Any]:
    resource = _tagged(req)
    merged = {tag["Key"]: tag["Value"] for tag in itertools.chain(resource.tags, req.params.get("Tags") or [])}
    resource.tags = [{"Key": k, "Value": v} for k, v in merged.items()]
    return {}


@_operation("UntagResource")
def _untag_resource(req: _Request) -> dict[str, Any]:
    resource = _tagged(req)
    removed = set(req.params.get("TagKeys") or [])
    resource.tags = [tag for tag in resource.tags if tag["Key"] not in removed]
    return {}


@_operation("ListTagsForResource")
def _list_tags_for_resource(req: _Request) -> dict[str, Any]:
    return {"Tags": list(_tagged(req).tags)}
