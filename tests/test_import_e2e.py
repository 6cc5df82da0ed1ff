"""Issue 14 acceptance 5, end to end through the real CLI against the sandbox: a deployment built as the
customer-managed VPC Terraform guide builds it (boto3 and the Account API, the guide's names) and its
version-4 Terraform state (module paths, count and for_each keys) is imported; the next `up` duplicates
nothing (the inventory of a clean basic run), every imported resource carries our tags, no secret of the
Terraform state reaches our state or output, and `teardown` leaves nothing.

What exists is read from the sandbox itself (sandbox_inventory), never from our state file."""

from __future__ import annotations

import json
from pathlib import Path

import import_guide as guide
import specs
from sandbox_inventory import BASIC_SINGLE_NAT, counts, inventory, untagged

ACCOUNT = specs.example()["databricks"]["account_id"]
NAME = specs.example()["name"]


def test_import_a_terraform_guide_deployment_then_up_and_teardown(sandbox, cli, tmp_path):
    ids = guide.build_in_sandbox(sandbox, ACCOUNT)
    built = counts(inventory(sandbox, account_id=ACCOUNT))
    tfstate = tmp_path / "terraform.tfstate"
    tfstate.write_text(json.dumps(guide.tfstate(ids), indent=2))
    before = tfstate.read_bytes()
    spec = specs.write(tmp_path / "spec.toml", specs.merged(specs.example(), **guide.SPEC_TABLES))

    # A Terraform state of another format version is refused before anything is read or written.
    old = tmp_path / "old.tfstate"
    old.write_text(json.dumps({**guide.tfstate(ids), "version": 3}))
    refused = cli("import", "--terraform-state", str(old), "--config", str(spec), "--sandbox")
    assert refused.returncode == 2 and "version 3" in refused.stderr
    assert not (tmp_path / "provision.state.json").exists()

    result = cli("import", "--terraform-state", str(tfstate), "--config", str(spec), "--sandbox", "--output", "json", check=0)
    report = json.loads(result.stdout)
    imported = {i["step"]: i["resource_id"] for i in report["imported"]}
    assert imported["vpc"] == ids["vpc"] and imported["nat.0"] == ids["nat"] and imported["dbx.workspace"] == str(ids["workspace_id"])
    assert len(imported) == 22, report
    assert [n["address"] for n in report["not_imported"]] == ["databricks_token.pat"]
    assert report["up_creates"] == ["s3.root.policy"]
    assert tfstate.read_bytes() == before, "the Terraform state is only read"
    state_text = (tmp_path / "provision.state.json").read_text()
    assert guide.TOKEN_SECRET not in state_text + result.stdout + result.stderr
    assert json.loads(state_text)["facts"]["names"]["dbx.workspace"] == guide.PREFIX

    # Every imported resource now carries our tags (and keeps its own Name); nothing was created.
    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == built == BASIC_SINGLE_NAT
    assert untagged(found, NAME) == []
    vpc_tags = {t["Key"]: t["Value"] for t in found["vpc"][0]["Tags"]}
    assert vpc_tags["Name"] == guide.PREFIX and vpc_tags["provision:step"] == "vpc" and vpc_tags["ManagedBy"] == "Terraform"

    # A second import over the live state is refused.
    again = cli("import", "--terraform-state", str(tfstate), "--config", str(spec), "--sandbox")
    assert again.returncode == 2 and "already records a live deployment" in again.stderr

    # `up` converges what differs (the security group's rules, the role's policy, the bucket's settings and policy)
    # and creates only what Terraform did not build: no resource is duplicated.
    up = cli("up", "--config", str(spec), "--sandbox", check=0)
    assert "RUNNING" in up.stdout
    assert [line.split(":")[0].split()[-1] for line in up.stdout.splitlines() if ": created" in line] == ["s3.root.policy"]
    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == BASIC_SINGLE_NAT
    assert untagged(found, NAME) == []
    assert found["vpc"][0]["VpcId"] == ids["vpc"]
    assert [w["workspace_id"] for w in found["databricks_workspaces"]] == [ids["workspace_id"]]
    plan = json.loads(cli("plan", "--config", str(spec), "--sandbox", "--output", "json", check=0).stdout)
    assert {item["action"] for item in plan} == {"keep"}

    cli("teardown", "--yes", check=0)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}
    assert tfstate.read_bytes() == before
    assert Path(tmp_path / "provision.state.json").exists()
