"""The enterprise example end to end (examples/enterprise.toml: privatelink with every security section on),
read back from the sandbox itself, never from our state file."""

from __future__ import annotations

import json
from pathlib import Path

import urllib.request

import boto3

import specs
from sandbox_inventory import ENTERPRISE, counts, inventory, untagged

EXAMPLE = specs.example("enterprise")
ACCOUNT = EXAMPLE["databricks"]["account_id"]
NAME = EXAMPLE["name"]
FULL_ACCESS = {"Statement": [{"Action": "*", "Effect": "Allow", "Principal": "*", "Resource": "*"}]}


def aws(sandbox, service: str):
    return boto3.client(service, endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")


def outputs(tmp_path: Path) -> dict:
    return {s["id"]: s["outputs"] for s in json.loads((tmp_path / "provision.state.json").read_text())["steps"]}


def workspace_setting(sandbox, workspace: dict, setting_type: str) -> dict:
    """A workspace setting as the workspace's own API answers it (authenticated with the sandbox's token)."""
    url = f"{sandbox.databricks_host}/workspaces/{workspace['deployment_name']}/api/2.0/settings/types/{setting_type}/names/default"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {sandbox.databricks_token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _policy(document) -> dict:
    return json.loads(document) if isinstance(document, str) else document


def test_enterprise_up_reads_back_secure_and_teardown_leaves_nothing_but_what_it_adopted(sandbox, cli, tmp_path):
    spec = specs.write(tmp_path / "spec.toml", EXAMPLE)
    # Someone else's GuardDuty detector in this account and region: adopted, never modified nor deleted.
    guardduty = aws(sandbox, "guardduty")
    theirs = guardduty.create_detector(Enable=True, FindingPublishingFrequency="SIX_HOURS")["DetectorId"]

    assert "RUNNING" in cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400).stdout
    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == ENTERPRISE
    assert [d["DetectorId"] for d in found["guardduty_detector"]] == [theirs]
    assert untagged({k: v for k, v in found.items() if k != "guardduty_detector"}, NAME) == []
    out = outputs(tmp_path)

    # Customer-managed keys: one key for both use cases, enabled, rotating, registered with both use cases.
    kms = aws(sandbox, "kms")
    (key,) = found["kms_key"]
    key_arn = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Arn"]
    assert kms.describe_key(KeyId=key_arn)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"] is True
    (registration,) = found["databricks_customer-managed-keys"]
    assert registration["aws_key_info"]["key_arn"] == key_arn
    assert set(registration["use_cases"]) == {"MANAGED_SERVICES", "STORAGE"}
    (workspace,) = found["databricks_workspaces"]
    assert workspace["workspace_status"] == "RUNNING"
    assert workspace["managed_services_customer_managed_key_id"] == registration["customer_managed_key_id"]
    assert workspace["storage_customer_managed_key_id"] == registration["customer_managed_key_id"]

    # The root bucket: SSE-KMS with that key and a bucket key, versioned, its policy narrowed to the workspace.
    s3 = aws(sandbox, "s3")
    bucket = out["s3.root"]["bucket"]
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
    assert rule["BucketKeyEnabled"] is True
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    bucket_policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    assert str(workspace["workspace_id"]) in bucket_policy

    # Flow logs on the VPC to a log group with retention, encrypted with the key.
    ec2 = aws(sandbox, "ec2")
    vpc_id = out["vpc"]["vpc_id"]
    (flow_log,) = found["flow_log"]
    assert flow_log["ResourceId"] == vpc_id and flow_log["LogDestinationType"] == "cloud-watch-logs"
    (group,) = found["log_group"]
    assert group["logGroupName"] == flow_log["LogGroupName"]
    assert group["retentionInDays"] == 30 and group["kmsKeyId"] == key_arn

    # A custom NACL on every private subnet.
    (nacl,) = found["network_acl"]
    associated = {a["SubnetId"] for a in nacl["Associations"]}
    assert associated == {out["subnet.private.0"]["subnet_id"], out["subnet.private.1"]["subnet_id"]}

    # Restrictive endpoint policies on S3, STS and Kinesis.
    endpoints = {e["VpcEndpointId"]: e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]}
    for step in ("vpce.s3", "vpce.sts", "vpce.kinesis"):
        policy = _policy(endpoints[out[step]["vpc_endpoint_id"]]["PolicyDocument"])
        assert policy["Statement"] != FULL_ACCESS["Statement"], step
        # Each statement is narrowed: to named resources, by a condition, or to named principals.
        assert all(s.get("Resource") != "*" or s.get("Condition") or s.get("Principal") != "*" for s in policy["Statement"]), step

    # The cross-account policy: every EC2 write is conditioned or scoped to this deployment's resources.
    iam = aws(sandbox, "iam")
    role = out["iam.crossaccount"]["role_name"]
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    statements = _policy(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])["Statement"]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        writes = [a for a in actions if a.startswith("ec2:") and not a.startswith(("ec2:Describe", "ec2:Get"))]
        if writes:
            assert statement.get("Condition"), statement
    assert any(vpc_id in json.dumps(s) for s in statements)

    # 5432 (Lakebase): egress from the workspace group, ingress to the endpoint group.
    groups = {g["GroupId"]: g for g in found["security_group"]}
    workspace_sg, endpoint_sg = groups[out["sg.workspace"]["group_id"]], groups[out["sg.endpoints"]["group_id"]]
    assert any(p.get("FromPort") == 5432 for p in workspace_sg["IpPermissionsEgress"])
    assert any(p.get("FromPort") == 5432 for p in endpoint_sg["IpPermissions"])

    # Guardrails: the adopted detector untouched, a recording Config recorder with the rules, the budget's alerts.
    assert guardduty.get_detector(DetectorId=theirs)["FindingPublishingFrequency"] == "SIX_HOURS"
    config = aws(sandbox, "config")
    (recorder,) = found["config_recorder"]
    (status,) = config.describe_configuration_recorder_status(ConfigurationRecorderNames=[recorder["name"]])["ConfigurationRecordersStatus"]
    assert status["recording"] is True
    assert len(found["config_rule"]) == 8
    (budget,) = found["budget"]
    account = aws(sandbox, "sts").get_caller_identity()["Account"]
    notifications = aws(sandbox, "budgets").describe_notifications_for_budget(AccountId=account, BudgetName=budget["BudgetName"])["Notifications"]
    assert sorted(n["Threshold"] for n in notifications) == [50, 80, 100, 120]

    # The workspace hardened: the compliance security profile with its standard, monitoring, automatic cluster update.
    csp = workspace_setting(sandbox, workspace, "shield_csp_enablement_ws_db")["compliance_security_profile_workspace"]
    assert csp["is_enabled"] is True and csp["compliance_standards"] == ["HIPAA"]
    esm = workspace_setting(sandbox, workspace, "shield_esm_enablement_ws_db")["enhanced_security_monitoring_workspace"]
    assert esm["is_enabled"] is True
    assert workspace_setting(sandbox, workspace, "automatic_cluster_update")["automatic_cluster_update_workspace"]["enabled"] is True

    # A second run changes nothing.
    again = cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400)
    assert "created" not in again.stdout
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == ENTERPRISE

    cli("teardown", "--yes", check=0, timeout=400)
    left = inventory(sandbox, account_id=ACCOUNT)
    assert counts(left) == {"guardduty_detector": 1}  # theirs, adopted: still there
    assert guardduty.get_detector(DetectorId=theirs)["FindingPublishingFrequency"] == "SIX_HOURS"
    # The key this deployment created is pending deletion (not gone), and the state file says so.
    assert kms.describe_key(KeyId=key_arn)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    facts = json.loads((tmp_path / "provision.state.json").read_text())["facts"]
    assert facts["pending_deletion:kms.workspace"]["key_arn"] == key_arn
