"""[network_security] without a cloud: spec errors naming their fields, the NACL entries and endpoint policies as
data, the graph each topology gets, and the exact requests of the steps (botocore's Stubber, nothing on the wire)."""

from __future__ import annotations

import copy
import json
import random
import tomllib
from collections.abc import Iterator
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
from provision.clouds.aws.buckets import DATABRICKS_BUCKETS
from provision.clouds.aws.endpoint_policies import (
    FULL_ACCESS,
    MAX_POLICY_CHARS,
    S3GatewayPolicy,
    StsPolicy,
    compact,
    digest,
    kinesis_policy,
    s3_gateway_policy,
    same,
    sts_policy,
)
from provision.clouds.aws.errors import ERRORS
from provision.clouds.aws.spec import DATABRICKS_AWS_REGIONS
from provision.clouds.aws.spec_netsec import RETENTION_DAYS
from provision.clouds.aws.steps.endpoints import GatewayEndpoint, InterfaceEndpoint
from provision.clouds.aws.steps.flowlogs import (
    FlowLog,
    LogGroup,
    delivery_policy,
    trust_policy,
)
from provision.clouds.aws.steps.nacl import (
    Entry,
    NetworkAcl,
    databricks_entries,
    live_entries,
)
from provision.clouds.aws.steps.network import WORKSPACE_SG_RULES
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.errors import ResourceFailed, SpecError
from provision.orchestrator.clients import CallStats
from provision.orchestrator.retry import IAM_PROPAGATION, ErrorInfo, RetryPolicy
from provision.orchestrator.step import TAG_DEPLOYMENT, TAG_STEP, Context, Ref
from provision.orchestrator.wait import PollPolicy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BASIC = tomllib.loads((EXAMPLES / "basic.toml").read_text())
ACCOUNT = "123456789012"
VPC_CIDR = "10.40.0.0/16"


def spec_data(topology: str = "basic", **section: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASIC if topology == "basic" else tomllib.loads((EXAMPLES / f"{topology}.toml").read_text()))
    data["network_security"] = section
    return data


def problems(data: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(SpecError) as info:
        topologies.from_dict(data)
    found: dict[str, list[str]] = {}
    for p in info.value.problems:
        found.setdefault(p.field, []).append(p.reason)
    return found


def existing_vpc(**section: Any) -> dict[str, Any]:
    data = spec_data(**section)
    del data["network"]
    data["existing"] = {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                        "security_group_id": "sg-0123456789abcdef0"}
    return data


# spec ----------------------------------------------------------------------------------------------------


def test_absent_section_is_none_and_empty_section_is_the_secure_defaults() -> None:
    assert topologies.from_dict(copy.deepcopy(BASIC)).network_security is None
    ns = topologies.from_dict(spec_data()).network_security
    assert (ns.flow_logs, ns.flow_log_retention_days, ns.flow_log_traffic, ns.nacls, ns.endpoint_policies, ns.s3_buckets) == (
        True, 30, "ALL", True, True, (),
    )


@pytest.mark.parametrize(
    ("section", "field", "fragment"),
    [
        ({"flow_log_retention_days": 45}, "network_security.flow_log_retention_days", "not a CloudWatch Logs retention period"),
        ({"flow_log_retention_days": "30"}, "network_security.flow_log_retention_days", "must be an integer"),
        ({"flow_log_traffic": "all"}, "network_security.flow_log_traffic", "ALL, ACCEPT, REJECT"),
        ({"flow_logs": "yes"}, "network_security.flow_logs", "true or false"),
        ({"nacls": 1}, "network_security.nacls", "true or false"),
        ({"endpoint_policies": None}, "network_security.endpoint_policies", "true or false"),
        ({"s3_buckets": "data"}, "network_security.s3_buckets", "list of strings"),
        ({"s3_buckets": ["Data_Lake"]}, "network_security.s3_buckets[0]", "lowercase letters"),
        ({"s3_buckets": ["ok-bucket", "192.168.1.1"]}, "network_security.s3_buckets[1]", "IP address"),
        ({"s3_buckets": ["a-data", "a-data"]}, "network_security.s3_buckets", "distinct"),
        ({"endpoint_policies": False, "s3_buckets": ["a-data"]}, "network_security.s3_buckets", "no effect"),
        ({"flow_log": True}, "network_security.flow_log", "unknown field"),
    ],
)
def test_bad_values_name_their_field(section: dict[str, Any], field: str, fragment: str) -> None:
    found = problems(spec_data(**section))
    assert field in found, found
    assert any(fragment in reason for reason in found[field]), found[field]


def test_a_section_that_is_not_a_table_is_refused() -> None:
    data = copy.deepcopy(BASIC)
    data["network_security"] = "on"
    assert "network_security" in problems(data)


def test_every_retention_value_cloudwatch_allows_is_accepted() -> None:
    for days in (RETENTION_DAYS[0], 30, RETENTION_DAYS[-1]):
        assert topologies.from_dict(spec_data(flow_log_retention_days=days)).network_security.flow_log_retention_days == days


def test_existing_vpc_allows_flow_logs_but_refuses_nacls_policies_and_buckets() -> None:
    ns = topologies.from_dict(existing_vpc()).network_security
    assert (ns.flow_logs, ns.nacls, ns.endpoint_policies) == (True, False, False)
    found = problems(existing_vpc(nacls=True, endpoint_policies=True, s3_buckets=["a-data"]))
    for key in ("nacls", "endpoint_policies", "s3_buckets"):
        assert any("existing.vpc_id" in reason for reason in found[f"network_security.{key}"])


def test_a_region_without_known_databricks_buckets_refuses_endpoint_policies() -> None:
    data = spec_data()
    data["region"] = "eu-north-1"
    assert any("not known for region eu-north-1" in r for r in problems(data)["network_security.endpoint_policies"])
    data["network_security"] = {"endpoint_policies": False}
    assert topologies.from_dict(data).network_security.endpoint_policies is False


def test_the_s3_policy_must_fit_aws_limit() -> None:
    many = [f"bucket-{i:03d}-{'x' * 40}" for i in range(150)]
    found = problems(spec_data(s3_buckets=many))
    assert any(f"AWS allows {MAX_POLICY_CHARS}" in r for r in found["network_security.s3_buckets"])
    assert topologies.from_dict(spec_data(s3_buckets=many[:40])).network_security.s3_buckets == tuple(many[:40])


def test_hub_spoke_does_not_read_the_section() -> None:
    data = tomllib.loads((EXAMPLES / "hub-spoke.toml").read_text())
    data["network_security"] = {}
    assert "network_security" in problems(data)


# NACL entries and policies as data ---------------------------------------------------------------------


def test_nacl_entries_are_exactly_what_databricks_requires() -> None:
    assert databricks_entries(VPC_CIDR) == (
        Entry(100, False, "-1", "0.0.0.0/0"),
        Entry(100, True, "-1", VPC_CIDR),
        Entry(110, True, "6", "0.0.0.0/0", (443, 443)),
        Entry(120, True, "6", "0.0.0.0/0", (3306, 3306)),
        Entry(130, True, "6", "0.0.0.0/0", (5432, 5432)),
        Entry(140, True, "6", "0.0.0.0/0", (6666, 6666)),
        Entry(150, True, "6", "0.0.0.0/0", (2443, 2443)),
        Entry(160, True, "6", "0.0.0.0/0", (8443, 8451)),
    )


def test_nacl_never_blocks_what_the_workspace_security_group_allows_out() -> None:
    allowed = {(e.ports) for e in databricks_entries(VPC_CIDR) if e.egress and e.cidr == "0.0.0.0/0"}
    for direction, protocol, low, high, peer in WORKSPACE_SG_RULES:
        if direction == "egress" and peer == "0.0.0.0/0":
            assert protocol == "tcp" and (low, high) in allowed, (low, high)


def test_live_entries_skip_the_final_rule_and_read_protocol_names_as_numbers() -> None:
    acl = {"Entries": [
        {"RuleNumber": 32767, "Egress": True, "Protocol": "-1", "RuleAction": "deny", "CidrBlock": "0.0.0.0/0"},
        {"RuleNumber": 110, "Egress": True, "Protocol": "tcp", "RuleAction": "allow", "CidrBlock": "0.0.0.0/0", "PortRange": {"From": 443, "To": 443}},
        {"RuleNumber": 100, "Egress": False, "Protocol": "-1", "RuleAction": "allow", "CidrBlock": "0.0.0.0/0"},
    ]}
    assert live_entries(acl) == (Entry(100, False, "-1", "0.0.0.0/0"), Entry(110, True, "6", "0.0.0.0/0", (443, 443)))


def test_s3_gateway_policy_follows_sra() -> None:
    policy = s3_gateway_policy("us-east-1", "acme-root", ("a-data", "b-data"), ACCOUNT)
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert list(by_sid) == ["WorkspaceRootBucket", "DatabricksArtifacts", "DatabricksSystemTables", "DatabricksSampleData", "DatabricksLogs", "UserBuckets"]
    assert by_sid["WorkspaceRootBucket"]["Resource"] == ["arn:aws:s3:::acme-root", "arn:aws:s3:::acme-root/*"]
    assert by_sid["WorkspaceRootBucket"]["Condition"] == {"StringEquals": {"aws:PrincipalAccount": DATABRICKS_AWS_ACCOUNT_ID}}
    assert by_sid["DatabricksArtifacts"]["Condition"] == {"StringEquals": {"aws:ResourceAccount": DATABRICKS_AWS_ACCOUNT_ID}}
    assert "arn:aws:s3:::databricks-prod-artifacts-us-east-1/*" in by_sid["DatabricksArtifacts"]["Resource"]
    assert by_sid["DatabricksSystemTables"]["Resource"][0] == "arn:aws:s3:::system-tables-prod-us-east-1-uc-metastore-bucket"
    assert by_sid["DatabricksSampleData"]["Resource"][0] == "arn:aws:s3:::databricks-datasets-virginia"
    assert by_sid["DatabricksLogs"]["Action"] == ["s3:PutObject", "s3:ListBucket", "s3:GetBucketLocation"]
    assert by_sid["UserBuckets"]["Resource"] == ["arn:aws:s3:::a-data", "arn:aws:s3:::a-data/*", "arn:aws:s3:::b-data", "arn:aws:s3:::b-data/*"]
    # Principals and buckets of this account (SRA's catalog statement): a listed bucket name that someone
    # re-creates in another account is not reachable through the endpoint.
    assert by_sid["UserBuckets"]["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT, "aws:ResourceAccount": ACCOUNT}}
    # Every S3 allow is scoped to named buckets and an account: nothing is open to any bucket.
    assert all(s["Condition"] and "*" not in json.dumps(s["Resource"]).replace("/*", "") for s in policy["Statement"])
    assert "UserBuckets" not in {s["Sid"] for s in s3_gateway_policy("us-east-1", "acme-root", (), ACCOUNT)["Statement"]}


def test_regional_buckets_cover_every_region_but_the_ones_no_source_lists() -> None:
    assert sorted(DATABRICKS_AWS_REGIONS - set(DATABRICKS_BUCKETS)) == ["ap-northeast-3", "eu-central-2", "eu-north-1"]
    oregon = {s["Sid"]: s for s in s3_gateway_policy("us-west-2", "r", (), ACCOUNT)["Statement"]}["DatabricksArtifacts"]
    assert "arn:aws:s3:::databricks-update-oregon" in oregon["Resource"]
    with pytest.raises(ValueError, match="eu-north-1"):
        s3_gateway_policy("eu-north-1", "r", (), ACCOUNT)


def test_sts_and_kinesis_policies_follow_sra() -> None:
    sts = sts_policy(ACCOUNT)["Statement"]
    assert sts[0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert "sts:DecodeAuthorizationMessage" in sts[0]["Action"]
    assert sts[1]["Principal"]["AWS"] == [
        f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:user/databricks-datasets-readonly-user-prod", f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root",
    ]
    assert sts[1]["Action"] == ["sts:AssumeRole", "sts:GetSessionToken", "sts:TagSession"]
    (kinesis,) = kinesis_policy("eu-west-1")["Statement"]
    assert kinesis["Resource"] == f"arn:aws:kinesis:eu-west-1:{DATABRICKS_AWS_ACCOUNT_ID}:stream/*"
    assert kinesis["Action"] == ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStream"]


def test_policies_compare_as_parsed_json() -> None:
    policy = sts_policy(ACCOUNT)
    assert same(json.dumps(policy, indent=2), policy) and same(compact(policy), json.dumps(policy))
    assert digest(json.dumps(policy, indent=4)) == digest(policy) != digest(FULL_ACCESS)
    assert not same(FULL_ACCESS, policy)


def test_flow_log_role_is_least_privilege() -> None:
    (trust,) = trust_policy(ACCOUNT, "us-east-1")["Statement"]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc-flow-log/*"},
    }
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/provision/acme/vpc-flow-logs"
    (allow,) = delivery_policy(arn)["Statement"]
    assert allow["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"]
    assert allow["Resource"] == [arn, f"{arn}:*"]


def test_the_classifier_retries_a_flow_log_role_that_has_not_propagated() -> None:
    # How CreateFlowLogs refuses a new role (terraform-provider-aws retries exactly this on aws_flow_log).
    error = ErrorInfo("InvalidParameter", f"Unable to assume given IAM role: 'arn:aws:iam::{ACCOUNT}:role/acme-flowlogs'", 400)
    assert ERRORS.transient(error) == IAM_PROPAGATION


# graphs ---------------------------------------------------------------------------------------------------


def steps_of(data: dict[str, Any]) -> dict[str, Any]:
    return {s.id: s for s in topologies.build(topologies.from_dict(data))}


def test_without_the_section_the_graph_is_unchanged() -> None:
    steps = steps_of(copy.deepcopy(BASIC))
    assert not {"logs.flowlogs", "iam.flowlogs", "flowlogs.vpc", "nacl.private"} & set(steps)
    assert all(steps[e].policy is None for e in ("vpce.s3", "vpce.sts", "vpce.kinesis"))


@pytest.mark.parametrize("topology", ["basic", "privatelink"])
def test_the_section_adds_flow_logs_nacl_and_policies(topology: str) -> None:
    steps = steps_of(spec_data(topology, s3_buckets=["a-data"]))
    assert steps["flowlogs.vpc"].needs == ("vpc", "logs.flowlogs", "iam.flowlogs")
    assert steps["nacl.private"].needs == ("vpc", "subnet.private.0", "subnet.private.1")
    assert "nacl.private" in steps["dbx.network"].needs
    s3 = steps["vpce.s3"]
    assert s3.policy == S3GatewayPolicy(Ref("s3.root", "bucket"), ("a-data",)) and "s3.root" in s3.needs
    assert Ref("s3.root", "bucket") in s3.reads()
    assert steps["vpce.sts"].policy == StsPolicy()
    assert steps["vpce.kinesis"].policy == kinesis_policy("us-east-1")


def test_policies_off_converge_back_to_full_access_and_existing_vpc_gets_flow_logs_only() -> None:
    steps = steps_of(spec_data(endpoint_policies=False, nacls=False, flow_logs=False))
    assert all(steps[e].policy == FULL_ACCESS for e in ("vpce.s3", "vpce.sts", "vpce.kinesis"))
    assert not {"nacl.private", "flowlogs.vpc"} & set(steps)
    steps = steps_of(existing_vpc())
    assert {"logs.flowlogs", "iam.flowlogs", "flowlogs.vpc"} <= set(steps) and "nacl.private" not in steps


# request shapes (Stubber) -----------------------------------------------------------------------------------


class StubClients:
    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients, self.stats = clients, CallStats()

    def __getitem__(self, cloud: str) -> Any:
        assert cloud == "aws"
        return self

    def client(self, service: str) -> Any:
        assert service in self.clients, f"unexpected AWS service {service}"
        return self.clients[service]


class Harness:
    def __init__(self, spec: Any, clients: dict[str, Any]) -> None:
        self.clients = clients
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        clock = FakeClock(start=0.0)
        self.ctx = Context(
            spec=spec, clients=StubClients(self.clients),  # type: ignore[arg-type]
            retry=RetryPolicy(deadline_seconds=30, initial_seconds=1, max_seconds=2, clock=clock, sleep=clock.sleep, rng=random.Random(3), errors=error_rules()),
            poll=PollPolicy(initial_seconds=1, factor=2, max_seconds=4, timeout_seconds=60, clock=clock, sleep=clock.sleep),
            log=structlog.wrap_logger(CapturingLogger(), processors=[]),
            facts={"aws_account_id": ACCOUNT},
        )

    @property
    def ec2(self) -> Stubber:
        return self.stubs["ec2"]

    @property
    def logs(self) -> Stubber:
        return self.stubs["logs"]


pytestmark = pytest.mark.usefixtures("no_real_sleep")


@pytest.fixture(scope="module")
def clients() -> dict[str, Any]:
    # Made once: a boto3 client takes a good part of a second to build; each test stubs them afresh.
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    return {name: session.client(name) for name in ("ec2", "logs")}


@pytest.fixture(scope="module")
def basic_spec() -> Any:
    return topologies.from_dict(spec_data())


@pytest.fixture
def h(clients: dict[str, Any], basic_spec: Any) -> Iterator[Harness]:
    harness = Harness(basic_spec, clients)
    for stub in harness.stubs.values():
        stub.activate()
    yield harness
    for stub in harness.stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def owner_tags(step_id: str) -> list[dict[str, str]]:
    return [
        {"Key": "Owner", "Value": "platform-team"}, {"Key": "CostCenter", "Value": "data-1234"},
        {"Key": "Name", "Value": f"acme-basic-{step_id.replace('.', '-')}"}, {"Key": TAG_DEPLOYMENT, "Value": "acme-basic"}, {"Key": TAG_STEP, "Value": step_id},
    ]


def test_gateway_endpoint_sends_its_policy_on_create(h: Harness) -> None:
    step = GatewayEndpoint("vpce.s3", vpc="vpc", service="s3", route_tables=["rt.private.0"], policy=S3GatewayPolicy(Ref("s3.root", "bucket")))
    h.ctx.outputs.update({"vpc": {"vpc_id": "vpc-0abc"}, "rt.private.0": {"route_table_id": "rtb-1"}, "s3.root": {"bucket": "acme-root"}})
    wanted = s3_gateway_policy("us-east-1", "acme-root", (), ACCOUNT)
    h.ec2.add_response(
        "create_vpc_endpoint", {"VpcEndpoint": {"VpcEndpointId": "vpce-1", "ServiceName": "com.amazonaws.us-east-1.s3", "PolicyDocument": compact(wanted)}},
        {"VpcEndpointType": "Gateway", "VpcId": "vpc-0abc", "ServiceName": "com.amazonaws.us-east-1.s3", "RouteTableIds": ["rtb-1"],
         "PolicyDocument": compact(wanted), "ClientToken": ANY, "TagSpecifications": [{"ResourceType": "vpc-endpoint", "Tags": owner_tags("vpce.s3")}]},
    )
    out = step.create(h.ctx)
    assert out == {"vpc_endpoint_id": "vpce-1", "service_name": "com.amazonaws.us-east-1.s3", "policy_digest": digest(wanted)}
    assert not step.needs_converge(h.ctx, out)
    assert step.needs_converge(h.ctx, {**out, "policy_digest": digest(FULL_ACCESS)})


def interface_described(policy: Any) -> dict[str, Any]:
    return {"VpcEndpoints": [{"VpcEndpointId": "vpce-2", "ServiceName": "com.amazonaws.us-east-1.sts", "State": "available", "PolicyDocument": policy}]}


def sts_step() -> InterfaceEndpoint:
    return InterfaceEndpoint("vpce.sts", vpc="vpc", service="sts", subnets=["subnet.private.0"], security_group="sg.workspace", policy=StsPolicy())


def test_interface_endpoint_converges_a_policy_that_drifted(h: Harness) -> None:
    wanted = sts_policy(ACCOUNT)
    h.ec2.add_response("describe_vpc_endpoints", interface_described(json.dumps(FULL_ACCESS)), {"VpcEndpointIds": ["vpce-2"]})
    h.ec2.add_response("modify_vpc_endpoint", {"Return": True}, {"VpcEndpointId": "vpce-2", "PolicyDocument": compact(wanted)})
    out = sts_step().wait_ready(h.ctx, {"vpc_endpoint_id": "vpce-2", "service_name": "sts"})
    assert out["policy_digest"] == digest(wanted)


def test_a_policy_that_only_differs_in_formatting_is_left_alone(h: Harness) -> None:
    h.ec2.add_response("describe_vpc_endpoints", interface_described(json.dumps(sts_policy(ACCOUNT), indent=2)), {"VpcEndpointIds": ["vpce-2"]})
    sts_step().wait_ready(h.ctx, {"vpc_endpoint_id": "vpce-2", "service_name": "sts"})  # no modify_vpc_endpoint stubbed


def flow_log_step() -> FlowLog:
    return FlowLog("flowlogs.vpc", vpc="vpc", log_group="logs.flowlogs", role="iam.flowlogs", traffic_type="REJECT")


def flow_log_outputs(h: Harness) -> None:
    h.ctx.outputs.update({
        "vpc": {"vpc_id": "vpc-0abc"}, "logs.flowlogs": {"log_group_name": "/provision/acme-basic/vpc-flow-logs"},
        "iam.flowlogs": {"role_arn": f"arn:aws:iam::{ACCOUNT}:role/acme-basic-flowlogs"},
    })


def test_flow_log_create_request(h: Harness) -> None:
    flow_log_outputs(h)
    h.ec2.add_response(
        "create_flow_logs", {"FlowLogIds": ["fl-1"], "Unsuccessful": []},
        {"ResourceType": "VPC", "ResourceIds": ["vpc-0abc"], "TrafficType": "REJECT", "LogDestinationType": "cloud-watch-logs",
         "LogGroupName": "/provision/acme-basic/vpc-flow-logs", "DeliverLogsPermissionArn": f"arn:aws:iam::{ACCOUNT}:role/acme-basic-flowlogs",
         "ClientToken": ANY, "TagSpecifications": [{"ResourceType": "vpc-flow-log", "Tags": owner_tags("flowlogs.vpc")}]},
    )
    assert flow_log_step().create(h.ctx)["flow_log_id"] == "fl-1"


def test_flow_log_refused_per_resource_is_an_error(h: Harness) -> None:
    flow_log_outputs(h)
    h.ec2.add_response("create_flow_logs", {"FlowLogIds": [], "Unsuccessful": [{"ResourceId": "vpc-0abc", "Error": {"Code": "400", "Message": "no"}}]})
    with pytest.raises(ResourceFailed, match="400: no"):
        flow_log_step().create(h.ctx)


def test_flow_log_with_another_traffic_type_is_replaced(h: Harness) -> None:
    flow_log_outputs(h)
    step = flow_log_step()
    old = {"flow_log_id": "fl-old", "vpc_id": "vpc-0abc", "traffic_type": "ALL", "log_group_name": "/provision/acme-basic/vpc-flow-logs"}
    assert step.needs_converge(h.ctx, old)
    h.ec2.add_response("delete_flow_logs", {"Unsuccessful": []}, {"FlowLogIds": ["fl-old"]})
    h.ec2.add_response("describe_flow_logs", {"FlowLogs": []}, {"FlowLogIds": ["fl-old"]})
    h.ec2.add_response("create_flow_logs", {"FlowLogIds": ["fl-new"], "Unsuccessful": []})
    h.ec2.add_response("describe_flow_logs", {"FlowLogs": [{"FlowLogId": "fl-new", "FlowLogStatus": "ACTIVE"}]}, {"FlowLogIds": ["fl-new"]})
    assert step.wait_ready(h.ctx, old)["flow_log_id"] == "fl-new"


def test_log_group_is_created_tagged_and_encrypted_then_gets_its_retention(h: Harness) -> None:
    step = LogGroup("logs.flowlogs", retention_days=90, kms_key="kms.workspace")
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234"
    h.ctx.outputs["kms.workspace"] = {"key_arn": key}
    name = "/provision/acme-basic/vpc-flow-logs"
    tags = {t["Key"]: t["Value"] for t in owner_tags("logs.flowlogs")}
    h.logs.add_response("create_log_group", {}, {"logGroupName": name, "tags": tags, "kmsKeyId": key})
    h.logs.add_response("put_retention_policy", {}, {"logGroupName": name, "retentionInDays": 90})
    out = step.wait_ready(h.ctx, step.create(h.ctx))
    assert out == {"log_group_name": name, "log_group_arn": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{name}", "retention_days": 90, "kms_key_arn": key}
    assert not step.needs_converge(h.ctx, out)
    assert step.needs_converge(h.ctx, {**out, "kms_key_arn": None})


def acl_step() -> NetworkAcl:
    return NetworkAcl("nacl.private", vpc="vpc", subnets=["subnet.private.0", "subnet.private.1"])


def test_nacl_converges_entries_then_takes_over_the_subnets(h: Harness) -> None:
    h.ctx.outputs.update({"vpc": {"vpc_id": "vpc-0abc", "cidr": VPC_CIDR}, "subnet.private.0": {"subnet_id": "subnet-a"}, "subnet.private.1": {"subnet_id": "subnet-b"}})
    final = [{"RuleNumber": 32767, "Egress": e, "Protocol": "-1", "RuleAction": "deny", "CidrBlock": "0.0.0.0/0"} for e in (False, True)]
    stale = {"RuleNumber": 110, "Egress": True, "Protocol": "6", "RuleAction": "allow", "CidrBlock": "0.0.0.0/0", "PortRange": {"From": 80, "To": 80}}
    extra = {"RuleNumber": 900, "Egress": False, "Protocol": "17", "RuleAction": "allow", "CidrBlock": "0.0.0.0/0", "PortRange": {"From": 53, "To": 53}}
    acl = {"NetworkAclId": "acl-1", "VpcId": "vpc-0abc", "Entries": [*final, stale, extra], "Associations": [
        {"NetworkAclAssociationId": "aclassoc-b", "NetworkAclId": "acl-1", "SubnetId": "subnet-b"},
    ]}
    h.ec2.add_response("describe_network_acls", {"NetworkAcls": [acl]}, {"NetworkAclIds": ["acl-1"]})
    for entry in databricks_entries(VPC_CIDR):
        operation = "replace_network_acl_entry" if entry.key == (110, True) else "create_network_acl_entry"
        h.ec2.add_response(operation, {}, entry.request("acl-1"))
    h.ec2.add_response("delete_network_acl_entry", {}, {"NetworkAclId": "acl-1", "RuleNumber": 900, "Egress": False})
    h.ec2.add_response(
        "describe_network_acls",
        {"NetworkAcls": [{"NetworkAclId": "acl-default", "Associations": [{"NetworkAclAssociationId": "aclassoc-a", "NetworkAclId": "acl-default", "SubnetId": "subnet-a"}]}]},
        {"Filters": [{"Name": "association.subnet-id", "Values": ["subnet-a"]}]},
    )
    h.ec2.add_response("replace_network_acl_association", {"NewAssociationId": "aclassoc-a2"}, {"AssociationId": "aclassoc-a", "NetworkAclId": "acl-1"})
    out = acl_step().wait_ready(h.ctx, {"network_acl_id": "acl-1", "vpc_id": "vpc-0abc"})
    assert out["subnet_ids"] == ["subnet-a", "subnet-b"]
    assert not acl_step().needs_converge(h.ctx, out)
    assert acl_step().needs_converge(h.ctx, {**out, "subnet_ids": ["subnet-b"]})
    assert databricks_entries(VPC_CIDR)[2].request("acl-1") == {
        "NetworkAclId": "acl-1", "RuleNumber": 110, "Protocol": "6", "RuleAction": "allow", "Egress": True, "CidrBlock": "0.0.0.0/0",
        "PortRange": {"From": 443, "To": 443},
    }


def test_nacl_teardown_gives_the_subnets_back_to_the_default_acl_first(h: Harness) -> None:
    acl = {"NetworkAclId": "acl-1", "VpcId": "vpc-0abc", "Associations": [{"NetworkAclAssociationId": "aclassoc-a", "NetworkAclId": "acl-1", "SubnetId": "subnet-a"}]}
    h.ec2.add_response("describe_network_acls", {"NetworkAcls": [acl]}, {"NetworkAclIds": ["acl-1"]})
    h.ec2.add_response(
        "describe_network_acls", {"NetworkAcls": [{"NetworkAclId": "acl-default", "VpcId": "vpc-0abc"}]},
        {"Filters": [{"Name": "vpc-id", "Values": ["vpc-0abc"]}, {"Name": "default", "Values": ["true"]}]},
    )
    h.ec2.add_response("replace_network_acl_association", {"NewAssociationId": "aclassoc-x"}, {"AssociationId": "aclassoc-a", "NetworkAclId": "acl-default"})
    h.ec2.add_response("delete_network_acl", {}, {"NetworkAclId": "acl-1"})
    acl_step().delete(h.ctx, {"network_acl_id": "acl-1"})
