"""The hub firewall in strict rule order, in the sandbox's AWS over HTTP with real boto3 clients.

1. Fidelity rules of network_firewall/ that AWS enforces (each test fails against plain moto 5.2.5, which has
   no rule groups, policies or associations, and against the sandbox without the rule): a rule order is fixed
   at creation; strict-order priorities are unique and in range; one stateful drop action at most;
   AssociateFirewallPolicy needs the firewall's policy-change protection off and keeps the firewall.
2. The topology's firewall steps, run by the engine: a deployment an older provision made (DEFAULT_ACTION_ORDER
   rule groups and policy, recorded in its state file) converges in place to the strict policy on the same
   firewall, and the state file stays truthful wherever the run stops: a teardown from any of those points
   leaves nothing.
"""

from __future__ import annotations

import random
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog
from botocore.exceptions import ClientError
from sandbox_helpers import aws_client, client_error, wait_until
from structlog.testing import CapturingLogger

from provision import topologies
from provision.clouds import error_rules
from provision.clouds.aws.sandbox.network_firewall.evaluate import (
    DROP,
    PASS,
    Flow,
    live_verdict,
)
from provision.clouds.aws.steps.firewall import STRICT_FACT
from provision.clouds.aws.steps.firewall_rules import sandbox_resolver
from provision.orchestrator.clients import SANDBOX, CallStats, Target
from provision.orchestrator.engine import Engine
from provision.orchestrator.failpoints import Failpoints
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import TAG_DEPLOYMENT, TAG_STEP, Context
from provision.orchestrator.wait import PollPolicy
from provision.sandbox.settings import SandboxSettings
from provision.state.store import StateFile, Status

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hub-spoke.toml"
REGION = "us-east-1"
FIREWALL_STEPS = ("hub.vpc", "hub.subnet.firewall.0", "hub.subnet.firewall.1", "fw.rg.deny", "fw.rg.controlplane",
                  "fw.rg.metastore", "fw.rg.domains", "fw.policy", "fw")


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    return SandboxSettings(firewall_provisioning_seconds=0.05, firewall_deleting_seconds=0.05, eni_release_seconds=0.05)


@pytest.fixture(scope="module")
def nfw(aws_url: str) -> Any:
    return aws_client("network-firewall", aws_url)


def strict(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "StatefulRuleOptions": {"RuleOrder": "STRICT_ORDER"}}


def group_body() -> dict[str, Any]:
    return {
        "RuleVariables": {"IPSets": {"HOME_NET": {"Definition": ["10.0.0.0/16"]}}},
        "RulesSource": {"RulesSourceList": {"Targets": [".example.com"], "TargetTypes": ["TLS_SNI"], "GeneratedRulesType": "ALLOWLIST"}},
    }


def make_group(nfw: Any, body: dict[str, Any]) -> str:
    name = f"rg-{uuid.uuid4().hex[:8]}"
    return nfw.create_rule_group(RuleGroupName=name, Type="STATEFUL", Capacity=10, RuleGroup=body)["RuleGroupResponse"]["RuleGroupArn"]


def strict_policy(*references: tuple[str, int], actions: list[str] | None = None) -> dict[str, Any]:
    return {
        "StatelessDefaultActions": ["aws:forward_to_sfe"], "StatelessFragmentDefaultActions": ["aws:forward_to_sfe"],
        "StatefulEngineOptions": {"RuleOrder": "STRICT_ORDER"},
        "StatefulDefaultActions": actions if actions is not None else ["aws:drop_established"],
        "StatefulRuleGroupReferences": [{"ResourceArn": arn, "Priority": p} for arn, p in references],
    }


def make_policy(nfw: Any, document: dict[str, Any]) -> str:
    name = f"policy-{uuid.uuid4().hex[:8]}"
    return nfw.create_firewall_policy(FirewallPolicyName=name, FirewallPolicy=document)["FirewallPolicyResponse"]["FirewallPolicyArn"]


# --- 1. fidelity -----------------------------------------------------------------------------------------


def test_a_rule_groups_rule_order_cannot_change(nfw: Any) -> None:
    arn = make_group(nfw, group_body())
    token = nfw.describe_rule_group(RuleGroupArn=arn)["UpdateToken"]
    error = client_error(nfw.update_rule_group, UpdateToken=token, RuleGroupArn=arn, RuleGroup=strict(group_body()))
    assert (error["Code"], error["Message"]) == ("InvalidRequestException", "parameter is invalid, parameter: [STRICT_ORDER]")
    # The body itself may change, within the same order.
    changed = group_body()
    changed["RulesSource"]["RulesSourceList"]["Targets"] = [".example.org"]
    nfw.update_rule_group(UpdateToken=token, RuleGroupArn=arn, RuleGroup=changed)


def test_a_policys_rule_order_cannot_change(nfw: Any) -> None:
    default_group = make_group(nfw, group_body())
    name = f"policy-{uuid.uuid4().hex[:8]}"
    legacy = {"StatelessDefaultActions": ["aws:forward_to_sfe"], "StatelessFragmentDefaultActions": ["aws:forward_to_sfe"],
              "StatefulRuleGroupReferences": [{"ResourceArn": default_group}]}
    arn = nfw.create_firewall_policy(FirewallPolicyName=name, FirewallPolicy=legacy)["FirewallPolicyResponse"]["FirewallPolicyArn"]
    token = nfw.describe_firewall_policy(FirewallPolicyArn=arn)["UpdateToken"]
    error = client_error(nfw.update_firewall_policy, UpdateToken=token, FirewallPolicyArn=arn,
                         FirewallPolicy=strict_policy((make_group(nfw, strict(group_body())), 100)))
    assert (error["Code"], error["Message"]) == ("InvalidRequestException", "parameter is invalid, parameter: [STRICT_ORDER]")


@pytest.mark.parametrize("priorities", [(100, 100), (100, 65536)], ids=["duplicate", "above 65535"])
def test_strict_priorities_are_unique_and_in_range(nfw: Any, priorities: tuple[int, int]) -> None:
    groups = [make_group(nfw, strict(group_body())) for _ in priorities]
    document = strict_policy(*zip(groups, priorities))
    error = client_error(nfw.create_firewall_policy, FirewallPolicyName=f"p-{uuid.uuid4().hex[:8]}", FirewallPolicy=document)
    assert error["Code"] == "InvalidRequestException" and "Priority" in error["Message"]


@pytest.mark.parametrize("actions", [["aws:drop_strict", "aws:drop_established"], ["aws:deny"]], ids=["two drops", "unknown"])
def test_stateful_default_actions_are_checked(nfw: Any, actions: list[str]) -> None:
    document = strict_policy((make_group(nfw, strict(group_body())), 100), actions=actions)
    error = client_error(nfw.create_firewall_policy, FirewallPolicyName=f"p-{uuid.uuid4().hex[:8]}", FirewallPolicy=document)
    assert error["Code"] == "InvalidRequestException" and "StatefulDefaultActions" in error["Message"]
    # A drop and an alert together are valid.
    make_policy(nfw, strict_policy((make_group(nfw, strict(group_body())), 100), actions=["aws:drop_established", "aws:alert_established"]))


def test_associate_policy_needs_change_protection_off_and_keeps_the_firewall(ec2: Any, nfw: Any) -> None:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/28", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    old = make_policy(nfw, strict_policy((make_group(nfw, strict(group_body())), 100)))
    new = make_policy(nfw, strict_policy((make_group(nfw, strict(group_body())), 100)))
    created = nfw.create_firewall(FirewallName=f"fw-{uuid.uuid4().hex[:8]}", FirewallPolicyArn=old, VpcId=vpc,
                                  SubnetMappings=[{"SubnetId": subnet}], DeleteProtection=False)
    firewall = created["Firewall"]["FirewallArn"]
    wait_until(lambda: nfw.describe_firewall(FirewallArn=firewall)["FirewallStatus"]["Status"] == "READY")
    described = nfw.describe_firewall(FirewallArn=firewall)
    endpoints = described["FirewallStatus"]["SyncStates"]
    assert described["Firewall"]["FirewallPolicyChangeProtection"] is True  # on unless turned off

    error = client_error(nfw.associate_firewall_policy, FirewallArn=firewall, FirewallPolicyArn=new)
    assert error["Code"] == "InvalidOperationException" and "FirewallPolicyChangeProtection" in error["Message"]
    token = nfw.update_firewall_policy_change_protection(
        UpdateToken=described["UpdateToken"], FirewallArn=firewall, FirewallPolicyChangeProtection=False)["UpdateToken"]
    assert client_error(nfw.associate_firewall_policy, UpdateToken=described["UpdateToken"], FirewallArn=firewall,
                        FirewallPolicyArn=new)["Code"] == "InvalidTokenException"
    assert client_error(nfw.associate_firewall_policy, FirewallArn=firewall,
                        FirewallPolicyArn=new + "-missing")["Code"] == "ResourceNotFoundException"
    answer = nfw.associate_firewall_policy(UpdateToken=token, FirewallArn=firewall, FirewallPolicyArn=new)
    assert answer["FirewallPolicyArn"] == new and answer["FirewallArn"] == firewall

    after = nfw.describe_firewall(FirewallArn=firewall)
    assert after["Firewall"]["FirewallPolicyArn"] == new and after["FirewallStatus"]["SyncStates"] == {
        zone: {**state, "Config": after["FirewallStatus"]["SyncStates"][zone]["Config"]} for zone, state in endpoints.items()
    }
    # The policy it left is no longer in use; the one it took is.
    assert client_error(nfw.delete_firewall_policy, FirewallPolicyArn=new)["Code"] == "InvalidOperationException"
    nfw.delete_firewall_policy(FirewallPolicyArn=old)


# --- 2. the topology's firewall steps, run by the engine ----------------------------------------------------------


class SandboxClients:
    """`ctx.clients["aws"].client(service)`: boto3 clients of the in-process sandbox; `fail` makes the next calls
    of an operation raise, as a run that dies there would; `lose` loses the answers of the next calls of an
    operation (applied, then a 503)."""

    def __init__(self, url: str) -> None:
        self.url, self.stats, self.target, self._made = url, CallStats(), Target(SANDBOX), {}
        self.writes: list[str] = []
        self.fail: dict[str, int] = {}
        self.lose: dict[str, int] = {}

    def __getitem__(self, cloud: str) -> Any:
        assert cloud == "aws", cloud
        return self

    def client(self, service: str) -> Any:
        if service not in self._made:
            made = self._made[service] = aws_client(service, self.url)
            made.meta.events.register("before-call.*.*", self._before)
            made.meta.events.register("after-call.*.*", self._after)
        return self._made[service]

    def _after(self, model: Any, **_: Any) -> None:
        if self.lose.get(model.name):
            self.lose[model.name] -= 1
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "answer lost"},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}, model.name)

    def _before(self, model: Any, **_: Any) -> None:
        if not model.name.startswith(("Describe", "List")):
            self.writes.append(model.name)
        if self.fail.get(model.name):
            self.fail[model.name] -= 1
            raise RuntimeError(f"the run died at {model.name}")


class Hub:
    """The hub-spoke topology's firewall steps (and the VPC and subnets they stand in), one state file."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        data = tomllib.loads(EXAMPLE.read_text())
        data["name"] = f"fw-{uuid.uuid4().hex[:8]}"
        self.spec = topologies.from_dict(data, str(EXAMPLE))
        self.steps = [s for s in topologies.build(self.spec) if s.id in FIREWALL_STEPS]
        self.path, self.url = tmp_path / "state.json", url
        self.clients = SandboxClients(url)

    def state(self) -> StateFile:
        if self.path.exists():
            return StateFile.load(self.path)
        return StateFile.new(self.path, deployment=self.spec.name, cloud="aws", target="sandbox", spec=self.spec.to_json(), spec_path=None)

    def engine(self, steps: list[Any] | None = None, failpoints: str | None = None) -> Engine:
        self.clients = SandboxClients(self.url)
        ctx = Context(
            spec=self.spec, clients=self.clients,  # type: ignore[arg-type]
            retry=RetryPolicy(deadline_seconds=5, initial_seconds=0.01, max_seconds=0.05, rng=random.Random(1), errors=error_rules()),
            poll=PollPolicy(initial_seconds=0.01, factor=2, max_seconds=0.05, timeout_seconds=5, visibility_seconds=0),
            log=structlog.wrap_logger(CapturingLogger(), processors=[]),
        )
        return Engine(steps or self.steps, self.state(), ctx, parallelism=1, failpoints=Failpoints(failpoints))

    def records(self) -> dict[str, Any]:
        return StateFile.load(self.path).steps

    def name(self, step_id: str) -> str:
        return f"{self.spec.name}-{step_id}".replace(".", "-")

    def tags(self, step_id: str) -> list[dict[str, str]]:
        return [{"Key": TAG_DEPLOYMENT, "Value": self.spec.name}, {"Key": TAG_STEP, "Value": step_id}]

    def ours(self, nfw: Any) -> dict[str, list[str]]:
        """This deployment's rule groups, policies and firewalls by name, as the service lists them."""
        listed = {
            "rule_groups": [g["Name"] for g in nfw.list_rule_groups()["RuleGroups"]],
            "policies": [p["Name"] for p in nfw.list_firewall_policies()["FirewallPolicies"]],
            "firewalls": [f["FirewallName"] for f in nfw.list_firewalls()["Firewalls"]],
        }
        return {kind: sorted(n for n in names if n.startswith(self.spec.name)) for kind, names in listed.items()}


@pytest.fixture
def hub(tmp_path: Path, aws_url: str) -> Hub:
    return Hub(tmp_path, aws_url)


def legacy_bodies(hub: Hub) -> dict[str, dict[str, Any]]:
    """The DEFAULT_ACTION_ORDER rule groups an older provision made (its documents, without a rule order)."""
    home = {"RuleVariables": {"IPSets": {"HOME_NET": {"Definition": ["10.10.0.0/24", "10.20.0.0/16", "10.30.0.0/16"]}}}}

    def rule(action: str, protocol: str, destination: str, port: str, sid: int, direction: str = "FORWARD") -> dict[str, Any]:
        header = {"Protocol": protocol, "Source": "ANY", "SourcePort": "ANY", "Direction": direction, "Destination": destination, "DestinationPort": port}
        return {"Action": action, "Header": header, "RuleOptions": [{"Keyword": "sid", "Settings": [str(sid)]}]}

    hub_spec = hub.spec.hub
    return {
        "fw.rg.domains": {**home, "RulesSource": {"RulesSourceList": {
            "Targets": [hub_spec.web_app_host, hub_spec.relay_host, hub_spec.metastore_host, *hub_spec.allowed_domains],
            "TargetTypes": ["TLS_SNI", "HTTP_HOST"], "GeneratedRulesType": "ALLOWLIST"}}},
        "fw.rg.deny": {**home, "RulesSource": {"StatefulRules": [rule("DROP", p, "ANY", "ANY", i + 1, "ANY") for i, p in enumerate(("ICMP", "FTP", "SSH"))]}},
        "fw.rg.controlplane": {**home, "RulesSource": {"StatefulRules": [rule("PASS", "TCP", hub_spec.control_plane_cidr, "443", 1)]}},
    }


def build_legacy(hub: Hub, nfw: Any) -> dict[str, str]:
    """The VPC and subnets by the engine, then the firewall as an older provision built it, recorded in the state
    file as it recorded it. The legacy firewall's ARN, by step id."""
    hub.engine([s for s in hub.steps if s.id.startswith("hub.")]).up()
    state, made = hub.state(), {}
    for step_id, body in legacy_bodies(hub).items():
        name = hub.name(step_id)
        made[step_id] = nfw.create_rule_group(RuleGroupName=name, Type="STATEFUL", Capacity=100, RuleGroup=body,
                                              Tags=hub.tags(step_id))["RuleGroupResponse"]["RuleGroupArn"]
        state.ensure_steps([(step_id, "network_firewall.rule_group")])
        state.update(step_id, status=Status.DONE, create_attempted=True, attempts=1,
                     outputs={"rule_group_arn": made[step_id], "name": name, "digest": "legacy"})
    document = {"StatelessDefaultActions": ["aws:forward_to_sfe"], "StatelessFragmentDefaultActions": ["aws:forward_to_sfe"],
                "StatefulRuleGroupReferences": [{"ResourceArn": made[s]} for s in ("fw.rg.domains", "fw.rg.deny", "fw.rg.controlplane")]}
    made["fw.policy"] = nfw.create_firewall_policy(FirewallPolicyName=hub.name("fw.policy"), FirewallPolicy=document,
                                                   Tags=hub.tags("fw.policy"))["FirewallPolicyResponse"]["FirewallPolicyArn"]
    state.ensure_steps([("fw.policy", "network_firewall.firewall_policy"), ("fw", "network_firewall.firewall")])
    state.update("fw.policy", status=Status.DONE, create_attempted=True, attempts=1, outputs={"policy_arn": made["fw.policy"], "name": hub.name("fw.policy")})
    subnets = [state.record(f"hub.subnet.firewall.{i}").outputs["subnet_id"] for i in (0, 1)]
    created = nfw.create_firewall(FirewallName=hub.name("fw"), FirewallPolicyArn=made["fw.policy"], VpcId=state.record("hub.vpc").outputs["vpc_id"],
                                  SubnetMappings=[{"SubnetId": s} for s in subnets], DeleteProtection=False, Tags=hub.tags("fw"))
    made["fw"] = created["Firewall"]["FirewallArn"]
    wait_until(lambda: nfw.describe_firewall(FirewallArn=made["fw"])["FirewallStatus"]["Status"] == "READY")
    endpoints = {z: s["Attachment"]["EndpointId"] for z, s in nfw.describe_firewall(FirewallArn=made["fw"])["FirewallStatus"]["SyncStates"].items()}
    state.update("fw", status=Status.DONE, create_attempted=True, attempts=1,
                 outputs={"firewall_arn": made["fw"], "name": hub.name("fw"), "status": "READY", "endpoints": endpoints})
    return made


def assert_torn_down(hub: Hub, nfw: Any) -> None:
    hub.engine().teardown()
    assert hub.ours(nfw) == {"rule_groups": [], "policies": [], "firewalls": []}
    assert all(r.status in (Status.DELETED, Status.PENDING) for r in hub.records().values())


def test_a_new_firewall_is_strict_and_passes_3306_only_to_the_metastore(hub: Hub, nfw: Any) -> None:
    out = hub.engine().up()
    policy = nfw.describe_firewall_policy(FirewallPolicyArn=out["fw.policy"]["policy_arn"])["FirewallPolicy"]
    assert policy["StatefulEngineOptions"] == {"RuleOrder": "STRICT_ORDER"}
    assert policy["StatefulDefaultActions"] == ["aws:drop_established", "aws:alert_established"]
    assert [r["Priority"] for r in policy["StatefulRuleGroupReferences"]] == [100, 200, 300, 400]
    metastore = sandbox_resolver(hub.spec.hub.metastore_host)[0]
    source, arn = "10.20.0.10", out["fw.policy"]["policy_arn"]
    assert live_verdict(nfw, arn, Flow(source, metastore, 3306)) == PASS
    assert live_verdict(nfw, arn, Flow(source, "198.51.100.7", 3306)) == DROP
    assert out["fw"]["policy_arn"] == arn and hub.state().facts[STRICT_FACT] is True
    assert all(out[s]["legacy_arn"] is None for s in ("fw.policy", "fw.rg.deny", "fw.rg.domains"))

    # A rerun reads, and writes nothing.
    hub.engine().up()
    assert hub.clients.writes == []
    assert_torn_down(hub, nfw)


def test_an_old_deployment_converges_in_place_and_its_state_stays_truthful(hub: Hub, nfw: Any) -> None:
    legacy = build_legacy(hub, nfw)
    old_policy = legacy["fw.policy"]
    assert live_verdict(nfw, old_policy, Flow("10.20.0.10", "198.51.100.7", 3306)) == PASS  # what the old policy let out

    # The run dies after the strict policy is recorded, before the firewall moves: both generations are recorded.
    # On the way, the answers to creating a strict group and the strict policy are lost: each is found again.
    engine = hub.engine(failpoints="fw.policy:after_checkpoint=error")
    hub.clients.lose = {"CreateRuleGroup": 1, "CreateFirewallPolicy": 1}
    with pytest.raises(Exception, match="fw.policy:after_checkpoint"):
        engine.up()
    assert hub.clients.lose == {"CreateRuleGroup": 0, "CreateFirewallPolicy": 0}
    records = hub.records()
    assert records["fw.policy"].outputs["legacy_arn"] == old_policy and records["fw.policy"].outputs["policy_arn"] != old_policy
    assert records["fw.rg.deny"].outputs["legacy_arn"] == legacy["fw.rg.deny"]
    assert nfw.describe_firewall(FirewallArn=legacy["fw"])["Firewall"]["FirewallPolicyArn"] == old_policy

    # The next run moves the same firewall, then dies while deleting the old rule groups.
    engine = hub.engine()
    hub.clients.fail = {"DeleteRuleGroup": 1}
    with pytest.raises(Exception, match="DeleteRuleGroup"):
        engine.up()
    described = nfw.describe_firewall(FirewallArn=legacy["fw"])["Firewall"]
    new_policy = hub.records()["fw.policy"].outputs["policy_arn"]
    assert described["FirewallPolicyArn"] == new_policy and described["FirewallPolicyChangeProtection"] is True
    assert STRICT_FACT not in hub.state().facts

    # Then it finishes: the same firewall, strict policy, the old resources gone, and a later run clears legacy_arn.
    out = hub.engine().up()
    assert out["fw"]["firewall_arn"] == legacy["fw"] and out["fw"]["policy_arn"] == new_policy
    assert hub.ours(nfw) == {
        "rule_groups": sorted(f"{hub.name(s)}-strict" for s in ("fw.rg.deny", "fw.rg.controlplane", "fw.rg.metastore", "fw.rg.domains")),
        "policies": [f"{hub.name('fw.policy')}-strict"], "firewalls": [hub.name("fw")],
    }
    hub.engine().up()
    assert hub.clients.writes == []
    assert all(not record.outputs.get("legacy_arn") for record in hub.records().values())
    assert_torn_down(hub, nfw)


@pytest.mark.parametrize("stop", ["never migrated", "strict groups made", "firewall moved"])
def test_a_teardown_from_any_point_of_the_migration_leaves_nothing(hub: Hub, nfw: Any, stop: str) -> None:
    legacy = build_legacy(hub, nfw)
    if stop == "strict groups made":
        with pytest.raises(Exception, match="fw.rg.domains:after_checkpoint"):
            hub.engine(failpoints="fw.rg.domains:after_checkpoint=error").up()
    elif stop == "firewall moved":
        engine = hub.engine()
        hub.clients.fail = {"DeleteFirewallPolicy": 1}
        with pytest.raises(Exception, match="DeleteFirewallPolicy"):
            engine.up()
        assert nfw.describe_firewall(FirewallArn=legacy["fw"])["Firewall"]["FirewallPolicyArn"] != legacy["fw.policy"]
    assert_torn_down(hub, nfw)
