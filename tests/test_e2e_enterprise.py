"""The enterprise example end to end (examples/enterprise.toml: privatelink with every security section on),
read back from the sandbox itself, never from our state file."""

from __future__ import annotations

import json
from pathlib import Path

import urllib.request

import boto3
from databricks.sdk import AccountClient, WorkspaceClient
from databricks.sdk.config import Config

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


def account_client(sandbox) -> AccountClient:
    return AccountClient(config=Config(host=sandbox.databricks_host, account_id=ACCOUNT, token=sandbox.databricks_token, auth_type="pat"))


def workspace_client(sandbox, deployment: str) -> WorkspaceClient:
    return WorkspaceClient(config=Config(host=f"{sandbox.databricks_host}/workspaces/{deployment}", token=sandbox.databricks_token, auth_type="pat"))


def _policy(document) -> dict:
    return json.loads(document) if isinstance(document, str) else document


def test_enterprise_up_reads_back_secure_and_teardown_leaves_nothing_but_what_it_adopted(sandbox, cli, tmp_path):
    spec = specs.write(tmp_path / "spec.toml", EXAMPLE)
    # Someone else's GuardDuty detector in this account and region: adopted, never modified nor deleted.
    guardduty = aws(sandbox, "guardduty")
    theirs = guardduty.create_detector(Enable=True, FindingPublishingFrequency="SIX_HOURS")["DetectorId"]
    # And the account's Unity Catalog metastore in the region (one per region): adopted, assigned, never deleted.
    from databricks.sdk.service.catalog import CreateAccountsMetastore

    a = account_client(sandbox)
    metastore_id = a.metastores.create(metastore_info=CreateAccountsMetastore(name="primary", region="us-east-1")).metastore_info.metastore_id

    up = cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400)
    assert "RUNNING" in up.stdout
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

    # The external location waited for the UC role's trust and policy to propagate: a logged retry, no sleep.
    log = "".join(p.read_text() for p in (tmp_path / "provision-logs").glob("*-up.log"))
    retries = [json.loads(line) for line in log.splitlines() if '"event": "retrying"' in line]
    assert any(r["what"] == "uc.location validate" and r["reason"] == "iam-propagation" for r in retries)
    texts = [up.stdout, up.stderr, (tmp_path / "provision.state.json").read_text(), *(p.read_text() for p in (tmp_path / "provision-logs").glob("*.log"))]
    governed(sandbox, workspace, out, found, texts, metastore_id)

    # A second run changes nothing.
    again = cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400)
    assert "created" not in again.stdout
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == ENTERPRISE
    # The staged rollout: the network policy goes from DRY_RUN to ENFORCED in place, and nothing else changes.
    enforce = cli("up", "--config", str(spec), "--sandbox", "--enforce-network-policy", check=0, timeout=400)
    assert "dbx.network_policy: converged" in enforce.stdout and "created" not in enforce.stdout
    option = a.workspace_network_configuration.get_workspace_network_option_rpc(workspace_id=workspace["workspace_id"])
    enforced = a.network_policies.get_network_policy_rpc(network_policy_id=option.network_policy_id).egress.network_access
    assert enforced.policy_enforcement.enforcement_mode.value == "ENFORCED"
    # No false drift on a clean deployment, and the enforced policy is not planned back to DRY_RUN.
    cli("plan", "--config", str(spec), "--sandbox", "--detailed-exitcode", check=0, timeout=400)

    cli("teardown", "--yes", check=0, timeout=400)
    left = inventory(sandbox, account_id=ACCOUNT)
    # Theirs, adopted: still there (the metastore without its assignment to our deleted workspace).
    assert counts(left) == {"guardduty_detector": 1, "databricks_metastores": 1}
    assert [m["metastore_id"] for m in left["databricks_metastores"]] == [metastore_id]
    assert guardduty.get_detector(DetectorId=theirs)["FindingPublishingFrequency"] == "SIX_HOURS"
    # The key this deployment created is pending deletion (not gone), and the state file says so.
    assert kms.describe_key(KeyId=key_arn)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    facts = json.loads((tmp_path / "provision.state.json").read_text())["facts"]
    assert facts["pending_deletion:kms.workspace"]["key_arn"] == key_arn


def governed(sandbox, workspace: dict, out: dict, found: dict, texts: list[str], metastore_id: str) -> None:
    """Unity Catalog, identities, cluster policies and serverless egress, as the sandbox's APIs answer them."""
    a, w = account_client(sandbox), workspace_client(sandbox, workspace["deployment_name"])
    # The account's metastore (adopted, not a second one: one per region) assigned to the workspace.
    assert [m["metastore_id"] for m in found["databricks_metastores"]] == [metastore_id]
    assert a.metastore_assignments.get(workspace_id=workspace["workspace_id"]).metastore_assignment.metastore_id == metastore_id

    # A catalog whose storage root is in the catalog bucket, under an external location on a credential that validates.
    bucket = out["s3.catalog"]["bucket"]
    catalog = w.catalogs.get("acme")
    assert catalog.storage_root.startswith(f"s3://{bucket}/")
    (location,) = list(w.external_locations.list())
    assert location.url.rstrip("/") == f"s3://{bucket}" and catalog.storage_root.startswith(location.url.rstrip("/"))
    credential = w.storage_credentials.get(location.credential_name)
    results = w.storage_credentials.validate(storage_credential_name=credential.name, url=location.url).results
    assert results and all(r.result.value in ("PASS", "SKIP") for r in results), results
    # Its role trusts Databricks' UC master role with the credential's own external id (not the account id), and
    # itself through the account root with an ArnLike condition (naming its own ARN fails while it does not exist).
    external_id = credential.aws_iam_role.external_id
    assert external_id and external_id != ACCOUNT
    role = aws(sandbox, "iam").get_role(RoleName=credential.aws_iam_role.role_arn.split("/")[-1])["Role"]
    trust = _policy(role["AssumeRolePolicyDocument"])["Statement"]
    assert all(s["Condition"]["StringEquals"]["sts:ExternalId"] == external_id for s in trust)
    assert any("UCMasterRole" in json.dumps(s["Principal"]) for s in trust)
    (self_assume,) = [s for s in trust if s["Principal"]["AWS"].endswith(":root")]
    assert self_assume["Condition"]["ArnLike"]["aws:PrincipalArn"] == role["Arn"]
    # Schemas and grants.
    assert sorted(s.name for s in w.schemas.list(catalog_name="acme") if s.name != "information_schema") == ["bronze", "gold", "silver"]
    on_catalog = {g.principal: {p.value for p in g.privileges} for g in w.grants.get(securable_type="catalog", full_name="acme").privilege_assignments}
    assert on_catalog["data_engineers"] == {"USE_CATALOG", "USE_SCHEMA", "SELECT", "MODIFY", "CREATE_TABLE"}
    assert on_catalog["analysts"] == {"USE_CATALOG"}
    on_gold = {g.principal: {p.value for p in g.privileges} for g in w.grants.get(securable_type="schema", full_name="acme.gold").privilege_assignments}
    assert on_gold["analysts"] == {"USE_SCHEMA", "SELECT"}
    assert w.settings.default_namespace.get().namespace.value == "acme"

    # The guide's three cluster policies.
    policies = {p.name: json.loads(p.definition) for p in w.cluster_policies.list()}
    assert {"data-engineering", "analyst", "admin"} <= set(policies)
    assert all("autotermination_minutes" in d for d in policies.values())

    # The service principal (with its OAuth secret only in Secrets Manager), the groups, and the deployer ADMIN.
    (sp,) = list(a.service_principals.list(filter='displayName eq "acme-ci"'))
    secrets = aws(sandbox, "secretsmanager")
    (secret,) = secrets.list_secrets()["SecretList"]
    value = json.loads(secrets.get_secret_value(SecretId=secret["ARN"])["SecretString"])
    assert value["client_id"] == sp.application_id and value["client_secret"]
    assert [t for t in texts if value["client_secret"] in t] == []  # not in the state file, stdout or stderr
    permissions = {p.principal.principal_id: [x.value for x in p.permissions] for p in a.workspace_assignment.list(workspace_id=workspace["workspace_id"])}
    assert permissions[int(w.current_user.me().id)] == ["ADMIN"]
    assert permissions[int(sp.id)] == ["USER"]
    # The network policy, bound to the workspace, in DRY_RUN first.
    option = a.workspace_network_configuration.get_workspace_network_option_rpc(workspace_id=workspace["workspace_id"])
    access = a.network_policies.get_network_policy_rpc(network_policy_id=option.network_policy_id).egress.network_access
    assert access.restriction_mode.value == "RESTRICTED_ACCESS" and access.policy_enforcement.enforcement_mode.value == "DRY_RUN"
