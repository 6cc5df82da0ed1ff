"""The serverless example end to end (examples/serverless.toml): a serverless-only workspace, governed, read back
from the sandbox through databricks-sdk, never from our state file. It creates no AWS resource at all."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from databricks.sdk import AccountClient, WorkspaceClient
from databricks.sdk.config import Config

import specs
from provision.sandbox import daemon
from sandbox_inventory import SERVERLESS, counts, inventory

EXAMPLE = specs.example("serverless")
# Plus a network connectivity configuration with a private endpoint rule to a VPC endpoint service of the user's.
ENDPOINT_SERVICE = "com.amazonaws.vpce.us-east-1.vpce-svc-0a1b2c3d4e5f60718"
WITH_NCC = specs.merged(EXAMPLE, serverless={**EXAMPLE["serverless"], "ncc": {"private_endpoint_rules": [
    {"endpoint_service": ENDPOINT_SERVICE, "domain_names": ["warehouse.internal.example.com"]}]}})
ACCOUNT = EXAMPLE["databricks"]["account_id"]
AWS_KINDS_PREFIXES = ("databricks_", "azure_")


def account(sandbox) -> AccountClient:
    return AccountClient(config=Config(host=sandbox.databricks_host, account_id=ACCOUNT, token=sandbox.databricks_token, auth_type="pat"))


def workspace(sandbox, deployment: str) -> WorkspaceClient:
    return WorkspaceClient(config=Config(host=f"{sandbox.databricks_host}/workspaces/{deployment}", token=sandbox.databricks_token, auth_type="pat"))


def retry_reasons(tmp_path: Path, command: str = "up") -> set[str]:
    log = "".join(p.read_text() for p in (tmp_path / "provision-logs").glob(f"*-{command}.log"))
    return {json.loads(line)["reason"] for line in log.splitlines() if '"event": "retrying"' in line}


def test_serverless_up_is_governed_creates_nothing_on_aws_and_teardown_leaves_nothing(sandbox, cli, tmp_path):
    # Slow windows, as Databricks has them: the workspace API warms up after RUNNING, permission assignments come
    # on after the metastore assignment. The run waits them out by classified retries, with no manual step.
    daemon.configure(sandbox, {"workspace_warmup_seconds": 1.0, "identity_federation_seconds": 1.0})
    spec = specs.write(tmp_path / "spec.toml", WITH_NCC)
    assert "RUNNING" in cli("up", "--config", str(spec), "--sandbox", check=0, timeout=300).stdout
    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == SERVERLESS + Counter({"databricks_network-connectivity-configs": 1, "databricks_private-endpoint-rules": 1})
    assert not [k for k, items in found.items() if items and not k.startswith(AWS_KINDS_PREFIXES)]  # no AWS resource
    reasons = retry_reasons(tmp_path)
    assert {"workspace warming up (no worker environments yet)", "identity federation not enabled yet (metastore assignment propagating)"} <= reasons

    a = account(sandbox)
    (ws,) = list(a.workspaces.list())
    assert ws.workspace_status.value == "RUNNING" and ws.compute_mode.value == "SERVERLESS"
    assert ws.credentials_id is None and ws.storage_configuration_id is None and ws.network_id is None
    (metastore,) = list(a.metastores.list())
    assert metastore.region == "us-east-1" and not metastore.storage_root
    assert a.metastore_assignments.get(workspace_id=ws.workspace_id).metastore_assignment.metastore_id == metastore.metastore_id

    w = workspace(sandbox, ws.deployment_name)
    catalog = w.catalogs.get(EXAMPLE["unity_catalog"]["catalog"])
    assert not catalog.storage_root  # the workspace's default storage
    assert sorted(s.name for s in w.schemas.list(catalog_name=catalog.name) if s.name != "information_schema") == ["bronze", "gold", "silver"]
    grants = {g.principal: sorted(p.value for p in g.privileges) for g in w.grants.get(securable_type="catalog", full_name=catalog.name).privilege_assignments}
    assert grants["analysts"] == ["SELECT", "USE_CATALOG", "USE_SCHEMA"]
    assert w.settings.default_namespace.get().namespace.value == catalog.name

    # Identities: the service principal in the group, both USER on the workspace; the deploying principal ADMIN.
    (sp,) = list(a.service_principals.list(filter='displayName eq "acme-serverless-jobs"'))
    (group,) = list(a.groups.list(filter='displayName eq "analysts"'))
    assert [m.value for m in a.groups.get(group.id).members] == [sp.id]
    permissions = {p.principal.principal_id: [x.value for x in p.permissions] for p in a.workspace_assignment.list(workspace_id=ws.workspace_id)}
    me = w.current_user.me()
    assert permissions[int(me.id)] == ["ADMIN"]
    assert permissions[int(sp.id)] == ["USER"] and permissions[int(group.id)] == ["USER"]

    # Serverless egress: restricted, in DRY_RUN until enforced, bound to the workspace.
    option = a.workspace_network_configuration.get_workspace_network_option_rpc(workspace_id=ws.workspace_id)
    policy = a.network_policies.get_network_policy_rpc(network_policy_id=option.network_policy_id)
    access = policy.egress.network_access
    assert access.restriction_mode.value == "RESTRICTED_ACCESS"
    assert access.policy_enforcement.enforcement_mode.value == "DRY_RUN"
    assert sorted(d.destination for d in access.allowed_internet_destinations) == ["files.pythonhosted.org", "pypi.org"]

    # The NCC, bound to the workspace, with its rule.
    (ncc,) = found["databricks_network-connectivity-configs"]
    assert ws.network_connectivity_config_id == ncc["network_connectivity_config_id"]
    (rule,) = found["databricks_private-endpoint-rules"]
    assert rule["endpoint_service"] == ENDPOINT_SERVICE and rule["domain_names"] == ["warehouse.internal.example.com"]

    # A second run changes nothing; teardown deletes the metastore too, since this deployment created it.
    assert "created" not in cli("up", "--config", str(spec), "--sandbox", check=0, timeout=300).stdout
    cli("plan", "--config", str(spec), "--sandbox", "--detailed-exitcode", check=0, timeout=300)  # no false drift
    cli("teardown", "--yes", check=0, timeout=300)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}
