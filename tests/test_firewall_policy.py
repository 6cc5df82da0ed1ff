"""The hub firewall's documents as the hub-spoke topology builds them, and what they let through.

Pure: the rule groups and the policy come from the topology's own steps (no AWS), and the verdicts from the
sandbox's evaluation model (provision/clouds/aws/sandbox/network_firewall/evaluate.py).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
import specs

from provision import topologies
from provision.clouds.aws.sandbox.network_firewall.evaluate import (
    DROP,
    PASS,
    Flow,
    verdict,
)
from provision.clouds.aws.steps.firewall import (
    STATEFUL_DEFAULT_ACTIONS,
    FirewallPolicy,
    RuleGroup,
)
from provision.clouds.aws.steps.firewall_rules import (
    DATABRICKS_DOMAIN,
    SANDBOX_NET,
    MetastoreRules,
    dns_resolver,
    sandbox_resolver,
)
from provision.errors import ProvisionError, SpecError
from provision.orchestrator.clients import REAL, SANDBOX, Target
from provision.orchestrator.step import Context
from provision.regions import EGRESS_FACTS

FACTS = EGRESS_FACTS["us-east-1"]
SPOKE = "10.20.0.15"  # a host in the example's first spoke
ELSEWHERE = "198.51.100.9"


class Clients:
    def __init__(self, kind: str) -> None:
        self.target = Target(kind)


def context(spec: Any, kind: str = SANDBOX, outputs: dict[str, Any] | None = None) -> Context:
    return Context(spec=spec, clients=Clients(kind), retry=None, poll=None, log=None, outputs=outputs or {})  # type: ignore[arg-type]


def hub_spec(**firewall: Any) -> Any:
    data = specs.example("hub-spoke")
    data["firewall"] = {**data.get("firewall", {}), **firewall}
    return topologies.from_dict(data, "hub-spoke.toml")


def built(spec: Any, kind: str = SANDBOX) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    """The policy document and its rule groups (by ARN) the topology's steps would send; the groups' step ids."""
    steps = {s.id: s for s in topologies.build(spec)}
    policy_step = steps["fw.policy"]
    assert isinstance(policy_step, FirewallPolicy)
    ids = [ref.step for ref in policy_step.rule_group_arns]
    ctx = context(spec, kind, {sid: {"rule_group_arn": f"arn:aws:network-firewall:us-east-1:1:stateful-rulegroup/{sid}"} for sid in ids})
    groups = {}
    for sid in ids:
        step = steps[sid]
        assert isinstance(step, RuleGroup)
        groups[ctx.outputs[sid]["rule_group_arn"]] = step.body(ctx)
    return policy_step.document(ctx), groups, ids


@pytest.fixture(scope="module")
def example() -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    return built(hub_spec())


# --- the documents -----------------------------------------------------------------------------------------


def test_the_policy_is_strict_order_with_a_default_drop(example: Any) -> None:
    policy, groups, ids = example
    assert policy["StatefulEngineOptions"] == {"RuleOrder": "STRICT_ORDER"}
    assert policy["StatefulDefaultActions"] == STATEFUL_DEFAULT_ACTIONS == ["aws:drop_established", "aws:alert_established"]
    assert policy["StatelessDefaultActions"] == policy["StatelessFragmentDefaultActions"] == ["aws:forward_to_sfe"]
    # Deny first; the control plane and the metastore by address before the domain list, which drops other TLS.
    assert ids == ["fw.rg.deny", "fw.rg.controlplane", "fw.rg.metastore", "fw.rg.domains"]
    assert [r["Priority"] for r in policy["StatefulRuleGroupReferences"]] == [100, 200, 300, 400]
    assert all(g["StatefulRuleOptions"] == {"RuleOrder": "STRICT_ORDER"} for g in groups.values())
    homes = {tuple(g["RuleVariables"]["IPSets"]["HOME_NET"]["Definition"]) for g in groups.values()}
    assert homes == {("10.10.0.0/24", "10.20.0.0/16", "10.30.0.0/16")}


def test_the_rule_groups_say_what_sra_says(example: Any) -> None:
    _, groups, ids = example
    deny, controlplane, metastore, domains = (groups[f"arn:aws:network-firewall:us-east-1:1:stateful-rulegroup/{sid}"] for sid in ids)
    listing = domains["RulesSource"]["RulesSourceList"]
    assert listing["GeneratedRulesType"] == "ALLOWLIST" and listing["TargetTypes"] == ["TLS_SNI", "HTTP_HOST"]
    assert {FACTS.web_app, FACTS.relay, DATABRICKS_DOMAIN, ".pypi.org"} <= set(listing["Targets"])
    assert FACTS.metastore not in listing["Targets"]  # 3306 is the metastore group's: MySQL names no SNI
    assert [(r["Action"], r["Header"]["Protocol"]) for r in deny["RulesSource"]["StatefulRules"]] == [
        ("DROP", "ICMP"), ("DROP", "FTP"), ("DROP", "SSH"), ("DROP", "UDP")]
    assert [(r["Action"], r["Header"]["Destination"], r["Header"]["DestinationPort"]) for r in controlplane["RulesSource"]["StatefulRules"]] == [
        ("PASS", FACTS.control_plane_cidr, "443")]
    address = sandbox_resolver(FACTS.metastore)[0]
    assert [(r["Action"], r["Header"]["Protocol"], r["Header"]["Destination"], r["Header"]["DestinationPort"], r["Header"]["Direction"])
            for r in metastore["RulesSource"]["StatefulRules"]] == [
        ("PASS", "TCP", f"{address}/32", "3306", "FORWARD"), ("DROP", "TCP", "ANY", "3306", "FORWARD")]
    for group in (deny, controlplane, metastore):
        sids = [r["RuleOptions"][0]["Settings"][0] for r in group["RulesSource"]["StatefulRules"]]
        assert len(set(sids)) == len(sids)


# --- the metastore's addresses ---------------------------------------------------------------------------------


def test_the_metastore_host_is_resolved_at_run_time_by_an_injectable_resolver() -> None:
    asked: list[str] = []

    def resolver(host: str) -> list[str]:
        asked.append(host)
        return ["52.0.0.9", "2600:1f18::1", "52.0.0.7", "52.0.0.9"]

    rules = MetastoreRules("md.example.rds.amazonaws.com", ["10.0.0.0/16"], resolver=resolver)
    assert rules.resolve(context(None, REAL)) == ["52.0.0.7", "52.0.0.9"]  # IPv4 only, sorted, once each
    assert asked == ["md.example.rds.amazonaws.com"]
    # Without one: the sandbox's fixed answer on a sandbox target, this machine's DNS on a real one.
    rules = MetastoreRules("md.example.rds.amazonaws.com", ["10.0.0.0/16"])
    (address,) = rules.resolve(context(None, SANDBOX))
    assert ipaddress.ip_address(address) in SANDBOX_NET and [address] == sandbox_resolver("MD.example.rds.amazonaws.com")


def test_the_real_resolver_asks_dns_for_a_records(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def getaddrinfo(host: str, port: int, family: int = 0, type: int = 0) -> list[Any]:
        calls.append((host, port, family, type))
        return [(family, type, 6, "", ("52.1.2.3", port)), (family, type, 6, "", ("52.1.2.4", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert dns_resolver("md.example") == ["52.1.2.3", "52.1.2.4"]
    assert calls == [("md.example", 3306, socket.AF_INET, socket.SOCK_STREAM)]
    assert MetastoreRules("md.example", ["10.0.0.0/16"]).resolve(context(None, REAL)) == ["52.1.2.3", "52.1.2.4"]


@pytest.mark.parametrize("answer", [socket.gaierror(-2, "Name or service not known"), []], ids=["unresolvable", "no IPv4"])
def test_an_unresolvable_metastore_fails_the_step_and_names_the_override(answer: Any) -> None:
    def resolver(host: str) -> list[str]:
        if isinstance(answer, Exception):
            raise answer
        return answer

    with pytest.raises(ProvisionError, match="firewall.metastore_addresses"):
        MetastoreRules("md.example", ["10.0.0.0/16"], resolver=resolver).resolve(context(None, REAL))


def test_spec_addresses_replace_resolution() -> None:
    policy, groups, ids = built(hub_spec(metastore_addresses=["52.4.4.4", "52.3.3.3"]), kind=REAL)  # no DNS asked
    metastore = groups[f"arn:aws:network-firewall:us-east-1:1:stateful-rulegroup/{ids[2]}"]
    assert [r["Header"]["Destination"] for r in metastore["RulesSource"]["StatefulRules"]] == ["52.3.3.3/32", "52.4.4.4/32", "ANY"]
    assert verdict(policy, groups, Flow(SPOKE, "52.4.4.4", 3306)) == PASS
    assert verdict(policy, groups, Flow(SPOKE, sandbox_resolver(FACTS.metastore)[0], 3306)) == DROP


@pytest.mark.parametrize(("value", "field"), [
    (["52.1.1.1/32"], "firewall.metastore_addresses[0]"),
    (["10.1.2.3"], "firewall.metastore_addresses[0]"),
    ([], "firewall.metastore_addresses"),
    ([f"52.1.1.{i}" for i in range(21)], "firewall.metastore_addresses"),
    ("52.1.1.1", "firewall.metastore_addresses"),
], ids=["a CIDR", "private", "empty", "too many", "not a list"])
def test_bad_metastore_addresses_name_the_field(value: Any, field: str) -> None:
    with pytest.raises(SpecError) as info:
        hub_spec(metastore_addresses=value)
    assert field in [p.field for p in info.value.problems]


# --- what passes -------------------------------------------------------------------------------------------------


FLOWS = {
    "TCP 3306 to the metastore": (Flow(SPOKE, sandbox_resolver(FACTS.metastore)[0], 3306), PASS),
    "TCP 3306 anywhere else": (Flow(SPOKE, ELSEWHERE, 3306), DROP),
    "TLS to the workspace web app": (Flow(SPOKE, ELSEWHERE, 443, app="tls", host=FACTS.web_app), PASS),
    "TLS to the relay": (Flow(SPOKE, ELSEWHERE, 443, app="tls", host=FACTS.relay), PASS),
    "TLS to another Databricks host": (Flow(SPOKE, ELSEWHERE, 8443, app="tls", host="accounts.cloud.databricks.com"), PASS),
    "TLS to an allowed domain's subdomain": (Flow(SPOKE, ELSEWHERE, 443, app="tls", host="files.pythonhosted.org"), PASS),
    "HTTP to a sibling of an allowed domain": (Flow(SPOKE, ELSEWHERE, 80, app="http", host="cloud.r-project.org"), DROP),
    "HTTP to an allowed domain": (Flow(SPOKE, ELSEWHERE, 80, app="http", host="cran.r-project.org"), PASS),
    "TLS to the control plane's addresses": (Flow(SPOKE, "3.237.73.225", 443, app="tls", host="anything"), PASS),
    "TLS to a domain not listed": (Flow(SPOKE, ELSEWHERE, 443, app="tls", host="exfil.example.net"), DROP),
    "TLS without SNI": (Flow(SPOKE, ELSEWHERE, 443, app="tls"), DROP),
    "HTTP to a domain not listed": (Flow(SPOKE, ELSEWHERE, 80, app="http", host="exfil.example.net"), DROP),
    "raw TCP no rule names": (Flow(SPOKE, ELSEWHERE, 8080), DROP),
    "SSH out": (Flow(SPOKE, ELSEWHERE, 22, app="ssh"), DROP),
    "UDP out": (Flow(SPOKE, ELSEWHERE, 53, protocol="UDP"), DROP),
    "ICMP out": (Flow(SPOKE, ELSEWHERE, 0, protocol="ICMP"), DROP),
}


@pytest.mark.parametrize(("flow", "expected"), FLOWS.values(), ids=FLOWS.keys())
def test_only_what_the_allow_list_names_passes(example: Any, flow: Flow, expected: str) -> None:
    policy, groups, _ = example
    assert verdict(policy, groups, flow) == expected


def test_the_old_policy_passed_what_no_rule_dropped(example: Any) -> None:
    """The same rules in DEFAULT_ACTION_ORDER with no default drop (the policy before): 3306 and raw TCP go out."""
    policy, groups, _ = example
    legacy = {k: v for k, v in policy.items() if k not in ("StatefulEngineOptions", "StatefulDefaultActions")}
    legacy["StatefulRuleGroupReferences"] = [{"ResourceArn": r["ResourceArn"]} for r in policy["StatefulRuleGroupReferences"]]
    legacy_groups = {arn: {k: v for k, v in g.items() if k != "StatefulRuleOptions"} for arn, g in groups.items()}
    legacy_groups = {arn: g for arn, g in legacy_groups.items() if not arn.endswith("fw.rg.metastore")}
    legacy["StatefulRuleGroupReferences"] = [r for r in legacy["StatefulRuleGroupReferences"] if r["ResourceArn"] in legacy_groups]
    assert verdict(legacy, legacy_groups, Flow(SPOKE, ELSEWHERE, 3306)) == PASS
    assert verdict(legacy, legacy_groups, Flow(SPOKE, ELSEWHERE, 8080)) == PASS
    assert verdict(legacy, legacy_groups, Flow(SPOKE, ELSEWHERE, 443, app="tls", host="exfil.example.net")) == DROP


# --- the evaluation model ----------------------------------------------------------------------------------------


def _rule(action: str, protocol: str, port: str = "ANY", destination: str = "ANY", sid: int = 1) -> dict[str, Any]:
    header = {"Protocol": protocol, "Source": "ANY", "SourcePort": "ANY", "Direction": "FORWARD", "Destination": destination, "DestinationPort": port}
    return {"Action": action, "Header": header, "RuleOptions": [{"Keyword": "sid", "Settings": [str(sid)]}]}


def _one_group(rules: list[dict[str, Any]], defaults: list[str], order: str = "STRICT_ORDER") -> tuple[dict[str, Any], dict[str, Any]]:
    group = {"RuleVariables": {"IPSets": {"HOME_NET": {"Definition": ["10.0.0.0/8"]}}}, "RulesSource": {"StatefulRules": rules}}
    reference: dict[str, Any] = {"ResourceArn": "g"}
    policy: dict[str, Any] = {"StatelessDefaultActions": ["aws:forward_to_sfe"], "StatefulRuleGroupReferences": [reference]}
    if order == "STRICT_ORDER":
        reference["Priority"] = 1
        policy.update(StatefulEngineOptions={"RuleOrder": order}, StatefulDefaultActions=defaults)
    return policy, {"g": group}


def test_drop_strict_drops_the_handshake_drop_established_lets_it_through() -> None:
    tls = Flow(SPOKE, ELSEWHERE, 443, app="tls", host="a.example")
    allow_tls = [_rule("PASS", "TLS")]
    assert verdict(*_one_group(allow_tls, ["aws:drop_established"]), tls) == PASS
    assert verdict(*_one_group(allow_tls, ["aws:drop_strict"]), tls) == DROP  # no app protocol in a SYN yet
    # An unanswered UDP datagram is never established: drop_established alone lets it out.
    assert verdict(*_one_group([], ["aws:drop_established"]), Flow(SPOKE, ELSEWHERE, 53, protocol="UDP")) == PASS
    assert verdict(*_one_group([], ["aws:drop_strict"]), Flow(SPOKE, ELSEWHERE, 53, protocol="UDP")) == DROP


def test_strict_order_is_the_order_written_and_alert_goes_on() -> None:
    flow = Flow(SPOKE, ELSEWHERE, 3306)
    assert verdict(*_one_group([_rule("DROP", "TCP", "3306"), _rule("PASS", "TCP", sid=2)], []), flow) == DROP
    assert verdict(*_one_group([_rule("ALERT", "TCP", "3306"), _rule("PASS", "TCP", sid=2)], ["aws:drop_established"]), flow) == PASS
    # In action order a PASS wins wherever it is written.
    assert verdict(*_one_group([_rule("DROP", "TCP", "3306"), _rule("PASS", "TCP", sid=2)], [], "DEFAULT_ACTION_ORDER"), flow) == PASS


def test_what_the_model_cannot_judge_is_refused() -> None:
    policy, groups = _one_group([], ["aws:drop_established"])
    groups["g"]["RulesSource"] = {"RulesString": "pass tcp any any -> any any (sid:1;)"}
    with pytest.raises(NotImplementedError):
        verdict(policy, groups, Flow(SPOKE, ELSEWHERE, 1))
    policy, groups = _one_group([{**_rule("PASS", "TCP"), "RuleOptions": [{"Keyword": "flow", "Settings": ["to_server"]}]}], [])
    with pytest.raises(NotImplementedError):
        verdict(policy, groups, Flow(SPOKE, ELSEWHERE, 1))
