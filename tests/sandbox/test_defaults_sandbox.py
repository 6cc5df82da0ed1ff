"""The secure defaults in the sandbox's AWS (moto with the fidelity families), run by the engine over HTTP
with real boto3 clients: a first run, then reruns that must converge what an earlier version left (or a hand
edit) in place: the workspace security group's ports, the root bucket's versioning, SSE-KMS and narrowed
policy, the cross-account role's generic policy replaced by the scoped one. The Databricks side is a
stand-in step giving the workspace id: the bucket policy only needs that id.

Plus the IAM fidelity rule (clouds/aws/sandbox/iam.py): a role's inline policies are capped at 10,240
characters, which plain moto does not enforce.
"""

from __future__ import annotations

import json
import random
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog
from sandbox_helpers import aws_client, client_error
from structlog.testing import CapturingLogger

from provision import topologies
from provision.clouds import error_rules
from provision.clouds.aws.steps.iam import (
    CrossAccountPolicy,
    CrossAccountRole,
    policy_name,
)
from provision.clouds.aws.steps.network import WORKSPACE_SG_RULES, SecurityGroup, Vpc
from provision.clouds.aws.steps.storage import (
    DIGEST_TAG,
    RootBucket,
    RootBucketPolicy,
    restrictive_root_bucket_policy,
    root_bucket_policy,
)
from provision.orchestrator.clients import CallStats
from provision.orchestrator.engine import Engine
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import Context, Outputs, Step
from provision.orchestrator.wait import PollPolicy
from provision.state.store import StateFile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "basic.toml"
WORKSPACE_ID = 3141592653589793


class Given(Step):
    """A stand-in for a step of another helper or cloud: its outputs are fixed."""

    kind = "test.given"

    def __init__(self, step_id: str, **outputs: Any) -> None:
        super().__init__(step_id)
        self.outputs = outputs
        self.produces = tuple(outputs)  # type: ignore[misc]  (per instance: each stand-in has its own)

    def find(self, ctx: Context) -> Outputs | None:
        return dict(self.outputs)

    def create(self, ctx: Context) -> Outputs:
        return dict(self.outputs)

    def delete(self, ctx: Context, out: Outputs) -> None:
        return None


class SandboxClients:
    """`ctx.clients["aws"].client(service)`: real boto3 clients of the in-process sandbox, every call recorded."""

    def __init__(self, url: str) -> None:
        self.url, self.stats, self.calls, self._made = url, CallStats(), [], {}

    def __getitem__(self, cloud: str) -> Any:
        assert cloud == "aws", cloud
        return self

    def client(self, service: str) -> Any:
        if service not in self._made:
            made = self._made[service] = aws_client(service, self.url)
            made.meta.events.register("before-call.*.*", lambda model, **_: self.calls.append(model.name))
        return self._made[service]


class Deployment:
    """One deployment's spec and state file; each `up` is a new run (a new process would see the same)."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        data = tomllib.loads(EXAMPLE.read_text())
        data["name"] = f"d1-{uuid.uuid4().hex[:8]}"
        self.spec = topologies.from_dict(data, str(EXAMPLE))
        self.path, self.url = tmp_path / "state.json", url
        self.clients = SandboxClients(url)

    def up(self, steps: list[Step]) -> dict[str, Outputs]:
        if self.path.exists():
            state = StateFile.load(self.path)
        else:
            state = StateFile.new(self.path, deployment=self.spec.name, cloud="aws", target="sandbox", spec=self.spec.to_json(), spec_path=None)
        self.clients = SandboxClients(self.url)
        ctx = Context(
            spec=self.spec, clients=self.clients,  # type: ignore[arg-type]
            retry=RetryPolicy(deadline_seconds=5, initial_seconds=0.01, max_seconds=0.05, rng=random.Random(1), errors=error_rules()),
            poll=PollPolicy(initial_seconds=0.01, factor=2, max_seconds=0.05, timeout_seconds=5, visibility_seconds=0),
            log=structlog.wrap_logger(CapturingLogger(), processors=[]),
        )
        return Engine(steps, state, ctx, parallelism=1).up()

    def aws(self, service: str) -> Any:
        return aws_client(service, self.url)


@pytest.fixture
def deployment(tmp_path: Path, aws_url: str) -> Deployment:
    return Deployment(tmp_path, aws_url)


def network_steps() -> list[Step]:
    return [Vpc("vpc", "10.40.0.0/16"), SecurityGroup("sg.workspace", vpc="vpc", description="Databricks workspace", rules=WORKSPACE_SG_RULES)]


def bucket_steps(bucket: str, key_arn: str) -> list[Step]:
    return [
        Given("kms.workspace", key_arn=key_arn),
        RootBucket("s3.root", bucket_name=bucket, kms_key="kms.workspace"),
        Given("dbx.workspace", workspace_id=WORKSPACE_ID),
        RootBucketPolicy("s3.root.policy", bucket="s3.root", workspace="dbx.workspace"),
    ]


# --- the workspace security group ---------------------------------------------------------------------------


def egress(ec2: Any, group_id: str) -> dict[tuple[str, int, int, str], str | None]:
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    return {
        (p["IpProtocol"], p.get("FromPort", 0), p.get("ToPort", 0), r["CidrIp"]): r.get("Description")
        for p in group["IpPermissionsEgress"] for r in p.get("IpRanges", [])
    }


def test_security_group_of_an_earlier_version_gets_lakebase_on_rerun(deployment: Deployment) -> None:
    group_id = deployment.up(network_steps())["sg.workspace"]["group_id"]
    ec2 = deployment.aws("ec2")
    rules = egress(ec2, group_id)
    assert rules[("tcp", 5432, 5432, "0.0.0.0/0")] == "Databricks - Lakebase PostgreSQL"
    assert rules[("tcp", 443, 443, "0.0.0.0/0")] == "Databricks - REST API, control plane and AWS services (HTTPS)"
    # What an earlier version left: no 5432.
    ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    again = deployment.up(network_steps())

    assert again["sg.workspace"]["group_id"] == group_id  # the same group, converged in place
    assert egress(ec2, group_id)[("tcp", 5432, 5432, "0.0.0.0/0")] == "Databricks - Lakebase PostgreSQL"
    assert "AuthorizeSecurityGroupEgress" in deployment.clients.calls
    # A third run finds nothing to do: the one describe of `find`.
    deployment.up(network_steps())
    assert [c for c in deployment.clients.calls if "SecurityGroup" in c] == ["DescribeSecurityGroups"]


# --- the root bucket ------------------------------------------------------------------------------------------


def test_bucket_versioned_sse_kms_and_narrowed_then_converged_in_place(deployment: Deployment) -> None:
    key_arn = deployment.aws("kms").create_key(Description="d1 test key")["KeyMetadata"]["Arn"]
    steps = bucket_steps(deployment.spec.storage.bucket_name, key_arn)
    out = deployment.up(steps)
    bucket = out["s3.root"]["bucket"]
    s3 = deployment.aws("s3")

    def settings() -> tuple[str, dict[str, Any], dict[str, Any]]:
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        return s3.get_bucket_versioning(Bucket=bucket).get("Status"), rule, json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])

    narrowed = restrictive_root_bucket_policy(bucket, deployment.spec.databricks.account_id, "us-east-1", WORKSPACE_ID)
    kms_rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}, "BucketKeyEnabled": True}
    assert settings() == ("Enabled", kms_rule, narrowed)
    assert str(WORKSPACE_ID) in json.dumps(narrowed)

    # What an earlier version left: SSE-S3, no versioning, the initial (broad) policy, no settings digest.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(root_bucket_policy(bucket, deployment.spec.databricks.account_id)))
    tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [t for t in tags if t["Key"] != DIGEST_TAG]})

    assert deployment.up(steps)["s3.root"]["bucket"] == bucket
    assert settings() == ("Enabled", kms_rule, narrowed)

    # The bucket step converging again (here: its digest gone) must not widen the narrowed policy.
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [t for t in tags if t["Key"] != DIGEST_TAG]})
    deployment.up(steps)
    assert "PutBucketVersioning" in deployment.clients.calls and "PutBucketPolicy" not in deployment.clients.calls
    assert settings()[2] == narrowed

    # Steady state: no put at all.
    deployment.up(steps)
    assert not [c for c in deployment.clients.calls if c.startswith("Put")]

    # A policy widened by hand is narrowed again; nothing else is touched.
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(root_bucket_policy(bucket, deployment.spec.databricks.account_id)))
    deployment.up(steps)
    assert [c for c in deployment.clients.calls if c.startswith("Put")] == ["PutBucketPolicy"]
    assert settings()[2] == narrowed


# --- the cross-account policy ---------------------------------------------------------------------------------


def identity_steps() -> list[Step]:
    return [
        CrossAccountRole("iam.crossaccount"), *network_steps(),
        CrossAccountPolicy("iam.crossaccount.policy", role="iam.crossaccount", vpcs=["vpc"], security_groups=["sg.workspace"]),
    ]


def test_generic_policy_of_an_earlier_version_is_replaced_in_place(deployment: Deployment) -> None:
    # An earlier version: the role and network, and the generic policy on Resource "*" under the same name.
    first = deployment.up([CrossAccountRole("iam.crossaccount"), *network_steps()])
    role = first["iam.crossaccount"]["role_name"]
    iam = deployment.aws("iam")
    generic = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:CreateVolume"], "Resource": "*"}]}
    iam.put_role_policy(RoleName=role, PolicyName=policy_name(deployment.spec.name), PolicyDocument=json.dumps(generic))

    out = deployment.up(identity_steps())

    assert out["iam.crossaccount"]["role_arn"] == first["iam.crossaccount"]["role_arn"]  # the same role
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == [policy_name(deployment.spec.name)]
    document = iam.get_role_policy(RoleName=role, PolicyName=policy_name(deployment.spec.name))["PolicyDocument"]
    sids = {s["Sid"]: s for s in document["Statement"]}
    vpc_arn = f"arn:aws:ec2:us-east-1:123456789012:vpc/{first['vpc']['vpc_id']}"
    assert sids["AllowRunInstancesWithScopedResources"]["Condition"] == {"StringEqualsIfExists": {"ec2:vpc": [vpc_arn]}}
    assert sids["VpcNonresourceSpecificActions"]["Resource"] == [f"arn:aws:ec2:us-east-1:123456789012:security-group/{first['sg.workspace']['group_id']}"]
    assert out["iam.crossaccount.policy"]["role_arn"] == first["iam.crossaccount"]["role_arn"]  # passed on to the credentials

    # Steady state: one read of the policy, no write.
    deployment.up(identity_steps())
    assert "GetRolePolicy" in deployment.clients.calls and "PutRolePolicy" not in deployment.clients.calls


# --- fidelity: the inline policy quota -------------------------------------------------------------------------


def padded(characters: int) -> str:
    """A valid policy document of exactly `characters` non-whitespace characters (plus some whitespace)."""
    skeleton = {"Version": "2012-10-17", "Statement": [{"Sid": "", "Effect": "Allow", "Action": "ec2:DescribeVpcs", "Resource": "*"}]}
    base = len(json.dumps(skeleton, separators=(",", ":")))
    skeleton["Statement"][0]["Sid"] = "S" * (characters - base)
    return json.dumps(skeleton, indent=4)


def test_role_inline_policies_are_capped_at_10240_characters_without_whitespace(aws_url: str) -> None:
    iam = aws_client("iam", aws_url)
    role = f"quota-{uuid.uuid4().hex[:8]}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    iam.put_role_policy(RoleName=role, PolicyName="full", PolicyDocument=padded(10_240))  # whitespace is free
    iam.put_role_policy(RoleName=role, PolicyName="full", PolicyDocument=padded(6_000))  # a replacement counts once

    error = client_error(iam.put_role_policy, RoleName=role, PolicyName="second", PolicyDocument=padded(4_241))
    assert error["Code"] == "LimitExceeded"
    assert error["Message"] == f"Maximum policy size of 10240 bytes exceeded for role {role}"
    iam.put_role_policy(RoleName=role, PolicyName="second", PolicyDocument=padded(4_240))
    assert sorted(iam.list_role_policies(RoleName=role)["PolicyNames"]) == ["full", "second"]
    assert client_error(iam.put_role_policy, RoleName="no-such-role", PolicyName="p", PolicyDocument=padded(100))["Code"] == "NoSuchEntity"
