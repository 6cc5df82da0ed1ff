"""Account guardrails: GuardDuty, AWS Config, AWS Budgets, and AWS managed IAM policies (rules 20-28).

20. One GuardDuty detector per account and region: CreateDetector with one present answers
    BadRequestException "The request is rejected because a detector already exists for the current
    account." (moto makes any number).
21. DeleteDetector of an unknown detector answers BadRequestException (moto ignores it).
22. PutConfigRule of an AWS managed rule needs a configuration recorder: NoAvailableConfigurationRecorderException
    "You must create a configuration recorder before you can create or update a Config rule." (moto takes it).
23. PutDeliveryChannel needs its bucket to exist (NoSuchBucketException; moto checks only that a name is
    given), the recorder's role to trust config.amazonaws.com and the role or the bucket policy to let
    Config write `AWSLogs/<account>/Config/` (InsufficientDeliveryPolicyException, as AWS words it).
    One recorder per region (MaxNumberOfConfigurationRecordersExceededException), a delivery channel only
    with a recorder (NoAvailableConfigurationRecorderException), start only with a channel
    (NoAvailableDeliveryChannelException) and no deleting the last channel while recording
    (LastDeliveryChannelDeleteFailedException) are moto's own already.
24. CreateBudget keeps its ResourceTags and ListTagsForResource returns them (moto drops them).
25. UpdateBudget replaces a budget's definition (missing in moto).
26. DescribeSubscribersForNotification lists a notification's subscribers (missing in moto).
27. AWS managed IAM policies (arn:aws:iam::aws:policy/...) exist in every account: AttachRolePolicy finds
    them (moto has none unless it loads all ~1,300 at start).
28. Inventory: guardduty_detector, config_recorder, delivery_channel, config_rule and budget.
All state lives on moto's backends, so the sandbox's reset (moto's) forgets it.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from functools import cache
from typing import Any

from moto.budgets.exceptions import BudgetMissingLimit, NotFoundException
from moto.budgets.responses import BudgetsResponse
from moto.config.models import ConfigBackend
from moto.core.exceptions import JsonRESTError
from moto.core.utils import unix_time
from moto.guardduty.models import GuardDutyBackend
from moto.iam.exceptions import NotFoundException as IAMNotFound
from moto.iam.models import AWSManagedPolicy, IAMBackend, iam_backends
from moto.s3.models import s3_backends

from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings

CONFIG = "config.amazonaws.com"
# What Config's delivery request carries, for the conditions of the policies that allow it.
_DELIVERY_CONTEXT = {"aws:sourceaccount": None, "s3:x-amz-acl": "bucket-owner-full-control", "aws:securetransport": "true"}


# --- GuardDuty (rules 20, 21) ------------------------------------------------------------------------


class DetectorExists(JsonRESTError):
    code = 400

    def __init__(self) -> None:
        # As GuardDuty answers: type InvalidInputException, error BadRequestException (the X-Amzn-ErrorType).
        super().__init__("InvalidInputException", "The request is rejected because a detector already exists for the current account.")

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("X-Amzn-ErrorType", "BadRequestException")]


@patch(GuardDutyBackend, "create_detector")
def _create_detector(self: Any, original: Callable, settings: SandboxSettings, *args: Any, **kwargs: Any) -> str:
    if self.detectors:
        raise DetectorExists()
    return original(self, *args, **kwargs)


@patch(GuardDutyBackend, "delete_detector")
def _delete_detector(self: Any, original: Callable, settings: SandboxSettings, detector_id: str) -> None:
    self.get_detector(detector_id)  # DetectorNotFoundException (BadRequestException) for an unknown id
    return original(self, detector_id)


# --- AWS Config (rules 22, 23) -------------------------------------------------------------------------


class ConfigError(JsonRESTError):
    code = 400


@patch(ConfigBackend, "put_config_rule")
def _put_config_rule(self: Any, original: Callable, settings: SandboxSettings, config_rule: dict[str, Any], tags: Any = None) -> str:
    if not self.recorders and (config_rule.get("Source") or {}).get("Owner") == "AWS":
        raise ConfigError(
            "NoAvailableConfigurationRecorderException", "You must create a configuration recorder before you can create or update a Config rule."
        )
    return original(self, config_rule, tags)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str | None]) -> bool:
    """String and Bool conditions on the keys a Config delivery carries; any other condition holds (lenient)."""
    for operator, keys in (conditions or {}).items():
        base = operator.removesuffix("IfExists")
        for key, expected in (keys or {}).items():
            actual = context.get(key.lower())
            values = [str(v) for v in _listed(expected)]
            if actual is None:
                continue
            if base == "StringEquals" and actual not in values:
                return False
            if base == "StringLike" and not any(fnmatch.fnmatchcase(actual, v) for v in values):
                return False
            if base == "StringNotEquals" and actual in values:
                return False
            if base == "Bool" and actual.lower() not in [v.lower() for v in values]:
                return False
    return True


def _matches(value: str, pattern: str) -> bool:
    # Most patterns are literal (AWS_ConfigRole lists thousands of actions): compare before compiling one.
    return value == pattern or (("*" in pattern or "?" in pattern) and fnmatch.fnmatchcase(value, pattern))


def _applies(statement: dict[str, Any], action: str, resource: str | None, context: dict[str, str | None], service: str | None) -> bool:
    if not any(_matches(action.lower(), str(a).lower()) for a in _listed(statement.get("Action", []))):
        return False
    # A trust policy names no resource (resource None): the role itself is it.
    if resource is not None and not any(_matches(resource, str(r)) for r in _listed(statement.get("Resource", []))):
        return False
    if service is not None:  # a resource policy: the statement must name the caller
        principal = statement.get("Principal")
        if principal != "*" and not (isinstance(principal, dict) and service in _listed(principal.get("Service", []))):
            return False
    return _conditions_hold(statement.get("Condition") or {}, context)


def _allows(documents: list[str], action: str, resource: str | None, context: dict[str, str | None], service: str | None = None) -> bool:
    statements = []
    for document in documents:
        try:
            statements += _listed(json.loads(document).get("Statement", []))
        except (ValueError, AttributeError):
            continue
    matching = [s for s in statements if isinstance(s, dict) and _applies(s, action, resource, context, service)]
    return any(s.get("Effect") == "Allow" for s in matching) and not any(s.get("Effect") == "Deny" for s in matching)


@patch(ConfigBackend, "put_delivery_channel")
def _put_delivery_channel(self: Any, original: Callable, settings: SandboxSettings, delivery_channel: dict[str, Any]) -> None:
    bucket_name, recorder = delivery_channel.get("s3BucketName"), next(iter(self.recorders.values()), None)
    if bucket_name and recorder is not None:  # moto's own checks (no recorder, no bucket name) come first otherwise
        bucket = s3_backends[self.account_id][self.partition].buckets.get(bucket_name)
        if bucket is None:
            raise ConfigError("NoSuchBucketException", f"Cannot find a S3 bucket with name {bucket_name}.")
        role = _role(self, recorder.role_arn)
        context = {**_DELIVERY_CONTEXT, "aws:sourceaccount": self.account_id}
        if role is None or not _allows([role.assume_role_policy_document], "sts:AssumeRole", None, context, CONFIG):
            raise ConfigError("InsufficientDeliveryPolicyException", f"Insufficient delivery policy to s3 bucket: {bucket_name}, unable to assume role: {recorder.role_arn}.")
        prefix = delivery_channel.get("s3KeyPrefix")
        key = f"{prefix + '/' if prefix else ''}AWSLogs/{self.account_id}/Config/ConfigWritabilityCheckFile"
        resource = f"arn:{self.partition}:s3:::{bucket_name}/{key}"
        role_documents = [*role.policies.values(), *(p.document for p in _role_managed(role))]
        bucket_policy = [bucket.policy.decode()] if bucket.policy else []
        if not (_allows(role_documents, "s3:PutObject", resource, context) or _allows(bucket_policy, "s3:PutObject", resource, context, CONFIG)):
            raise ConfigError(
                "InsufficientDeliveryPolicyException",
                f"Insufficient delivery policy to s3 bucket: {bucket_name}, unable to write to bucket, provided s3 key prefix is '{prefix or 'null'}'.",
            )
    return original(self, delivery_channel)


def _role(config: Any, role_arn: str) -> Any | None:
    try:
        return iam_backends[config.account_id][config.partition].get_role_by_arn(role_arn)
    except IAMNotFound:  # NoSuchEntity: the role does not exist
        return None


def _role_managed(role: Any) -> list[Any]:
    return [v for p in role.managed_policies.values() for v in p.versions if v.is_default]


# --- AWS managed IAM policies (rule 27) ------------------------------------------------------------------


@cache
def _aws_managed_policies() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)


@patch(IAMBackend, "attach_role_policy")
def _attach_role_policy(self: Any, original: Callable, settings: SandboxSettings, policy_arn: str, role_name: str) -> None:
    prefix = f"arn:{self.partition}:iam::aws:policy/"
    if policy_arn.startswith(prefix) and policy_arn not in self.managed_policies:
        data = _aws_managed_policies().get(policy_arn.rsplit("/", 1)[-1])
        if data is not None:
            policy = AWSManagedPolicy.from_data(policy_arn.rsplit("/", 1)[-1], self.account_id, self.region_name, data)
            if policy.arn == policy_arn:  # the path must match too (service-role/, job-function/, ...)
                self.managed_policies[policy.arn] = policy
    return original(self, policy_arn, role_name)


# --- AWS Budgets (rules 24-26) ----------------------------------------------------------------------------


def _budget(response: Any, account_id: str, name: str, doing: str) -> Any:
    budget = response.backend.budgets[account_id].get(name)
    if budget is None:
        raise NotFoundException(f"Unable to {doing}: {name} - the budget doesn't exist.")
    return budget


@patch(BudgetsResponse, "create_budget")
def _create_budget(self: Any, original: Callable, settings: SandboxSettings) -> str:
    result = original(self)
    budget = _budget(self, self._get_param("AccountId"), self._get_param("Budget")["BudgetName"], "get budget")
    budget.sandbox_tags = list(self._get_param("ResourceTags") or [])
    return result


@patch(BudgetsResponse, "update_budget", adds=True)  # missing in moto 5.2.5
def _update_budget(self: Any, original: Callable, settings: SandboxSettings) -> str:
    new = dict(self._get_param("NewBudget"))
    budget = _budget(self, self._get_param("AccountId"), new["BudgetName"], "update budget")
    if "BudgetLimit" not in new and "PlannedBudgetLimits" not in new:
        raise BudgetMissingLimit()
    new.setdefault("TimePeriod", budget.budget.get("TimePeriod"))
    budget.budget = {**new, "LastUpdatedTime": unix_time()}
    return "{}"


def _same_alert(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("NotificationType", "ComparisonOperator", "ThresholdType")
    return all(a.get(k) == b.get(k) for k in keys) and float(a.get("Threshold", 0)) == float(b.get("Threshold", 0))


@patch(BudgetsResponse, "describe_subscribers_for_notification", adds=True)  # missing in moto 5.2.5
def _describe_subscribers(self: Any, original: Callable, settings: SandboxSettings) -> str:
    name = self._get_param("BudgetName")
    budget = _budget(self, self._get_param("AccountId"), name, "get budget")
    wanted = self._get_param("Notification") or {}
    found = next((n for n in budget.notifications if _same_alert(n.details, wanted)), None)
    if found is None:
        raise NotFoundException(f"Unable to get subscribers: {name} - the notification doesn't exist.")
    return json.dumps({"Subscribers": found.subscribers, "NextToken": None})


@patch(BudgetsResponse, "list_tags_for_resource", adds=True)  # missing in moto 5.2.5
def _list_budget_tags(self: Any, original: Callable, settings: SandboxSettings) -> str:
    arn = str(self._get_param("ResourceARN") or "")
    parts = arn.split(":", 5)  # arn:aws:budgets::<account>:budget/<name>
    if len(parts) != 6 or not parts[5].startswith("budget/"):
        raise NotFoundException(f"Unable to get tags: {arn} is not a budget ARN.")
    budget = _budget(self, parts[4], parts[5].removeprefix("budget/"), "get tags of budget")
    return json.dumps({"ResourceTags": getattr(budget, "sandbox_tags", [])})


# --- inventory (listing.py, rule 28) ----------------------------------------------------------------------


@lists("guardduty_detector", owned=True)
def _list_detectors(clients: Clients) -> list[dict]:
    gd = clients("guardduty")
    found = []
    for detector_id in gd.list_detectors()["DetectorIds"]:
        detector = gd.get_detector(DetectorId=detector_id)
        tags = [{"Key": k, "Value": v} for k, v in (detector.get("Tags") or {}).items()]
        found.append({"DetectorId": detector_id, "Status": detector.get("Status"), "Tags": tags})
    return found


@lists("config_recorder")
def _list_recorders(clients: Clients) -> list[dict]:
    return clients("config").describe_configuration_recorders()["ConfigurationRecorders"]


@lists("delivery_channel")
def _list_delivery_channels(clients: Clients) -> list[dict]:
    return clients("config").describe_delivery_channels()["DeliveryChannels"]


@lists("config_rule", owned=True)
def _list_config_rules(clients: Clients) -> list[dict]:
    config = clients("config")
    rules = [r for page in config.get_paginator("describe_config_rules").paginate() for r in page["ConfigRules"]]
    return [{**r, "Tags": config.list_tags_for_resource(ResourceArn=r["ConfigRuleArn"])["Tags"]} for r in rules]


@lists("budget", owned=True)
def _list_budgets(clients: Clients) -> list[dict]:
    budgets, account = clients("budgets"), clients("sts").get_caller_identity()["Account"]
    found = budgets.describe_budgets(AccountId=account).get("Budgets", [])
    return [
        {**b, "Tags": budgets.list_tags_for_resource(ResourceARN=f"arn:aws:budgets::{account}:budget/{b['BudgetName']}")["ResourceTags"]}
        for b in found
    ]
