"""The governance fragment's wiring and rules, without a sandbox: the step graph's order (what must exist before
what), what a live deployment may not drop, the serverless topology's refusals, and the staged rollout of the
network policy (`--enforce-network-policy`, kept enforced by later runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

import specs
from provision import topologies
from provision.app.runner import _spec_for_up
from provision.errors import SpecError
from provision.state.store import StateFile, Status


def build(name: str, **tables) -> dict:
    data = specs.merged(specs.example(name), **tables)
    spec = topologies.from_dict(data)
    return {s.id: s for s in topologies.build(spec)}


def test_enterprise_orders_credential_role_policy_location_catalog():
    steps = build("enterprise")
    assert "uc.assignment" in steps["id.admin.deployer"].needs
    # The credential first (its external id goes into the role's trust), then the role, its policy, the location.
    assert "uc.credential" in steps["iam.uc"].needs
    assert {"iam.uc", "s3.catalog"} <= set(steps["iam.uc.policy"].needs)
    assert {"uc.credential", "s3.catalog", "iam.uc.policy"} <= set(steps["uc.location"].needs)
    assert {"uc.location", "id.admin.deployer"} <= set(steps["uc.catalog"].needs)
    # The catalog bucket and the role's policy use the [encryption] key.
    assert "kms.workspace" in steps["s3.catalog"].needs and "kms.workspace" in steps["iam.uc.policy"].needs
    # Grants wait for the schemas and for the groups they name; workspace permissions for the metastore assignment.
    assert {"uc.schema.gold", "id.group.analysts", "id.group.data-engineers"} <= set(steps["uc.grants"].needs)
    assert "uc.assignment" in steps["id.assign.sp.acme-ci"].needs
    assert all("id.admin.deployer" in steps[f"dbx.policy.{p}"].needs for p in ("data-engineering", "analyst", "admin"))


def test_serverless_has_no_aws_step_and_an_ncc_outlives_the_workspace():
    steps = build("serverless", serverless={"ncc": {"private_endpoint_rules": [
        {"endpoint_service": "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0", "domain_names": ["db.internal.example.com"]}]}})
    assert [s.id for s in steps.values() if not s.kind.startswith("databricks.")] == []  # every step is a Databricks one
    assert "s3.catalog" not in steps and "uc.credential" not in steps and "uc.location" not in steps
    assert steps["dbx.workspace"].compute_mode == "SERVERLESS"
    # An NCC cannot be unbound from its workspace: the workspace needs it, so teardown deletes it after the workspace.
    assert "dbx.ncc" in steps["dbx.workspace"].needs
    assert {"dbx.ncc", "dbx.ncc.rule.0", "dbx.workspace"} <= set(steps["dbx.ncc.binding"].needs)


def test_no_governance_sections_no_governance_steps():
    steps = build("basic")
    assert not [s for s in steps if s.startswith(("uc.", "id.", "dbx.policy", "dbx.network_policy", "dbx.ncc"))]


@pytest.mark.parametrize("table, value, words", [
    ("network", {"vpc_cidr": "10.0.0.0/16"}, "serverless workspace has no VPC"),
    ("cluster_policies", [{"name": "analyst"}], "no classic clusters"),
])
def test_serverless_refuses_classic_sections_with_the_reason(table, value, words):
    with pytest.raises(SpecError) as error:
        topologies.from_dict(specs.merged(specs.example("serverless"), **{table: value}))
    assert words in str(error.value) and table in str(error.value)


def test_serverless_catalog_takes_no_bucket():
    with pytest.raises(SpecError, match="unity_catalog.bucket_name"):
        topologies.from_dict(specs.merged(specs.example("serverless"), unity_catalog={"bucket_name": "acme-catalog-bucket"}))


def _changed(before: dict, after: dict) -> list[str]:
    return topologies.changed_fields(topologies.from_dict(before), topologies.from_dict(after))


def test_a_live_deployment_may_add_but_not_drop_governance_objects():
    base = specs.example("enterprise")
    more = specs.merged(base, unity_catalog={"schemas": ["bronze", "silver", "gold", "platinum"]})
    assert _changed(base, more) == []
    fewer = specs.merged(base, unity_catalog={"schemas": ["bronze", "gold"]})
    assert _changed(base, fewer) == ["unity_catalog.schemas (removing silver)"]
    no_policies = {k: v for k, v in base.items() if k != "cluster_policies"}
    assert any(c.startswith("cluster_policies (removing") for c in _changed(base, no_policies))
    renamed = specs.merged(base, unity_catalog={"catalog": "acme_two"})
    assert "unity_catalog.catalog" in _changed(base, renamed)


def _state(path: Path, spec: dict, *, live: bool) -> None:
    state = StateFile.new(path, deployment=spec["name"], cloud="aws", target="sandbox", spec=spec, spec_path="spec.toml")
    state.ensure_steps([("dbx.network_policy", "databricks.network_policy")])
    state.update("dbx.network_policy", status=Status.DONE if live else Status.DELETED, outputs={"network_policy_id": "x"})
    state.save()


def _enforcement(spec) -> str:
    return spec.serverless.network_policy.enforcement


def test_enforce_flag_then_later_runs_keep_it_enforced_unless_the_spec_says_dry_run(tmp_path):
    data = specs.example("serverless")
    config = specs.write(tmp_path / "spec.toml", data)
    state_path = tmp_path / "provision.state.json"
    assert _enforcement(_spec_for_up(config, state_path, False)) == "DRY_RUN"  # the default: staged
    assert _enforcement(_spec_for_up(config, state_path, True)) == "ENFORCED"
    enforced = specs.merged(data, serverless={"network_policy": {**data["serverless"]["network_policy"], "enforcement": "enforced"}})
    _state(state_path, enforced, live=True)
    assert _enforcement(_spec_for_up(config, state_path, False)) == "ENFORCED"  # not relaxed by leaving the flag off
    explicit = specs.write(tmp_path / "explicit.toml", specs.merged(data, serverless={"network_policy": {
        **data["serverless"]["network_policy"], "enforcement": "dry_run"}}))
    assert _enforcement(_spec_for_up(explicit, state_path, False)) == "DRY_RUN"  # a rollback the spec asks for
    _state(state_path, enforced, live=False)  # torn down: a new deployment starts over in DRY_RUN
    assert _enforcement(_spec_for_up(config, state_path, False)) == "DRY_RUN"


def test_enforce_flag_without_a_network_policy_names_the_section(tmp_path, cli):
    config = specs.write(tmp_path / "spec.toml", specs.example("basic"))
    result = cli("up", "--config", str(config), "--sandbox", "--enforce-network-policy", check=2)
    assert "serverless.network_policy" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "provision.state.json").exists()
