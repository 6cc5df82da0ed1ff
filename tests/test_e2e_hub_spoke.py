"""Hub-and-spoke egress inspection: transit gateway, Network Firewall, several workspaces behind one hub."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import specs
from sandbox_inventory import counts, inventory

from provision.clouds.aws.sandbox.network_firewall.evaluate import (
    DROP,
    PASS,
    Flow,
    live_verdict,
)
from provision.clouds.aws.steps.firewall import STRICT_FACT
from provision.clouds.aws.steps.firewall_rules import sandbox_resolver
from provision.regions import EGRESS_FACTS

ACCOUNT = specs.example("hub-spoke")["databricks"]["account_id"]


def client(sandbox, service: str):
    return boto3.client(service, endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")


def outputs(tmp_path: Path) -> dict:
    return {s["id"]: s["outputs"] for s in json.loads((tmp_path / "provision.state.json").read_text())["steps"]}


def firewall_inventory(sandbox) -> dict[str, int]:
    nfw = client(sandbox, "network-firewall")
    return {
        "firewall": len(nfw.list_firewalls()["Firewalls"]),
        "firewall_policy": len(nfw.list_firewall_policies()["FirewallPolicies"]),
        "rule_group": len(nfw.list_rule_groups()["RuleGroups"]),
    }


def tgw_inventory(sandbox) -> dict[str, int]:
    ec2 = client(sandbox, "ec2")
    live = lambda items: [i for i in items if i["State"] not in ("deleted", "deleting")]
    return {
        "tgw": len(live(ec2.describe_transit_gateways()["TransitGateways"])),
        "tgw_attachment": len(live(ec2.describe_transit_gateway_vpc_attachments()["TransitGatewayVpcAttachments"])),
        "tgw_route_table": len(live(ec2.describe_transit_gateway_route_tables()["TransitGatewayRouteTables"])),
    }


def route_to(table: dict, destination: str) -> dict:
    return next(r for r in table["Routes"] if r.get("DestinationCidrBlock") == destination)


def test_hub_spoke_two_spokes_then_a_third_then_teardown(sandbox, cli, tmp_path):
    data = specs.example("hub-spoke")
    spec = specs.write(tmp_path / "spec.toml", data)
    first = cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400)

    found = inventory(sandbox, account_id=ACCOUNT)
    assert {w["workspace_name"]: w["workspace_status"] for w in found["databricks_workspaces"]} == {
        "acme-hub-analytics": "RUNNING", "acme-hub-science": "RUNNING",
    }
    assert firewall_inventory(sandbox) == {"firewall": 1, "firewall_policy": 1, "rule_group": 4}
    assert tgw_inventory(sandbox) == {"tgw": 1, "tgw_attachment": 3, "tgw_route_table": 2}
    out = outputs(tmp_path)

    # `output` lists every spoke's workspace (there is no single top-level workspace_url here).
    listed = json.loads(cli("output", "--output", "json", check=0).stdout)["workspaces"]
    by_name = {w["workspace_name"]: w for w in found["databricks_workspaces"]}
    assert [w["name"] for w in listed] == ["acme-hub-analytics", "acme-hub-science"]
    for w in listed:
        assert w["workspace_id"] == by_name[w["name"]]["workspace_id"]
        assert w["workspace_url"] == f"https://{by_name[w['name']]['deployment_name']}.cloud.databricks.com"
        assert w["workspace_status"] == "RUNNING"
    table = cli("output", check=0).stdout.splitlines()
    assert table[0].split() == ["name", "workspace_id", "workspace_status", "workspace_url"]
    assert [line.split()[0] for line in table[1:3]] == ["acme-hub-analytics", "acme-hub-science"]
    ec2 = client(sandbox, "ec2")

    # The route chain, read from the sandbox: spoke -> TGW -> hub -> NAT -> firewall endpoint -> IGW.
    tgw_id = out["tgw"]["tgw_id"]
    tables = {t["RouteTableId"]: t for t in ec2.describe_route_tables()["RouteTables"]}
    spoke_rt = tables[out["spoke.analytics.rt.private"]["route_table_id"]]
    assert route_to(spoke_rt, "0.0.0.0/0")["TransitGatewayId"] == tgw_id
    spokes_tgw_rt = out["tgw.rt.spokes"]["tgw_route_table_id"]
    default = ec2.search_transit_gateway_routes(TransitGatewayRouteTableId=spokes_tgw_rt, Filters=[{"Name": "type", "Values": ["static"]}])["Routes"]
    assert [r["TransitGatewayAttachments"][0]["TransitGatewayAttachmentId"] for r in default if r["DestinationCidrBlock"] == "0.0.0.0/0"] == [out["tgw.attach.hub"]["attachment_id"]]
    hub_tgw_rt = tables[out["hub.rt.tgw"]["route_table_id"]]
    assert route_to(hub_tgw_rt, "0.0.0.0/0")["NatGatewayId"] == out["hub.nat.0"]["nat_gateway_id"]
    endpoints = out["fw"]["endpoints"]
    nat_subnet_zone = out["hub.subnet.public.0"]["zone"]
    public_rt = tables[out["hub.rt.public.0"]["route_table_id"]]
    # DescribeRouteTables reports a route to a (firewall) VPC endpoint under GatewayId, as AWS does.
    assert route_to(public_rt, "0.0.0.0/0")["GatewayId"] == endpoints[nat_subnet_zone]
    assert route_to(public_rt, "10.20.0.0/16")["TransitGatewayId"] == tgw_id
    firewall_rt = tables[out["hub.rt.firewall"]["route_table_id"]]
    assert route_to(firewall_rt, "0.0.0.0/0")["GatewayId"] == out["hub.igw"]["igw_id"]
    edge = tables[out["hub.rt.edge"]["route_table_id"]]
    assert any(a.get("GatewayId") == out["hub.igw"]["igw_id"] for a in edge["Associations"])
    assert route_to(edge, out["hub.subnet.public.0"]["cidr"])["GatewayId"] == endpoints[nat_subnet_zone]

    # The firewall's rule groups hold what the spec asks for.
    nfw = client(sandbox, "network-firewall")
    domains = nfw.describe_rule_group(RuleGroupArn=out["fw.rg.domains"]["rule_group_arn"])["RuleGroup"]
    targets = domains["RulesSource"]["RulesSourceList"]["Targets"]
    assert {"nvirginia.cloud.databricks.com", "tunnel.us-east-1.cloud.databricks.com", ".pypi.org", ".pythonhosted.org"} <= set(targets)
    assert domains["RuleVariables"]["IPSets"]["HOME_NET"]["Definition"] == ["10.10.0.0/24", "10.20.0.0/16", "10.30.0.0/16"]
    deny = nfw.describe_rule_group(RuleGroupArn=out["fw.rg.deny"]["rule_group_arn"])["RuleGroup"]["RulesSource"]["StatefulRules"]
    assert {(r["Action"], r["Header"]["Protocol"]) for r in deny} == {("DROP", "ICMP"), ("DROP", "FTP"), ("DROP", "SSH"), ("DROP", "UDP")}
    cp = nfw.describe_rule_group(RuleGroupArn=out["fw.rg.controlplane"]["rule_group_arn"])["RuleGroup"]["RulesSource"]["StatefulRules"]
    assert [(r["Action"], r["Header"]["Destination"], r["Header"]["DestinationPort"]) for r in cp] == [("PASS", "3.237.73.224/28", "443")]

    # Workspace tokens: the value is in Secrets Manager, and nowhere in our state, logs or output.
    secrets = client(sandbox, "secretsmanager")
    arn = out["spoke.analytics.dbx.token"]["secret_arn"]
    value = secrets.get_secret_value(SecretId=arn)["SecretString"]
    assert value.startswith("dapi") and len(value) > 20
    status = cli("status", "--output", "json", check=0)
    output = cli("output", "--output", "json", check=0)
    texts = [(tmp_path / "provision.state.json").read_text(), first.stdout, first.stderr, status.stdout, output.stdout,
             *(p.read_text() for p in (tmp_path / "provision-logs").glob("*.log"))]
    assert not any(value in text for text in texts)
    assert json.loads(output.stdout)["spoke.analytics.dbx.token.secret_arn"] == arn

    # A third spoke: only its resources are created; the rule groups learn its CIDR.
    before = {sid for sid, o in out.items() if o}
    data["spokes"] = [*data["spokes"], {"name": "finance", "vpc_cidr": "10.40.0.0/16"}]
    specs.write(spec, data)
    again = cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400)
    created = {line.split("] ", 1)[1].split(":")[0] for line in again.stdout.splitlines() if ": created" in line}
    assert created and all(sid.startswith(("spoke.finance.", "tgw.attach.finance", "tgw.route.hub.finance")) or sid.endswith(".finance") for sid in created)
    assert before <= set(outputs(tmp_path))
    assert tgw_inventory(sandbox)["tgw_attachment"] == 4
    domains = nfw.describe_rule_group(RuleGroupArn=out["fw.rg.domains"]["rule_group_arn"])["RuleGroup"]
    assert "10.40.0.0/16" in domains["RuleVariables"]["IPSets"]["HOME_NET"]["Definition"]
    assert len(inventory(sandbox, account_id=ACCOUNT)["databricks_workspaces"]) == 3
    cli("plan", "--config", str(spec), "--sandbox", "--detailed-exitcode", check=0, timeout=400)  # no false drift

    # Spokes cannot reach each other around the firewall: spoke CIDRs are blackholed in the spokes' TGW table.
    blackholes = ec2.search_transit_gateway_routes(TransitGatewayRouteTableId=spokes_tgw_rt, Filters=[{"Name": "state", "Values": ["blackhole"]}])["Routes"]
    assert {r["DestinationCidrBlock"] for r in blackholes} == {"10.20.0.0/16", "10.30.0.0/16", "10.40.0.0/16"}

    # The allow-list converges in place: no resource is created, the rule group gains the domain.
    data["firewall"]["allowed_domains"] = [*data["firewall"]["allowed_domains"], ".github.com"]
    specs.write(spec, data)
    updated = cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400)
    assert ": created" not in updated.stdout and "fw.rg.domains: converged" in updated.stdout
    targets = nfw.describe_rule_group(RuleGroupArn=out["fw.rg.domains"]["rule_group_arn"])["RuleGroup"]["RulesSource"]["RulesSourceList"]["Targets"]
    assert ".github.com" in targets
    rerun = cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400)
    assert ": created" not in rerun.stdout and ": converged" not in rerun.stdout

    cli("teardown", "--yes", check=0, timeout=400)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}
    assert firewall_inventory(sandbox) == {"firewall": 0, "firewall_policy": 0, "rule_group": 0}
    assert tgw_inventory(sandbox) == {"tgw": 0, "tgw_attachment": 0, "tgw_route_table": 0}
    assert secrets.list_secrets()["SecretList"] == []


def test_removing_or_changing_a_spoke_of_a_live_deployment_is_refused(sandbox, cli, tmp_path):
    data = specs.example("hub-spoke")
    data["spokes"] = data["spokes"][:1]
    data["databricks"]["workspace_token"] = False
    spec = specs.write(tmp_path / "spec.toml", data)
    cli("up", "--config", str(spec), "--sandbox", env={"PROVISION_FAILPOINTS": "spoke.analytics.vpc:before_create=error"})
    changed = specs.merged(data)
    changed["spokes"] = [{"name": "analytics", "vpc_cidr": "10.21.0.0/16"}]
    result = cli("up", "--config", str(specs.write(tmp_path / "spec.toml", changed)), "--sandbox")
    assert result.returncode == 2 and "spokes[analytics]" in result.stderr


def _downgrade_to_legacy_firewall(sandbox, state_path: Path, spec_name: str) -> tuple[str, str]:
    """Make the live deployment what an older provision left: DEFAULT_ACTION_ORDER rule groups and policy named
    `<deployment>-<step>`, the firewall on that policy, and the state file recording them (no metastore group,
    no strict-order fact). The firewall's ARN and the old policy's."""
    nfw = client(sandbox, "network-firewall")
    state = json.loads(state_path.read_text())
    steps = {s["id"]: s for s in state["steps"]}
    name = lambda sid: f"{spec_name}-{sid}".replace(".", "-")
    tags = lambda sid: [{"Key": "provision:deployment", "Value": spec_name}, {"Key": "provision:step", "Value": sid}]
    strict = {sid: steps[sid]["outputs"]["rule_group_arn"] for sid in ("fw.rg.domains", "fw.rg.deny", "fw.rg.controlplane", "fw.rg.metastore")}
    old: dict[str, str] = {}
    for sid in ("fw.rg.domains", "fw.rg.deny", "fw.rg.controlplane"):
        body = nfw.describe_rule_group(RuleGroupArn=steps[sid]["outputs"]["rule_group_arn"])["RuleGroup"]
        body.pop("StatefulRuleOptions")
        old[sid] = nfw.create_rule_group(RuleGroupName=name(sid), Type="STATEFUL", Capacity=100, RuleGroup=body, Tags=tags(sid))["RuleGroupResponse"]["RuleGroupArn"]
        steps[sid]["outputs"] = {"rule_group_arn": old[sid], "name": name(sid), "digest": "legacy"}
    document = {"StatelessDefaultActions": ["aws:forward_to_sfe"], "StatelessFragmentDefaultActions": ["aws:forward_to_sfe"],
                "StatefulRuleGroupReferences": [{"ResourceArn": arn} for arn in old.values()]}
    policy = nfw.create_firewall_policy(FirewallPolicyName=name("fw.policy"), FirewallPolicy=document, Tags=tags("fw.policy"))
    old_policy = policy["FirewallPolicyResponse"]["FirewallPolicyArn"]
    firewall = steps["fw"]["outputs"]["firewall_arn"]
    token = nfw.describe_firewall(FirewallArn=firewall)["UpdateToken"]
    token = nfw.update_firewall_policy_change_protection(UpdateToken=token, FirewallArn=firewall, FirewallPolicyChangeProtection=False)["UpdateToken"]
    token = nfw.associate_firewall_policy(UpdateToken=token, FirewallArn=firewall, FirewallPolicyArn=old_policy)["UpdateToken"]
    nfw.update_firewall_policy_change_protection(UpdateToken=token, FirewallArn=firewall, FirewallPolicyChangeProtection=True)
    nfw.delete_firewall_policy(FirewallPolicyArn=steps["fw.policy"]["outputs"]["policy_arn"])
    for arn in strict.values():
        nfw.delete_rule_group(RuleGroupArn=arn)
    steps["fw.policy"]["outputs"] = {"policy_arn": old_policy, "name": name("fw.policy")}
    steps["fw"]["outputs"] = {k: v for k, v in steps["fw"]["outputs"].items() if k in ("firewall_arn", "name", "status", "endpoints")}
    state["steps"] = [s for s in state["steps"] if s["id"] != "fw.rg.metastore"]
    state["facts"].pop(STRICT_FACT)
    state_path.write_text(json.dumps(state, indent=2))
    return firewall, old_policy


def test_the_firewall_drops_by_default_and_an_old_deployment_converges_in_place(sandbox, cli, tmp_path):
    """Strict rule order with a default drop, TCP 3306 only to the metastore; and a deployment made with the old
    (DEFAULT_ACTION_ORDER) policy converges to it on the same firewall."""
    began = time.monotonic()
    data = specs.example("hub-spoke")
    data["spokes"] = data["spokes"][:1]
    data["databricks"]["workspace_token"] = False
    spec = specs.write(tmp_path / "spec.toml", data)
    cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400)
    nfw = client(sandbox, "network-firewall")
    out = outputs(tmp_path)
    policy_arn = out["fw.policy"]["policy_arn"]
    policy = nfw.describe_firewall_policy(FirewallPolicyArn=policy_arn)["FirewallPolicy"]
    assert policy["StatefulEngineOptions"]["RuleOrder"] == "STRICT_ORDER"
    assert "aws:drop_established" in policy["StatefulDefaultActions"]
    assert nfw.describe_firewall(FirewallArn=out["fw"]["firewall_arn"])["Firewall"]["FirewallPolicyArn"] == policy_arn

    spoke = "10.20.0.15"
    metastore = sandbox_resolver(EGRESS_FACTS[data["region"]].metastore)[0]

    def passes(policy: str, flow: Flow) -> bool:
        return live_verdict(nfw, policy, flow) == PASS

    assert passes(policy_arn, Flow(spoke, metastore, 3306))
    assert not passes(policy_arn, Flow(spoke, "198.51.100.9", 3306))  # 3306 anywhere else
    assert live_verdict(nfw, policy_arn, Flow(spoke, "198.51.100.9", 8080)) == DROP  # a flow no rule names
    assert not passes(policy_arn, Flow(spoke, "198.51.100.9", 443, app="tls", host="exfil.example.net"))
    assert passes(policy_arn, Flow(spoke, "198.51.100.9", 443, app="tls", host="nvirginia.cloud.databricks.com"))
    assert passes(policy_arn, Flow(spoke, "198.51.100.9", 443, app="tls", host="files.pythonhosted.org"))

    firewall, old_policy = _downgrade_to_legacy_firewall(sandbox, tmp_path / "provision.state.json", data["name"])
    assert passes(old_policy, Flow(spoke, "198.51.100.9", 3306))  # the old policy let 3306 out to anywhere
    again = cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400)
    assert "fw: converged" in again.stdout and "fw.policy: converged" in again.stdout
    out = outputs(tmp_path)
    assert out["fw"]["firewall_arn"] == firewall  # not replaced
    new_policy = out["fw"]["policy_arn"]
    assert new_policy != old_policy and new_policy == out["fw.policy"]["policy_arn"]
    assert nfw.describe_firewall(FirewallArn=firewall)["Firewall"]["FirewallPolicyArn"] == new_policy
    assert passes(new_policy, Flow(spoke, metastore, 3306)) and not passes(new_policy, Flow(spoke, "198.51.100.9", 3306))
    assert firewall_inventory(sandbox) == {"firewall": 1, "firewall_policy": 1, "rule_group": 4}
    assert json.loads((tmp_path / "provision.state.json").read_text())["facts"][STRICT_FACT] is True
    rerun = cli("up", "--config", str(spec), "--sandbox", check=0, timeout=400)
    assert ": created" not in rerun.stdout and ": converged" not in rerun.stdout
    print(f"hub-spoke firewall acceptance: {time.monotonic() - began:.1f}s")
