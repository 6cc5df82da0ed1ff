"""[guardrails] against the sandbox's AWS (clouds/aws/sandbox/guardrails.py), over HTTP with real boto3 clients.

Each fidelity test fails on plain moto 5.2.5 but one, which pins what moto already refuses as AWS does (one
recorder per region, a delivery channel only with a recorder, start only with a channel); the reset test checks
that the daemon's reset forgets every guardrail (their state lives on moto's backends). The step tests
run the guardrail steps through the real engine: create, a rerun that creates nothing, teardown that leaves
nothing of ours, and adoption of a detector and recorder that exist (left untouched, never deleted).
"""

from __future__ import annotations

import copy
import json
import random
import tomllib
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import structlog
from moto.budgets.models import budgets_backends
from moto.config.models import config_backends
from moto.guardduty.models import guardduty_backends
from sandbox_helpers import aws_client, client_error
from structlog.testing import CapturingLogger

from provision import topologies
from provision.clouds import error_rules
from provision.clouds.aws.clients import AwsClients
from provision.clouds.aws.sandbox import listing
from provision.clouds.aws.steps.awsconfig_delivery import config_bucket_name
from provision.orchestrator.clients import SANDBOX, CallStats, Clients, Target
from provision.orchestrator.engine import Engine
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import Context
from provision.orchestrator.wait import PollPolicy
from provision.sandbox import daemon
from provision.state.store import StateFile, Status
from provision.topologies import aws_guardrails

REGION = "us-east-1"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "basic.toml"
GUARDRAILS = {"budget": {"monthly_limit_usd": 500, "alert_emails": ["platform@example.com"]}}
RULES = 8


@pytest.fixture(autouse=True)
def fresh_guardrails(aws_url: str) -> None:
    """The guardrails are once per account and region: each test starts with none (other services' state
    is left alone, so tests of other modules sharing this process are not disturbed)."""
    for backends in (guardduty_backends, config_backends, budgets_backends):
        backends.reset()


@pytest.fixture(scope="module")
def gd(aws_url: str) -> Any:
    return aws_client("guardduty", aws_url)


@pytest.fixture(scope="module")
def config(aws_url: str) -> Any:
    return aws_client("config", aws_url)


@pytest.fixture(scope="module")
def s3(aws_url: str) -> Any:
    return aws_client("s3", aws_url)


@pytest.fixture(scope="module")
def iam(aws_url: str) -> Any:
    return aws_client("iam", aws_url)


@pytest.fixture(scope="module")
def budgets(aws_url: str) -> Any:
    return aws_client("budgets", aws_url)


def account(aws_url: str) -> str:
    return aws_client("sts", aws_url).get_caller_identity()["Account"]


# --- helpers -------------------------------------------------------------------------------------------


def spec_with(guardrails: dict[str, Any], name: str | None = None) -> Any:
    data = tomllib.loads(EXAMPLE.read_text())
    data["name"] = name or f"gr-{uuid.uuid4().hex[:8]}"  # buckets and roles are named after it
    data["guardrails"] = copy.deepcopy(guardrails)
    return topologies.from_dict(data, str(EXAMPLE))


_CLIENTS: dict[str, AwsClients] = {}


def _aws_clients(aws_url: str, stats: CallStats) -> AwsClients:
    """One boto3 session per server for the whole module (making clients is the slow part), counting into `stats`."""
    clients = _CLIENTS.get(aws_url)
    if clients is None:
        clients = _CLIENTS[aws_url] = AwsClients(region=REGION, target=Target(SANDBOX, {"aws": aws_url}), stats=stats)
    clients.stats = stats
    return clients


class Run:
    """The guardrail steps of a spec run by the real engine against the in-process sandbox, with a state
    file that persists across `up`s like a rerun's."""

    def __init__(self, aws_url: str, spec: Any, state_path: Path):
        self.aws_url, self.spec, self.path = aws_url, spec, state_path
        self.stats = CallStats()
        target = Target(SANDBOX, {"aws": aws_url})
        self.clients = Clients(target, {"aws": _aws_clients(aws_url, self.stats)}, self.stats)

    def engine(self) -> Engine:
        self.stats.calls.clear()  # each run's calls counted apart
        ctx = Context(
            spec=self.spec, clients=self.clients,
            retry=RetryPolicy(errors=error_rules(), deadline_seconds=10, initial_seconds=0.01, max_seconds=0.05, rng=random.Random(1)),
            poll=PollPolicy(initial_seconds=0.01, factor=1.5, max_seconds=0.05, timeout_seconds=10, visibility_seconds=0.1),
            log=structlog.wrap_logger(CapturingLogger(), processors=[]),
        )
        state = StateFile.load(self.path) if self.path.exists() else StateFile.new(
            self.path, deployment=self.spec.name, cloud="aws", target="sandbox", spec=self.spec.to_json(), spec_path=None,
        )
        return Engine(aws_guardrails.guardrails(self.spec), state, ctx, parallelism=1)

    def up(self) -> dict[str, Any]:
        return self.engine().up()

    def teardown(self) -> None:
        self.engine().teardown()

    def writes(self) -> list[tuple[str, str]]:
        reads = ("Describe", "Get", "List", "Head")
        return sorted(k for k in self.stats.calls if not k[1].startswith(reads))


def ours(found: dict[str, list[dict]], deployment: str) -> dict[str, int]:
    """How many items of each guardrail kind (and the bucket and role) the deployment left."""
    mine = {
        "guardduty_detector": [d for d in found["guardduty_detector"] if {"Key": "provision:deployment", "Value": deployment} in d["Tags"]],
        "config_recorder": [r for r in found["config_recorder"] if r["name"] == f"{deployment}-config"],
        "delivery_channel": [c for c in found["delivery_channel"] if c["name"] == f"{deployment}-config"],
        "config_rule": [r for r in found["config_rule"] if r["ConfigRuleName"].startswith(f"{deployment}-")],
        "budget": [b for b in found["budget"] if b["BudgetName"] == f"{deployment}-monthly"],
        "bucket": [b for b in found["bucket"] if b["Name"].startswith(f"{deployment}-config-")],
        "iam_role": [r for r in found["iam_role"] if r["RoleName"] == f"{deployment}-config"],
    }
    return {kind: len(items) for kind, items in mine.items()}


@cache
def _listing_clients(aws_url: str) -> listing.Clients:
    return listing.sandbox_clients(aws_url, REGION)


def inventory(aws_url: str) -> dict[str, list[dict]]:
    clients = _listing_clients(aws_url)
    return {name: kind.listing(clients) for name, kind in listing.KINDS.items() if name in (
        "guardduty_detector", "config_recorder", "delivery_channel", "config_rule", "budget", "bucket", "iam_role")}


def delivery_setup(aws_url: str, iam: Any, s3: Any, config: Any, *, role_policy: dict | None = None, bucket_policy: dict | None = None,
                   trust: str = "config.amazonaws.com") -> str:
    """A recorder (not started) whose role and bucket carry the given policies; returns the bucket."""
    suffix = uuid.uuid4().hex[:8]
    trust_doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": trust}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=f"cfg-{suffix}", AssumeRolePolicyDocument=json.dumps(trust_doc))["Role"]
    if role_policy is not None:
        iam.put_role_policy(RoleName=role["RoleName"], PolicyName="delivery", PolicyDocument=json.dumps(role_policy))
    bucket = f"cfg-{suffix}"
    s3.create_bucket(Bucket=bucket)
    if bucket_policy is not None:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(bucket_policy))
    config.put_configuration_recorder(ConfigurationRecorder={"name": "theirs", "roleARN": role["Arn"], "recordingGroup": {"allSupported": True}})
    return bucket


def put_object_policy(resource: str, principal: Any = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": resource}
    if principal is not None:
        statement["Principal"] = principal
    return {"Version": "2012-10-17", "Statement": [statement]}


# --- fidelity: GuardDuty ---------------------------------------------------------------------------------


def test_a_second_detector_in_a_region_is_refused(gd: Any) -> None:
    gd.create_detector(Enable=True)
    error = client_error(gd.create_detector, Enable=True)
    assert error == {"Code": "BadRequestException", "Message": "The request is rejected because a detector already exists for the current account."}
    assert len(gd.list_detectors()["DetectorIds"]) == 1
    # Another region has a detector of its own.
    other = aws_client("guardduty", gd.meta.endpoint_url, region="eu-west-1")
    other.create_detector(Enable=True)


def test_deleting_an_unknown_detector_is_refused(gd: Any) -> None:
    assert client_error(gd.delete_detector, DetectorId="0" * 32)["Code"] == "BadRequestException"


# --- fidelity: AWS Config ----------------------------------------------------------------------------------


def test_a_managed_rule_needs_a_recorder(config: Any) -> None:
    rule = {"ConfigRuleName": "r", "Source": {"Owner": "AWS", "SourceIdentifier": "ENCRYPTED_VOLUMES"}}
    error = client_error(config.put_config_rule, ConfigRule=rule)
    assert error["Code"] == "NoAvailableConfigurationRecorderException"
    assert error["Message"] == "You must create a configuration recorder before you can create or update a Config rule."


def test_what_moto_already_refuses_as_aws_does(aws_url: str, config: Any, iam: Any, s3: Any) -> None:
    """Pinned, not patched: these pass on plain moto too."""
    channel = {"name": "c", "s3BucketName": "any"}
    assert client_error(config.put_delivery_channel, DeliveryChannel=channel)["Code"] == "NoAvailableConfigurationRecorderException"
    delivery_setup(aws_url, iam, s3, config)
    error = client_error(config.put_configuration_recorder, ConfigurationRecorder={"name": "second", "roleARN": "arn:aws:iam::123456789012:role/x"})
    assert error["Code"] == "MaxNumberOfConfigurationRecordersExceededException"
    assert error["Message"] == "Failed to put configuration recorder 'second' because the maximum number of configuration recorders: 1 is reached."
    assert client_error(config.start_configuration_recorder, ConfigurationRecorderName="theirs")["Code"] == "NoAvailableDeliveryChannelException"


def test_the_delivery_bucket_must_exist(aws_url: str, config: Any, iam: Any, s3: Any) -> None:
    delivery_setup(aws_url, iam, s3, config)
    error = client_error(config.put_delivery_channel, DeliveryChannel={"name": "c", "s3BucketName": f"missing-{uuid.uuid4().hex[:8]}"})
    assert error["Code"] == "NoSuchBucketException"


def test_config_must_be_able_to_write_to_the_bucket(aws_url: str, config: Any, iam: Any, s3: Any) -> None:
    bucket = delivery_setup(aws_url, iam, s3, config)  # neither the role nor the bucket lets Config write
    error = client_error(config.put_delivery_channel, DeliveryChannel={"name": "c", "s3BucketName": bucket})
    assert error == {
        "Code": "InsufficientDeliveryPolicyException",
        "Message": f"Insufficient delivery policy to s3 bucket: {bucket}, unable to write to bucket, provided s3 key prefix is 'null'.",
    }


def test_a_bucket_policy_for_the_config_principal_lets_it_deliver(aws_url: str, config: Any, iam: Any, s3: Any) -> None:
    me = account(aws_url)
    suffix = uuid.uuid4().hex[:8]
    policy = put_object_policy(f"arn:aws:s3:::cfg-{suffix}/AWSLogs/{me}/Config/*", {"Service": "config.amazonaws.com"})
    wrong = put_object_policy(f"arn:aws:s3:::cfg-{suffix}/elsewhere/*", {"Service": "config.amazonaws.com"})
    bucket = delivery_setup(aws_url, iam, s3, config, bucket_policy=wrong)
    assert client_error(config.put_delivery_channel, DeliveryChannel={"name": "c", "s3BucketName": bucket})["Code"] == "InsufficientDeliveryPolicyException"
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy).replace(f"cfg-{suffix}", bucket))
    config.put_delivery_channel(DeliveryChannel={"name": "c", "s3BucketName": bucket})


def test_the_role_must_trust_config_and_may_grant_the_writes(aws_url: str, config: Any, iam: Any, s3: Any) -> None:
    grant = put_object_policy("arn:aws:s3:::*")
    bucket = delivery_setup(aws_url, iam, s3, config, role_policy=grant, trust="ec2.amazonaws.com")
    error = client_error(config.put_delivery_channel, DeliveryChannel={"name": "c", "s3BucketName": bucket})
    assert error["Code"] == "InsufficientDeliveryPolicyException" and "unable to assume role" in error["Message"]
    config_backends.reset()
    bucket = delivery_setup(aws_url, iam, s3, config, role_policy=grant)
    config.put_delivery_channel(DeliveryChannel={"name": "c", "s3BucketName": bucket})


# --- fidelity: IAM and Budgets -------------------------------------------------------------------------------


def test_aws_managed_policies_can_be_attached(iam: Any) -> None:
    name = f"r-{uuid.uuid4().hex[:8]}"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    arn = "arn:aws:iam::aws:policy/service-role/AWS_ConfigRole"
    iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]] == [arn]
    # The path is part of the ARN: a wrong one is still refused.
    assert client_error(iam.attach_role_policy, RoleName=name, PolicyArn="arn:aws:iam::aws:policy/AWS_ConfigRole")["Code"] == "NoSuchEntity"
    iam.detach_role_policy(RoleName=name, PolicyArn=arn)
    iam.delete_role(RoleName=name)


def test_budgets_keep_tags_update_and_list_subscribers(aws_url: str, budgets: Any) -> None:
    me, name = account(aws_url), f"b-{uuid.uuid4().hex[:8]}"
    alert = {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "Threshold": 80.0, "ThresholdType": "PERCENTAGE"}
    subscribers = [{"SubscriptionType": "EMAIL", "Address": "a@example.com"}]
    budgets.create_budget(
        AccountId=me, Budget={"BudgetName": name, "BudgetLimit": {"Amount": "10", "Unit": "USD"}, "TimeUnit": "MONTHLY", "BudgetType": "COST"},
        NotificationsWithSubscribers=[{"Notification": alert, "Subscribers": subscribers}], ResourceTags=[{"Key": "k", "Value": "v"}],
    )
    assert budgets.list_tags_for_resource(ResourceARN=f"arn:aws:budgets::{me}:budget/{name}")["ResourceTags"] == [{"Key": "k", "Value": "v"}]
    budgets.update_budget(AccountId=me, NewBudget={"BudgetName": name, "BudgetLimit": {"Amount": "20", "Unit": "USD"}, "TimeUnit": "MONTHLY", "BudgetType": "COST"})
    assert budgets.describe_budget(AccountId=me, BudgetName=name)["Budget"]["BudgetLimit"]["Amount"] == "20"
    assert budgets.describe_subscribers_for_notification(AccountId=me, BudgetName=name, Notification=alert)["Subscribers"] == subscribers
    assert client_error(budgets.update_budget, AccountId=me, NewBudget={"BudgetName": "nope", "BudgetLimit": {"Amount": "1", "Unit": "USD"},
                                                                         "TimeUnit": "MONTHLY", "BudgetType": "COST"})["Code"] == "NotFoundException"


def test_the_sandbox_reset_forgets_the_guardrails(sandbox: Any) -> None:
    """Through the daemon every test uses: POST /_sandbox/reset also clears detectors, recorders, rules and budgets."""
    url = sandbox.aws_endpoint_url
    gd, config, budgets = (aws_client(s, url) for s in ("guardduty", "config", "budgets"))
    me = account(url)
    gd.create_detector(Enable=True)
    config.put_configuration_recorder(ConfigurationRecorder={"name": "r", "roleARN": f"arn:aws:iam::{me}:role/x"})
    config.put_config_rule(ConfigRule={"ConfigRuleName": "x", "Source": {"Owner": "AWS", "SourceIdentifier": "ENCRYPTED_VOLUMES"}})
    budgets.create_budget(AccountId=me, Budget={"BudgetName": "b", "BudgetLimit": {"Amount": "1", "Unit": "USD"}, "TimeUnit": "MONTHLY", "BudgetType": "COST"})
    daemon.request(sandbox.databricks_host, "/_sandbox/reset", "POST", {})
    assert gd.list_detectors()["DetectorIds"] == []
    assert config.describe_configuration_recorders()["ConfigurationRecorders"] == []
    assert config.describe_config_rules()["ConfigRules"] == []
    assert budgets.describe_budgets(AccountId=me).get("Budgets", []) == []


# --- the steps -------------------------------------------------------------------------------------------


def test_guardrails_create_rerun_and_teardown(aws_url: str, tmp_path: Path, config: Any) -> None:
    spec = spec_with(GUARDRAILS)
    run = Run(aws_url, spec, tmp_path / "state.json")
    out = run.up()
    left = ours(inventory(aws_url), spec.name)
    assert left == {"guardduty_detector": 1, "config_recorder": 1, "delivery_channel": 1, "config_rule": RULES, "budget": 1, "bucket": 1, "iam_role": 1}
    assert out["guardduty.detector"]["adopted"] is False and out["config.recorder"]["adopted"] is False
    status = config.describe_configuration_recorder_status()["ConfigurationRecordersStatus"]
    assert [s["recording"] for s in status] == [True]
    assert out["config.bucket"]["bucket"] == config_bucket_name(spec.name, account(aws_url), REGION)
    assert len(out["budget.monthly"]["notifications"]) == 4

    run.up()
    assert run.writes() == [], "a rerun with nothing changed must create or change nothing"

    run.teardown()
    assert set(ours(inventory(aws_url), spec.name).values()) == {0}


def test_an_existing_detector_and_recorder_are_adopted_and_left_alone(aws_url: str, tmp_path: Path, gd: Any, config: Any, iam: Any, s3: Any) -> None:
    theirs = gd.create_detector(Enable=False, Tags={"team": "security"})["DetectorId"]
    bucket = delivery_setup(aws_url, iam, s3, config, role_policy=put_object_policy("arn:aws:s3:::*"))
    config.put_delivery_channel(DeliveryChannel={"name": "their-channel", "s3BucketName": bucket})
    def seen() -> tuple[Any, ...]:
        detector = gd.get_detector(DetectorId=theirs)
        return (
            detector["Status"], detector["Tags"], config.describe_configuration_recorders()["ConfigurationRecorders"],
            config.describe_configuration_recorder_status()["ConfigurationRecordersStatus"], config.describe_delivery_channels()["DeliveryChannels"],
        )

    before = seen()

    spec = spec_with({"guardduty": True, "config": True})
    run = Run(aws_url, spec, tmp_path / "state.json")
    out = run.up()
    assert out["guardduty.detector"] == {"detector_id": theirs, "adopted": True, "status": "DISABLED"}
    assert out["config.recorder"]["adopted"] is True and out["config.recorder"]["recorder_name"] == "theirs"
    assert out["config.bucket"]["adopted"] is True and out["config.role"]["adopted"] is True
    left = ours(inventory(aws_url), spec.name)
    assert left["bucket"] == 0 and left["iam_role"] == 0 and left["config_rule"] == RULES  # the rules are ours on their recorder

    run.teardown()
    after = seen()
    assert after == before, "an adopted detector or recorder was modified"
    assert set(ours(inventory(aws_url), spec.name).values()) == {0}


def test_a_rerun_converges_the_budget_and_the_rules(aws_url: str, tmp_path: Path, budgets: Any, config: Any) -> None:
    name = f"gr-{uuid.uuid4().hex[:8]}"
    first = {"guardduty": False, "config_rules": ["ENCRYPTED_VOLUMES", "VPC_FLOW_LOGS_ENABLED"], **GUARDRAILS}
    state = tmp_path / "state.json"
    Run(aws_url, spec_with(first, name), state).up()
    second = {"guardduty": False, "config_rules": ["ENCRYPTED_VOLUMES", "INCOMING_SSH_DISABLED"],
              "budget": {"monthly_limit_usd": 750, "alert_emails": ["a@example.com", "b@example.com"], "thresholds_percent": [80, 100]}}
    run = Run(aws_url, spec_with(second, name), state)
    out = run.up()
    me = account(aws_url)
    assert budgets.describe_budget(AccountId=me, BudgetName=f"{name}-monthly")["Budget"]["BudgetLimit"]["Amount"] == "750"
    alerts = budgets.describe_notifications_for_budget(AccountId=me, BudgetName=f"{name}-monthly")["Notifications"]
    assert sorted(a["Threshold"] for a in alerts) == [80.0, 100.0]
    subscribers = budgets.describe_subscribers_for_notification(AccountId=me, BudgetName=f"{name}-monthly", Notification=alerts[0])["Subscribers"]
    assert sorted(s["Address"] for s in subscribers) == ["a@example.com", "b@example.com"]
    assert out["config.rules"]["rules"] == [f"{name}-encrypted-volumes", f"{name}-incoming-ssh-disabled"]
    assert sorted(r["ConfigRuleName"] for r in config.describe_config_rules()["ConfigRules"]) == out["config.rules"]["rules"]
    run.teardown()
    assert set(ours(inventory(aws_url), name).values()) == {0}


def test_a_detector_created_but_not_checkpointed_is_recognised_as_ours(aws_url: str, tmp_path: Path, gd: Any) -> None:
    """A crash between create and checkpoint (the record says a create was attempted, with no outputs): the
    rerun takes the detector as ours, not as adopted, and teardown deletes it."""
    spec = spec_with({"guardduty": True, "config": False})
    tags = {"provision:deployment": spec.name, "provision:step": "guardduty.detector", "Name": f"{spec.name}-guardduty-detector"}
    made = gd.create_detector(Enable=True, Tags=tags)["DetectorId"]
    run = Run(aws_url, spec, tmp_path / "state.json")
    state = run.engine().state
    state.update("guardduty.detector", status=Status.IN_PROGRESS, create_attempted=True, attempts=1)
    state.save()
    assert run.up()["guardduty.detector"] == {"detector_id": made, "adopted": False, "status": "ENABLED"}
    run.teardown()
    assert gd.list_detectors()["DetectorIds"] == []
