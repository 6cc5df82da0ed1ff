"""[guardrails]: the spec's rules (each problem names its field), the fragment, and the exact requests of the
GuardDuty, AWS Config and Budgets steps, checked with botocore's Stubber (nothing goes on the wire)."""

from __future__ import annotations

import copy
import random
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog
from botocore.stub import ANY, Stubber
from fakes import FakeClock
from structlog.testing import CapturingLogger

from provision import topologies
from provision.clouds import error_rules
from provision.clouds.aws.spec_guardrails import (
    DEFAULT_CONFIG_RULES,
    BudgetSpec,
    GuardrailsSpec,
)
from provision.clouds.aws.steps.awsconfig import ConfigRecorder, ConfigRules
from provision.clouds.aws.steps.awsconfig_delivery import (
    config_bucket_name,
    config_bucket_policy,
    config_delivery_policy,
    config_trust_policy,
)
from provision.clouds.aws.steps.budget import MonthlyBudget
from provision.clouds.aws.steps.guardduty import GuardDutyDetector
from provision.errors import SpecError
from provision.orchestrator.clients import CallStats
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import Context
from provision.orchestrator.wait import PollPolicy
from provision.topologies import aws_guardrails

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BASE = tomllib.loads((EXAMPLES / "basic.toml").read_text())
ACCOUNT = "123456789012"
BUDGET = {"monthly_limit_usd": 500, "alert_emails": ["platform@example.com"]}

def parse(guardrails: Any, topology: str = "basic") -> Any:
    data = copy.deepcopy(BASE)
    data["guardrails"] = guardrails
    return topologies.from_dict(data, "spec.toml").guardrails


def problems(guardrails: Any) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse(guardrails)
    return {p.field: p.reason for p in info.value.problems}


# --- the spec ------------------------------------------------------------------------------------------


def test_defaults() -> None:
    assert parse({}) == GuardrailsSpec(guardduty=True, config=True, config_rules=DEFAULT_CONFIG_RULES, record_global_resources=True, budget=None)
    assert len(DEFAULT_CONFIG_RULES) == 8
    budget = parse({"budget": BUDGET}).budget
    assert budget == BudgetSpec(500.0, ("platform@example.com",), (50.0, 80.0, 100.0, 120.0))
    assert parse({"config": False, "budget": BUDGET}).config_rules == ()
    data = copy.deepcopy(BASE)
    assert topologies.from_dict(data, "spec.toml").guardrails is None


def test_the_enterprise_example_turns_every_guardrail_on() -> None:
    spec = topologies.load(EXAMPLES / "enterprise.toml")
    assert spec.guardrails.guardduty and spec.guardrails.config and len(spec.guardrails.config_rules) == 8
    assert spec.guardrails.budget.thresholds_percent == (50.0, 80.0, 100.0, 120.0)


@pytest.mark.parametrize(
    ("guardrails", "field", "says"),
    [
        (5, "guardrails", "must be a table"),
        ({"guardduty": "yes"}, "guardrails.guardduty", "true or false"),
        ({"nope": 1}, "guardrails.nope", "unknown field"),
        ({"guardduty": False, "config": False}, "guardrails", "turns nothing on"),
        ({"config_rules": ["encrypted_volumes"]}, "guardrails.config_rules[0]", "not an AWS managed rule identifier"),
        ({"config_rules": ["ENCRYPTED VOLUMES"]}, "guardrails.config_rules[0]", "not an AWS managed rule identifier"),
        ({"config_rules": ["A" * 100]}, "guardrails.config_rules[0]", "not an AWS managed rule identifier"),
        ({"config_rules": ["ENCRYPTED_VOLUMES", "ENCRYPTED_VOLUMES"]}, "guardrails.config_rules", "twice"),
        ({"config_rules": "ENCRYPTED_VOLUMES"}, "guardrails.config_rules", "list of strings"),
        ({"config": False, "config_rules": ["ENCRYPTED_VOLUMES"]}, "guardrails.config_rules", "needs guardrails.config = true"),
        ({"config": False, "record_global_resources": True}, "guardrails.record_global_resources", "needs guardrails.config"),
        ({"budget": 5}, "guardrails.budget", "must be a table"),
        ({"budget": {**BUDGET, "extra": 1}}, "guardrails.budget.extra", "unknown field"),
        ({"budget": {"alert_emails": ["a@example.com"]}}, "guardrails.budget.monthly_limit_usd", "is required"),
        ({"budget": {**BUDGET, "monthly_limit_usd": 0}}, "guardrails.budget.monthly_limit_usd", "positive"),
        ({"budget": {**BUDGET, "monthly_limit_usd": -5}}, "guardrails.budget.monthly_limit_usd", "positive"),
        ({"budget": {**BUDGET, "monthly_limit_usd": "500"}}, "guardrails.budget.monthly_limit_usd", "positive"),
        ({"budget": {**BUDGET, "monthly_limit_usd": True}}, "guardrails.budget.monthly_limit_usd", "positive"),
        ({"budget": {"monthly_limit_usd": 5}}, "guardrails.budget.alert_emails", "is required"),
        ({"budget": {**BUDGET, "alert_emails": []}}, "guardrails.budget.alert_emails", "1 to 10"),
        ({"budget": {**BUDGET, "alert_emails": [f"a{i}@example.com" for i in range(11)]}}, "guardrails.budget.alert_emails", "1 to 10"),
        ({"budget": {**BUDGET, "alert_emails": ["platform"]}}, "guardrails.budget.alert_emails[0]", "not an e-mail address"),
        ({"budget": {**BUDGET, "alert_emails": ["a@example.com", "a b@example.com"]}}, "guardrails.budget.alert_emails[1]", "not an e-mail"),
        ({"budget": {**BUDGET, "alert_emails": ["a@example.com", "A@example.com"]}}, "guardrails.budget.alert_emails", "distinct"),
        ({"budget": {**BUDGET, "thresholds_percent": []}}, "guardrails.budget.thresholds_percent", "non-empty list"),
        ({"budget": {**BUDGET, "thresholds_percent": 50}}, "guardrails.budget.thresholds_percent", "non-empty list"),
        ({"budget": {**BUDGET, "thresholds_percent": [50, 0]}}, "guardrails.budget.thresholds_percent[1]", "above 0"),
        ({"budget": {**BUDGET, "thresholds_percent": [1001]}}, "guardrails.budget.thresholds_percent[0]", "at most 1000"),
        ({"budget": {**BUDGET, "thresholds_percent": ["50"]}}, "guardrails.budget.thresholds_percent[0]", "percentage"),
        ({"budget": {**BUDGET, "thresholds_percent": [50, 50.0]}}, "guardrails.budget.thresholds_percent", "distinct"),
        ({"budget": {**BUDGET, "thresholds_percent": list(range(1, 12))}}, "guardrails.budget.thresholds_percent", "at most 10"),
    ],
)
def test_bad_values_name_their_field(guardrails: Any, field: str, says: str) -> None:
    found = problems(guardrails)
    assert field in found, found
    assert says in found[field]


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"guardduty": 1, "config_rules": ["x"], "budget": {"monthly_limit_usd": 0, "alert_emails": ["nope"], "thresholds_percent": [0]}})
    assert {"guardrails.guardduty", "guardrails.config_rules[0]", "guardrails.budget.monthly_limit_usd",
            "guardrails.budget.alert_emails[0]", "guardrails.budget.thresholds_percent[0]"} <= set(found)


def test_the_cli_exits_2_naming_the_field(cli: Any, tmp_path: Path) -> None:
    text = (EXAMPLES / "basic.toml").read_text() + '\n[guardrails.budget]\nmonthly_limit_usd = -1\nalert_emails = ["platform@example.com"]\n'
    (tmp_path / "bad.toml").write_text(text)
    result = cli("validate", "--config", str(tmp_path / "bad.toml"))
    assert result.returncode == 2
    assert "guardrails.budget.monthly_limit_usd" in result.stdout + result.stderr


# --- the fragment ---------------------------------------------------------------------------------------


def test_the_fragment_adds_only_what_the_spec_turns_on() -> None:
    data = copy.deepcopy(BASE)
    data["guardrails"] = {"budget": BUDGET}
    ids = [s.id for s in topologies.build(topologies.from_dict(data, "spec.toml"))]  # graph.check runs here
    assert ids[-6:] == ["guardduty.detector", "config.bucket", "config.role", "config.recorder", "config.rules", "budget.monthly"]
    data["guardrails"] = {"guardduty": False, "config_rules": []}
    assert [s.id for s in aws_guardrails.guardrails(topologies.from_dict(data, "spec.toml"))] == ["config.bucket", "config.role", "config.recorder"]
    del data["guardrails"]
    assert aws_guardrails.guardrails(topologies.from_dict(data, "spec.toml")) == []


def test_the_guardrails_need_no_step_of_the_topology() -> None:
    data = copy.deepcopy(BASE)
    data["guardrails"] = {"budget": BUDGET}
    steps = aws_guardrails.guardrails(topologies.from_dict(data, "spec.toml"))
    own = {s.id for s in steps}
    assert all(set(s.needs) <= own and {r.step for r in s.reads()} <= own for s in steps)


# --- the policies ----------------------------------------------------------------------------------------


def test_the_delivery_bucket_policy_is_aws_documented_one_held_to_the_account() -> None:
    bucket = config_bucket_name("acme-basic", ACCOUNT, "us-east-1")
    assert bucket.startswith("acme-basic-config-") and len(bucket) <= 63
    assert config_bucket_name("acme-basic", ACCOUNT, "us-east-1") == bucket != config_bucket_name("acme-basic", ACCOUNT, "eu-west-1")
    statements = {s["Sid"]: s for s in config_bucket_policy(bucket, ACCOUNT)["Statement"]}
    for sid, action in (("AWSConfigBucketPermissionsCheck", "s3:GetBucketAcl"), ("AWSConfigBucketExistenceCheck", "s3:ListBucket")):
        assert statements[sid]["Action"] == action and statements[sid]["Resource"] == f"arn:aws:s3:::{bucket}"
        assert statements[sid]["Principal"] == {"Service": "config.amazonaws.com"}
        assert statements[sid]["Condition"] == {"StringEquals": {"AWS:SourceAccount": ACCOUNT}}
    delivery = statements["AWSConfigBucketDelivery"]
    assert delivery["Resource"] == f"arn:aws:s3:::{bucket}/AWSLogs/{ACCOUNT}/Config/*"
    assert delivery["Condition"] == {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "AWS:SourceAccount": ACCOUNT}}
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_config_role_is_for_config_of_this_account_writing_only_to_our_bucket() -> None:
    (trust,) = config_trust_policy(ACCOUNT)["Statement"]
    assert trust["Principal"] == {"Service": "config.amazonaws.com"} and trust["Condition"] == {"StringEquals": {"AWS:SourceAccount": ACCOUNT}}
    resources = [s["Resource"] for s in config_delivery_policy("b", ACCOUNT)["Statement"]]
    assert resources == [f"arn:aws:s3:::b/AWSLogs/{ACCOUNT}/Config/*", "arn:aws:s3:::b"]


# --- request shapes (Stubber) ------------------------------------------------------------------------------


class StubClients:
    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients = clients
        self.stats = CallStats()

    def __getitem__(self, cloud: str) -> Any:
        assert cloud == "aws"
        return self

    def client(self, service: str) -> Any:
        return self.clients[service]


class Harness:
    def __init__(self, spec: Any, *services: str) -> None:
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        self.clients = {s: session.client(s) for s in services}
        self.stubs = {s: Stubber(c) for s, c in self.clients.items()}
        clock = FakeClock(start=0.0)
        self.ctx = Context(
            spec=spec, clients=StubClients(self.clients),  # type: ignore[arg-type]
            retry=RetryPolicy(deadline_seconds=30, initial_seconds=1, max_seconds=2, clock=clock, sleep=clock.sleep, rng=random.Random(3), errors=error_rules()),
            poll=PollPolicy(initial_seconds=1, factor=2, max_seconds=4, timeout_seconds=60, clock=clock, sleep=clock.sleep),
            log=structlog.wrap_logger(CapturingLogger(), processors=[]),
            facts={"aws_account_id": ACCOUNT},
        )

    def expect(self, service: str, operation: str, response: dict[str, Any], params: dict[str, Any] | None = None) -> None:
        self.stubs[service].add_response(operation, response, params)

    def __enter__(self) -> Harness:  # noqa: PYI034
        for stub in self.stubs.values():
            stub.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        for stub in self.stubs.values():
            stub.deactivate()
        if exc[0] is None:
            for stub in self.stubs.values():
                stub.assert_no_pending_responses()


@pytest.fixture
def spec(no_real_sleep: None) -> Any:
    """The spec of the request-shape tests, whose waits and retries run on a fake clock."""
    data = copy.deepcopy(BASE)
    data["guardrails"] = {"budget": BUDGET}
    return topologies.from_dict(data, "spec.toml")


def tags_of(ctx: Context, step_id: str) -> dict[str, str]:
    return {"Owner": "platform-team", "CostCenter": "data-1234", "Name": ctx.name_for(step_id), "provision:deployment": "acme-basic", "provision:step": step_id}


def test_the_detector_is_created_enabled_tagged_and_idempotent(spec: Any) -> None:
    with Harness(spec, "guardduty") as h:
        step = GuardDutyDetector("guardduty.detector")
        h.expect("guardduty", "create_detector", {"DetectorId": "d" * 32}, {
            "Enable": True, "ClientToken": h.ctx.client_token("guardduty.detector"), "FindingPublishingFrequency": "FIFTEEN_MINUTES",
            "Tags": tags_of(h.ctx, "guardduty.detector"),
        })
        assert step.create(h.ctx) == {"detector_id": "d" * 32, "adopted": False, "status": "ENABLED"}


def test_a_detector_not_tagged_as_ours_is_adopted_and_never_deleted(spec: Any) -> None:
    with Harness(spec, "guardduty") as h:
        step = GuardDutyDetector("guardduty.detector")
        h.expect("guardduty", "list_detectors", {"DetectorIds": ["e" * 32]})
        h.expect("guardduty", "get_detector", {"ServiceRole": "r", "Status": "ENABLED", "Tags": {"team": "security"}}, {"DetectorId": "e" * 32})
        found = step.find(h.ctx)
        assert found == {"detector_id": "e" * 32, "adopted": True, "status": "ENABLED"}
        step.delete(h.ctx, found)  # no call at all: the Stubber would refuse one
        step.wait_deleted(h.ctx, found)


def test_our_recorder_records_everything_and_delivers_to_our_bucket(spec: Any) -> None:
    with Harness(spec, "config") as h:
        h.ctx.outputs.update({"config.role": {"role_arn": f"arn:aws:iam::{ACCOUNT}:role/acme-basic-config"}, "config.bucket": {"bucket": "b"}})
        step = ConfigRecorder("config.recorder", role="config.role", bucket="config.bucket")
        recorder = {"name": "acme-basic-config", "roleARN": f"arn:aws:iam::{ACCOUNT}:role/acme-basic-config",
                    "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": True}}
        h.expect("config", "put_configuration_recorder", {}, {"ConfigurationRecorder": recorder})
        out = step.create(h.ctx)
        h.expect("config", "put_configuration_recorder", {}, {"ConfigurationRecorder": recorder})
        h.expect("config", "describe_delivery_channels", {"DeliveryChannels": []})
        h.expect("config", "put_delivery_channel", {}, {"DeliveryChannel": {
            "name": "acme-basic-config", "s3BucketName": "b", "configSnapshotDeliveryProperties": {"deliveryFrequency": "TwentyFour_Hours"}}})
        h.expect("config", "start_configuration_recorder", {}, {"ConfigurationRecorderName": "acme-basic-config"})
        h.expect("config", "describe_configuration_recorder_status", {"ConfigurationRecordersStatus": [{"name": "acme-basic-config", "recording": True}]},
                 {"ConfigurationRecorderNames": ["acme-basic-config"]})
        assert step.wait_ready(h.ctx, out)["recording"] is True


def test_the_rules_are_aws_managed_named_after_the_deployment_and_tagged(spec: Any) -> None:
    with Harness(spec, "config") as h:
        step = ConfigRules("config.rules", recorder="config.recorder", identifiers=("ENCRYPTED_VOLUMES", "INCOMING_SSH_DISABLED"))
        for identifier, name in (("ENCRYPTED_VOLUMES", "acme-basic-encrypted-volumes"), ("INCOMING_SSH_DISABLED", "acme-basic-incoming-ssh-disabled")):
            h.expect("config", "put_config_rule", {}, {
                "ConfigRule": {"ConfigRuleName": name, "Description": ANY, "Source": {"Owner": "AWS", "SourceIdentifier": identifier}},
                "Tags": [{"Key": k, "Value": v} for k, v in tags_of(h.ctx, "config.rules").items()],
            })
        assert step.create(h.ctx) == {"rules": ["acme-basic-encrypted-volumes", "acme-basic-incoming-ssh-disabled"]}


def test_the_budget_is_a_monthly_cost_budget_with_an_email_alert_per_threshold(spec: Any) -> None:
    with Harness(spec, "budgets") as h:
        step = MonthlyBudget("budget.monthly", limit_usd=500, emails=("platform@example.com",), thresholds=(50, 80, 100, 120))
        alerts = [
            {"Notification": {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "ThresholdType": "PERCENTAGE", "Threshold": float(t)},
             "Subscribers": [{"SubscriptionType": "EMAIL", "Address": "platform@example.com"}]}
            for t in (50, 80, 100, 120)
        ]
        h.expect("budgets", "create_budget", {}, {
            "AccountId": ACCOUNT,
            "Budget": {"BudgetName": "acme-basic-monthly", "BudgetLimit": {"Amount": "500", "Unit": "USD"}, "TimeUnit": "MONTHLY", "BudgetType": "COST"},
            "NotificationsWithSubscribers": alerts,
            "ResourceTags": [{"Key": k, "Value": v} for k, v in tags_of(h.ctx, "budget.monthly").items()],
        })
        out = step.create(h.ctx)
        assert not step.needs_converge(h.ctx, out)
        assert step.wait_ready(h.ctx, out) == out  # nothing to converge: no call


def test_a_changed_budget_converges_in_place(spec: Any) -> None:
    with Harness(spec, "budgets") as h:
        step = MonthlyBudget("budget.monthly", limit_usd=750.5, emails=("a@example.com",), thresholds=(80, 100))
        found = {"budget_name": "acme-basic-monthly", "limit_usd": 500.0,
                 "notifications": [{"threshold": 50.0, "emails": ["a@example.com"]}, {"threshold": 80.0, "emails": ["a@example.com"]}]}
        assert step.needs_converge(h.ctx, found)
        names = {"AccountId": ACCOUNT, "BudgetName": "acme-basic-monthly"}
        h.expect("budgets", "update_budget", {}, {"AccountId": ACCOUNT, "NewBudget": {
            "BudgetName": "acme-basic-monthly", "BudgetLimit": {"Amount": "750.5", "Unit": "USD"}, "TimeUnit": "MONTHLY", "BudgetType": "COST"}})
        alert = {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "ThresholdType": "PERCENTAGE"}
        h.expect("budgets", "describe_notifications_for_budget", {"Notifications": [{**alert, "Threshold": 50.0}, {**alert, "Threshold": 80.0}]}, names)
        email = [{"SubscriptionType": "EMAIL", "Address": "a@example.com"}]
        h.expect("budgets", "describe_subscribers_for_notification", {"Subscribers": email}, {**names, "Notification": {**alert, "Threshold": 50.0}})
        h.expect("budgets", "describe_subscribers_for_notification", {"Subscribers": email}, {**names, "Notification": {**alert, "Threshold": 80.0}})
        h.expect("budgets", "delete_notification", {}, {**names, "Notification": {**alert, "Threshold": 50.0}})
        h.expect("budgets", "create_notification", {}, {**names, "Notification": {**alert, "Threshold": 100.0}, "Subscribers": email})
        out = step.wait_ready(h.ctx, found)
        assert out["limit_usd"] == 750.5 and [n["threshold"] for n in out["notifications"]] == [80.0, 100.0]


def test_the_budget_client_reaches_the_global_endpoint() -> None:
    """Budgets has one endpoint: botocore sends there whatever the deployment's region."""
    client = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="eu-west-1").client("budgets")
    assert client.meta.endpoint_url == "https://budgets.amazonaws.com"
