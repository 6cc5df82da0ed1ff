"""Network security: VPC flow logs, CloudWatch Logs groups and network ACLs (rules 30 to 35; 36 is in endpoints.py).

30. CreateFlowLogs to CloudWatch Logs assumes its DeliverLogsPermissionArn role, as AWS does: a role that does
    not exist, whose trust policy does not let `vpc-flow-logs.amazonaws.com` assume it (its aws:SourceAccount /
    aws:SourceArn conditions checked against a flow log of this account and region), or that is younger than
    `iam_propagation_seconds` (IAM propagation) fails the call with InvalidParameter "Unable to assume given
    IAM role: '<arn>'". moto accepts any ARN.
31. CreateFlowLogs honours its ClientToken (rule 1's semantics): a retry with the same token and parameters is
    answered with the first result and makes nothing; other parameters fail with IdempotentParameterMismatch.
32. PutRetentionPolicy accepts only CloudWatch Logs' retention values (InvalidParameterException, in AWS's
    validation wording); moto stores any number.
33. CreateLogGroup and AssociateKmsKey with a kmsKeyId need a key of this account and region that is Enabled
    and whose key policy lets `logs.<region>.amazonaws.com` use it (kms:GenerateDataKey and kms:Decrypt),
    for this group if the statement conditions on kms:EncryptionContext:aws:logs:arn; otherwise
    AccessDeniedException "The specified KMS key does not exist or is not allowed to be used with Arn
    '<group arn>'". moto stores any key id, and lacks AssociateKmsKey / DisassociateKmsKey (added here).
34. Network ACLs as EC2 shows them: a new custom ACL lists its final deny rules (32767, ingress and egress);
    entries report protocol numbers ("tcp" is "6"); DescribeNetworkAcls of an unknown id answers
    InvalidNetworkAclID.NotFound (moto: InvalidRouteTableID.NotFound); DeleteNetworkAclEntry and
    ReplaceNetworkAclEntry of a missing entry answer InvalidNetworkAclEntry.NotFound (moto: a 500);
    CreateNetworkAcl honours its ClientToken.
    (DeleteNetworkAcl of an ACL still associated with a subnet: moto already answers DependencyViolation.)
35. Inventory (listing.py): flow_log, log_group and network_acl (custom ACLs only, never a VPC's default).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.ec2.exceptions import (
    EC2ClientError,
    InvalidNetworkAclIdError,
    InvalidRouteTableIdError,
)
from moto.ec2.models import EC2Backend
from moto.ec2.responses import EC2Response
from moto.iam.exceptions import NotFoundException
from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.logs.exceptions import InvalidParameterException, ResourceNotFoundException
from moto.logs.responses import LogsResponse

from provision.clouds.aws.sandbox.idempotency import idempotent
from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings

FLOW_LOGS_SERVICE = "vpc-flow-logs.amazonaws.com"
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
FINAL_RULE = 32767
_PROTOCOL_NUMBERS = {"all": "-1", "tcp": "6", "udp": "17", "icmp": "1"}
_IGNORED_PARAMS = {"Action", "Version", "ClientToken"}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _document(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(unquote(value))
    return value if isinstance(value, dict) else {}


def _allows(statement: dict[str, Any], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), str(pattern).lower()) for pattern in _listed(statement.get("Action", [])))


def _service_principal(statement: dict[str, Any], service: str) -> bool:
    principal = statement.get("Principal")
    return isinstance(principal, dict) and service in _listed(principal.get("Service", []))


def _conditions_hold(statement: dict[str, Any], context: dict[str, str]) -> bool:
    """The statement's conditions on the keys in `context` (others are not checked here)."""
    for operator, clauses in (statement.get("Condition") or {}).items():
        for key, values in clauses.items():
            if key not in context:
                continue
            actual, wanted = context[key], [str(v) for v in _listed(values)]
            if operator in ("StringEquals", "ArnEquals"):
                ok = actual in wanted
            elif operator in ("StringLike", "ArnLike"):
                ok = any(fnmatch.fnmatchcase(actual, pattern) for pattern in wanted)
            else:
                continue
            if not ok:
                return False
    return True


# --- rules 30 and 31: CreateFlowLogs --------------------------------------------------------------------


def _assumable_by_flow_logs(response: Any, settings: SandboxSettings, role_arn: str | None) -> bool:
    account, region = response.current_account, response.region
    if not role_arn:
        return False
    try:
        role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
    except NotFoundException:
        return False
    context = {"aws:SourceAccount": account, "aws:SourceArn": f"arn:aws:ec2:{region}:{account}:vpc-flow-log/fl-0123456789abcdef0"}
    trusted = any(
        s.get("Effect") == "Allow" and _service_principal(s, FLOW_LOGS_SERVICE) and _allows(s, "sts:AssumeRole")
        and _conditions_hold(s, context)
        for s in _listed(_document(role.assume_role_policy_document).get("Statement", []))
    )
    age = (datetime.now(UTC).replace(tzinfo=None) - role.create_date).total_seconds()  # moto's dates are naive UTC
    return trusted and age >= settings.delay("iam_propagation_seconds", role_arn)


@patch(EC2Response, "create_flow_logs")
def _create_flow_logs(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    token = self._get_param("ClientToken")
    params = sorted((k, tuple(v)) for k, v in self.querystring.items() if k not in _IGNORED_PARAMS)
    tokens: dict = self.ec2_backend.__dict__.setdefault("_sandbox_flow_log_tokens", {})
    if token and token in tokens:
        seen_params, first = tokens[token]
        if seen_params != params:
            raise EC2ClientError("IdempotentParameterMismatch", f"The client token '{token}' was already used with different request parameters.")
        return ActionResult(dict(first))
    destination = self._get_param("LogDestinationType") or "cloud-watch-logs"
    role_arn = self._get_param("DeliverLogsPermissionArn")
    if destination == "cloud-watch-logs" and role_arn and not _assumable_by_flow_logs(self, settings, role_arn):
        raise EC2ClientError("InvalidParameter", f"Unable to assume given IAM role: '{role_arn}'")
    result = original(self)
    if token:
        result.result["ClientToken"] = token
        tokens[token] = (params, {k: result.result[k] for k in ("FlowLogIds", "Unsuccessful", "ClientToken")})
    return result


# --- rules 32 and 33: CloudWatch Logs groups ---------------------------------------------------------


def _denied(group_arn: str) -> JsonRESTError:
    return JsonRESTError("AccessDeniedException", f"The specified KMS key does not exist or is not allowed to be used with Arn '{group_arn}'")


def _key_usable_by_logs(account: str, region: str, key_arn: str, group_arn: str) -> bool:
    parts = key_arn.split(":")
    if len(parts) != 6 or parts[2] != "kms" or parts[3] != region or parts[4] != account or not parts[5].startswith("key/"):
        return False
    if account not in kms_backends or region not in list(kms_backends[account].keys()):  # never instantiate one
        return False
    key = kms_backends[account][region].keys.get(parts[5].removeprefix("key/"))
    if key is None or key.key_state != "Enabled":
        return False
    context = {"kms:EncryptionContext:aws:logs:arn": group_arn}
    return any(
        s.get("Effect") == "Allow" and _service_principal(s, f"logs.{region}.amazonaws.com")
        and _allows(s, "kms:GenerateDataKey") and _allows(s, "kms:Decrypt") and _conditions_hold(s, context)
        for s in _listed(_document(key.policy).get("Statement", []))
    )


def _group_arn(response: Any, name: str) -> str:
    return f"arn:aws:logs:{response.region}:{response.current_account}:log-group:{name}"


def _check_key(response: Any, name: str, key_arn: str | None) -> None:
    if key_arn and not _key_usable_by_logs(response.current_account, response.region, key_arn, _group_arn(response, name)):
        raise _denied(_group_arn(response, name))


@patch(LogsResponse, "create_log_group")
def _create_log_group(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    _check_key(self, self._get_param("logGroupName"), self._get_param("kmsKeyId"))
    return original(self)


@patch(LogsResponse, "put_retention_policy")
def _put_retention_policy(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    days = self._get_param("retentionInDays")
    if days not in RETENTION_DAYS:
        raise InvalidParameterException(
            constraint=f"Member must satisfy enum value set: [{', '.join(map(str, RETENTION_DAYS))}]",
            parameter="retentionInDays", value=days,
        )
    return original(self)


def _group(response: Any) -> Any:
    group = response.logs_backend.groups.get(response._get_param("logGroupName"))
    if group is None:
        raise ResourceNotFoundException("The specified log group does not exist.")
    return group


@patch(LogsResponse, "associate_kms_key", adds=True)  # missing in moto 5.2.5
def _associate_kms_key(self: Any, original: Callable, settings: SandboxSettings) -> str:
    group = _group(self)
    key_arn = self._get_param("kmsKeyId")
    _check_key(self, group.name, key_arn)
    group.kms_key_id = key_arn
    return ""


@patch(LogsResponse, "disassociate_kms_key", adds=True)  # missing in moto 5.2.5
def _disassociate_kms_key(self: Any, original: Callable, settings: SandboxSettings) -> str:
    _group(self).kms_key_id = None
    return ""


# --- rule 34: network ACLs ----------------------------------------------------------------------------


@patch(EC2Backend, "create_network_acl")
def _create_network_acl(
    self: Any, original: Callable, settings: SandboxSettings, vpc_id: str, tags: list[dict[str, str]] | None = None, default: bool = False,
) -> Any:
    acl = original(self, vpc_id, tags=tags, default=default)
    if not default:  # moto gives the default ACL its entries already
        for egress in (False, True):
            self.create_network_acl_entry(
                network_acl_id=acl.id, rule_number=FINAL_RULE, protocol="-1", rule_action="deny", egress=egress,
                cidr_block="0.0.0.0/0", icmp_code=None, icmp_type=None, port_range_from=None, port_range_to=None,
                ipv6_cidr_block=None,
            )
    return acl


@patch(EC2Backend, "create_network_acl_entry")
def _create_network_acl_entry(self: Any, original: Callable, settings: SandboxSettings, *args: Any, **kwargs: Any) -> Any:
    # moto always passes keywords (its responses and its own replace); EC2 stores protocol numbers.
    protocol = str(kwargs.get("protocol", ""))
    kwargs["protocol"] = _PROTOCOL_NUMBERS.get(protocol.lower(), protocol)
    return original(self, *args, **kwargs)


def _entry_must_exist(backend: Any, network_acl_id: str, rule_number: Any, egress: Any) -> None:
    acl = backend.get_network_acl(network_acl_id)  # InvalidNetworkAclID.NotFound first
    if not any(e.rule_number == rule_number and e.egress == egress for e in acl.network_acl_entries):
        raise EC2ClientError("InvalidNetworkAclEntry.NotFound", f"The network ACL entry identified by {rule_number} could not be found.")


@patch(EC2Backend, "delete_network_acl_entry")
def _delete_network_acl_entry(self: Any, original: Callable, settings: SandboxSettings, network_acl_id: str, rule_number: int, egress: bool) -> Any:
    _entry_must_exist(self, network_acl_id, rule_number, egress)  # moto: StopIteration, a 500
    return original(self, network_acl_id, rule_number, egress)


@patch(EC2Backend, "replace_network_acl_entry")
def _replace_network_acl_entry(self: Any, original: Callable, settings: SandboxSettings, *args: Any, **kwargs: Any) -> Any:
    _entry_must_exist(self, kwargs["network_acl_id"], kwargs["rule_number"], kwargs["egress"])  # moto: StopIteration, a 500
    return original(self, *args, **kwargs)


@patch(EC2Backend, "describe_network_acls")
def _describe_network_acls(
    self: Any, original: Callable, settings: SandboxSettings, network_acl_ids: list[str] | None = None, filters: Any = None,
) -> Any:
    try:
        return original(self, network_acl_ids, filters)
    except InvalidRouteTableIdError:
        missing = next(i for i in network_acl_ids or [] if i not in self.network_acls)
        raise InvalidNetworkAclIdError(missing) from None


patch(EC2Response, "create_network_acl")(idempotent("NetworkAcl", "network_acls"))


# --- rule 35: inventory --------------------------------------------------------------------------------


@lists("flow_log", owned=True)
def _list_flow_logs(clients: Clients) -> list[dict]:
    return clients("ec2").describe_flow_logs()["FlowLogs"]


@lists("log_group", owned=True)
def _list_log_groups(clients: Clients) -> list[dict]:
    logs = clients("logs")
    groups = [g for page in logs.get_paginator("describe_log_groups").paginate() for g in page["logGroups"]]
    # The tags, in Logs' own shape (a map), so the inventory can tell ours.
    return [{**g, "tags": logs.list_tags_for_resource(resourceArn=g["logGroupArn"]).get("tags", {})} for g in groups]


@lists("network_acl", owned=True)
def _list_network_acls(clients: Clients) -> list[dict]:
    return clients("ec2").describe_network_acls(Filters=[{"Name": "default", "Values": ["false"]}])["NetworkAcls"]
