"""AWS Network Firewall in the sandbox (provision/clouds/aws/sandbox/network_firewall/), over HTTP with real boto3
clients: rule groups, firewall policies and firewalls, with their endpoints as real EC2 resources.

Every test here fails on plain moto 5.2.5, which implements only CreateFirewall, DescribeFirewall,
ListFirewalls and the logging configuration: each test needs a rule group or policy first (moto: a 500
"not implemented"), and the firewall tests need the endpoints and lifecycle moto lacks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from sandbox_helpers import aws_client, delays, held, once_released, wait_until

from provision.sandbox.settings import SandboxSettings

REGION = "us-east-1"
PROVISIONING = 0.2  # firewall_provisioning_seconds
DELETING = 0.2  # firewall_deleting_seconds
RELEASE = 0.1  # eni_release_seconds
ALLOW_ANY = ["aws:forward_to_sfe"]


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    return SandboxSettings(
        firewall_provisioning_seconds=PROVISIONING, firewall_deleting_seconds=DELETING, eni_release_seconds=RELEASE
    )


@pytest.fixture(scope="module")
def nfw(aws_url: str) -> Any:
    return aws_client("network-firewall", aws_url)


@pytest.fixture
def net(ec2: Any) -> dict[str, Any]:
    """A fresh VPC with a firewall subnet in each of two zones."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = {
        zone: ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/28", AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for i, zone in enumerate((f"{REGION}a", f"{REGION}b"))
    }
    return {"vpc": vpc, "subnets": subnets}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def client_error(call: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """The error, which the service reports with status 400."""
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return info.value.response["Error"]


def error_code(call: Callable[..., Any], **kwargs: Any) -> str:
    return client_error(call, **kwargs)["Code"]


def domains(home_net: list[str] | None = None, targets: list[str] | None = None) -> dict[str, Any]:
    return {
        "RuleVariables": {"IPSets": {"HOME_NET": {"Definition": home_net or ["10.0.0.0/16"]}}},
        "RulesSource": {
            "RulesSourceList": {
                "Targets": targets or [".example.com", "api.example.org"],
                "TargetTypes": ["TLS_SNI", "HTTP_HOST"],
                "GeneratedRulesType": "ALLOWLIST",
            }
        },
    }


def rule(action: str, protocol: str, sid: Any, destination: str = "ANY", port: str = "ANY") -> dict[str, Any]:
    header = {
        "Protocol": protocol, "Source": "ANY", "SourcePort": "ANY", "Direction": "FORWARD",
        "Destination": destination, "DestinationPort": port,
    }
    options = [{"Keyword": "sid", "Settings": [str(sid)]}] if isinstance(sid, int) else [{"Keyword": sid}]
    return {"Action": action, "Header": header, "RuleOptions": options}


def make_group(nfw: Any, body: dict[str, Any] | None = None, **kwargs: Any) -> str:
    args = {"RuleGroupName": unique("rg"), "Type": "STATEFUL", "Capacity": 100, "RuleGroup": body or domains()}
    return nfw.create_rule_group(**{**args, **kwargs})["RuleGroupResponse"]["RuleGroupArn"]


def policy_document(*group_arns: str, **extra: Any) -> dict[str, Any]:
    return {
        "StatelessDefaultActions": ALLOW_ANY,
        "StatelessFragmentDefaultActions": ALLOW_ANY,
        "StatefulRuleGroupReferences": [{"ResourceArn": arn} for arn in group_arns],
        **extra,
    }


def make_policy(nfw: Any, *group_arns: str) -> str:
    made = nfw.create_firewall_policy(FirewallPolicyName=unique("policy"), FirewallPolicy=policy_document(*group_arns))
    return made["FirewallPolicyResponse"]["FirewallPolicyArn"]


def make_firewall(nfw: Any, net: dict[str, Any], policy_arn: str | None = None, **kwargs: Any) -> dict[str, Any]:
    args = {
        "FirewallName": unique("fw"),
        "FirewallPolicyArn": policy_arn or make_policy(nfw, make_group(nfw)),
        "VpcId": net["vpc"],
        "SubnetMappings": [{"SubnetId": subnet} for subnet in net["subnets"].values()],
        "DeleteProtection": False,
    }
    return nfw.create_firewall(**{**args, **kwargs})


def status(nfw: Any, name: str) -> dict[str, Any]:
    return nfw.describe_firewall(FirewallName=name)["FirewallStatus"]


def ready(nfw: Any, name: str) -> dict[str, str]:
    """Wait for READY; the endpoint id per zone."""
    wait_until(lambda: status(nfw, name)["Status"] == "READY")
    states = status(nfw, name)["SyncStates"]
    return {zone: state["Attachment"]["EndpointId"] for zone, state in states.items()}


def gone(nfw: Any, name: str) -> bool:
    try:
        nfw.describe_firewall(FirewallName=name)
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "ResourceNotFoundException"
    return False


# --- rule 1: rule groups ---------------------------------------------------------------------------------


def test_rule_group_round_trips_by_name_and_by_arn(nfw: Any) -> None:
    name = unique("rg")
    tags = [{"Key": "provision:deployment", "Value": "dep"}]
    created = nfw.create_rule_group(
        RuleGroupName=name, Type="STATEFUL", Capacity=100, RuleGroup=domains(), Description="d", Tags=tags
    )
    response = created["RuleGroupResponse"]
    assert response["RuleGroupArn"] == f"arn:aws:network-firewall:{REGION}:123456789012:stateful-rulegroup/{name}"
    assert response["RuleGroupName"] == name and response["RuleGroupId"] and created["UpdateToken"]
    assert (response["Type"], response["Capacity"], response["RuleGroupStatus"]) == ("STATEFUL", 100, "ACTIVE")
    assert response["Tags"] == tags and response["Description"] == "d"

    by_name = nfw.describe_rule_group(RuleGroupName=name, Type="STATEFUL")
    by_arn = nfw.describe_rule_group(RuleGroupArn=response["RuleGroupArn"])
    assert by_name["RuleGroup"] == by_arn["RuleGroup"] == domains()
    assert by_name["RuleGroupResponse"] == by_arn["RuleGroupResponse"]
    assert by_name["UpdateToken"] == created["UpdateToken"]
    assert by_name["RuleGroupResponse"]["NumberOfAssociations"] == 0


def test_rule_group_takes_stateful_rules_or_a_suricata_string(nfw: Any) -> None:
    body = {
        "RuleVariables": {"IPSets": {"HOME_NET": {"Definition": ["10.0.0.0/16", "10.1.0.0/16"]}}},
        "RulesSource": {
            "StatefulRules": [rule("DROP", "SSH", 1), rule("PASS", "TCP", "sid:2", "203.0.113.0/24", "443")]
        },
        "StatefulRuleOptions": {"RuleOrder": "DEFAULT_ACTION_ORDER"},
    }
    arn = make_group(nfw, body)
    assert nfw.describe_rule_group(RuleGroupArn=arn)["RuleGroup"] == body

    rules = 'drop tcp $HOME_NET any -> any 22 (msg:"no ssh"; sid:1;)'
    name = unique("rg")
    nfw.create_rule_group(RuleGroupName=name, Type="STATEFUL", Capacity=10, Rules=rules)
    described = nfw.describe_rule_group(RuleGroupName=name, Type="STATEFUL")
    assert described["RuleGroup"]["RulesSource"] == {"RulesString": rules}
    assert described["RuleGroupResponse"]["ConsumedCapacity"] == 1


INVALID_GROUPS = {
    "both RuleGroup and Rules": {"RuleGroup": domains(), "Rules": "pass ip any any -> any any (sid:1;)"},
    "neither RuleGroup nor Rules": {"RuleGroup": None},
    "two kinds of source": {"RuleGroup": {"RulesSource": {**domains()["RulesSource"], "RulesString": "x"}}},
    "stateless rules in a stateful group": {
        "RuleGroup": {"RulesSource": {"StatelessRulesAndCustomActions": {"StatelessRules": []}}}
    },
    "stateful rules in a stateless group": {"Type": "STATELESS", "RuleGroup": domains()},
    "a stateful rule without sid": {"RuleGroup": {"RulesSource": {"StatefulRules": [
        {**rule("DROP", "SSH", 1), "RuleOptions": [{"Keyword": "msg", "Settings": ['"x"']}]}
    ]}}},
    "a duplicate sid": {
        "RuleGroup": {"RulesSource": {"StatefulRules": [rule("DROP", "SSH", 7), rule("DROP", "FTP", 7)]}}
    },
    "HOME_NET that is not a CIDR": {"RuleGroup": domains(home_net=["10.0.0.0/16", "not-a-cidr"])},
    "capacity 0": {"Capacity": 0},
    "capacity above 30000": {"Capacity": 30001},
}


@pytest.mark.parametrize("invalid", INVALID_GROUPS.values(), ids=INVALID_GROUPS.keys())
def test_invalid_rule_group_is_refused(nfw: Any, invalid: dict[str, Any]) -> None:
    base = {"RuleGroupName": unique("rg"), "Type": "STATEFUL", "Capacity": 100, "RuleGroup": domains()}
    args = {key: value for key, value in {**base, **invalid}.items() if value is not None}
    assert error_code(nfw.create_rule_group, **args) == "InvalidRequestException"
    assert error_code(nfw.describe_rule_group, RuleGroupName=args["RuleGroupName"], Type=args["Type"]) == (
        "ResourceNotFoundException"
    )


def test_rule_group_name_is_unique_per_type_and_lookups_need_the_type(nfw: Any) -> None:
    name = unique("rg")
    nfw.create_rule_group(RuleGroupName=name, Type="STATEFUL", Capacity=10, RuleGroup=domains())
    again = {"RuleGroupName": name, "Type": "STATEFUL", "Capacity": 10, "RuleGroup": domains()}
    assert error_code(nfw.create_rule_group, **again) == "InvalidRequestException"
    assert error_code(nfw.describe_rule_group, RuleGroupName=name) == "InvalidRequestException"  # no Type
    assert error_code(nfw.describe_rule_group, RuleGroupName=name, Type="STATELESS") == "ResourceNotFoundException"
    assert error_code(nfw.describe_rule_group, RuleGroupArn=f"arn:aws:network-firewall:{REGION}:123456789012:"
                      "stateful-rulegroup/nope") == "ResourceNotFoundException"


def test_list_rule_groups_filters_on_type_and_pages(nfw: Any) -> None:
    stateless = {
        "RulesSource": {"StatelessRulesAndCustomActions": {"StatelessRules": [{
            "Priority": 1,
            "RuleDefinition": {"MatchAttributes": {"Protocols": [6]}, "Actions": ["aws:forward_to_sfe"]},
        }]}}
    }
    stateless_arn = make_group(nfw, stateless, Type="STATELESS")
    assert ":stateless-rulegroup/" in stateless_arn
    stateful_arns = {make_group(nfw) for _ in range(3)}

    listed = nfw.list_rule_groups(Type="STATELESS")["RuleGroups"]
    assert stateless_arn in [g["Arn"] for g in listed] and not stateful_arns & {g["Arn"] for g in listed}
    assert nfw.list_rule_groups(Scope="MANAGED")["RuleGroups"] == []

    seen, token = [], None
    while True:
        page = nfw.list_rule_groups(Type="STATEFUL", MaxResults=2, **({"NextToken": token} if token else {}))
        assert len(page["RuleGroups"]) <= 2
        seen += [g["Arn"] for g in page["RuleGroups"]]
        token = page.get("NextToken")
        if not token:
            break
    assert stateful_arns <= set(seen) and len(seen) == len(set(seen))


# --- rule 2: update tokens -------------------------------------------------------------------------------


def test_update_rule_group_needs_the_current_token(nfw: Any) -> None:
    arn = make_group(nfw)
    first = nfw.describe_rule_group(RuleGroupArn=arn)
    changed = domains(targets=[".databricks.com"])
    assert error_code(
        nfw.update_rule_group, UpdateToken="not-the-token", RuleGroupArn=arn, Type="STATEFUL", RuleGroup=changed
    ) == "InvalidTokenException"

    updated = nfw.update_rule_group(
        UpdateToken=first["UpdateToken"], RuleGroupArn=arn, Type="STATEFUL", RuleGroup=changed
    )
    assert updated["UpdateToken"] != first["UpdateToken"]
    described = nfw.describe_rule_group(RuleGroupArn=arn)
    assert described["RuleGroup"] == changed and described["UpdateToken"] == updated["UpdateToken"]
    # The token just used is stale now: a concurrent writer loses instead of overwriting.
    assert error_code(
        nfw.update_rule_group, UpdateToken=first["UpdateToken"], RuleGroupArn=arn, RuleGroup=domains()
    ) == "InvalidTokenException"
    assert error_code(
        nfw.update_rule_group, UpdateToken=updated["UpdateToken"], RuleGroupArn=arn,
        RuleGroup=domains(), Rules="pass ip any any -> any any (sid:1;)",
    ) == "InvalidRequestException"


# --- rules 3 and 4: policies, references, in use ----------------------------------------------------------


def test_firewall_policy_round_trips_and_updates_with_its_token(nfw: Any) -> None:
    first, second = make_group(nfw), make_group(nfw)
    name = unique("policy")
    document = policy_document(first)
    created = nfw.create_firewall_policy(
        FirewallPolicyName=name, FirewallPolicy=document, Tags=[{"Key": "k", "Value": "v"}]
    )
    response = created["FirewallPolicyResponse"]
    assert response["FirewallPolicyArn"] == f"arn:aws:network-firewall:{REGION}:123456789012:firewall-policy/{name}"
    assert response["FirewallPolicyStatus"] == "ACTIVE" and response["Tags"] == [{"Key": "k", "Value": "v"}]
    assert response["ConsumedStatefulRuleCapacity"] == 100
    described = nfw.describe_firewall_policy(FirewallPolicyName=name)
    assert described["FirewallPolicy"] == document and described["UpdateToken"] == created["UpdateToken"]
    assert nfw.describe_rule_group(RuleGroupArn=first)["RuleGroupResponse"]["NumberOfAssociations"] == 1

    both = policy_document(first, second)
    stale = {"UpdateToken": "stale", "FirewallPolicyArn": response["FirewallPolicyArn"], "FirewallPolicy": both}
    assert error_code(nfw.update_firewall_policy, **stale) == "InvalidTokenException"
    updated = nfw.update_firewall_policy(**{**stale, "UpdateToken": described["UpdateToken"]})
    assert updated["UpdateToken"] != described["UpdateToken"]
    assert nfw.describe_firewall_policy(FirewallPolicyArn=response["FirewallPolicyArn"])["FirewallPolicy"] == both
    assert response["FirewallPolicyArn"] in [p["Arn"] for p in nfw.list_firewall_policies()["FirewallPolicies"]]
    assert error_code(nfw.describe_firewall_policy, FirewallPolicyName=unique("nope")) == "ResourceNotFoundException"


def _strict_group(nfw: Any) -> str:
    return make_group(nfw, {**domains(), "StatefulRuleOptions": {"RuleOrder": "STRICT_ORDER"}})


INVALID_POLICIES: dict[str, Callable[[Any, str], dict[str, Any]]] = {
    "an unknown rule group": lambda nfw, arn: policy_document(arn + "-missing"),
    "a stateless group as a stateful reference": lambda nfw, arn: policy_document(make_group(nfw, {
        "RulesSource": {"StatelessRulesAndCustomActions": {"StatelessRules": [{
            "Priority": 1, "RuleDefinition": {"MatchAttributes": {}, "Actions": ["aws:pass"]}}]}}
    }, Type="STATELESS")),
    "the same group twice": lambda nfw, arn: policy_document(arn, arn),
    "two standard stateless default actions": lambda nfw, arn: {
        **policy_document(arn), "StatelessDefaultActions": ["aws:pass", "aws:drop"]
    },
    "no standard fragment action": lambda nfw, arn: {**policy_document(arn), "StatelessFragmentDefaultActions": []},
    "a STRICT_ORDER group in a DEFAULT_ACTION_ORDER policy": lambda nfw, arn: policy_document(_strict_group(nfw)),
    "a DEFAULT_ACTION_ORDER group in a STRICT_ORDER policy": lambda nfw, arn: {
        **policy_document(), "StatefulEngineOptions": {"RuleOrder": "STRICT_ORDER"},
        "StatefulRuleGroupReferences": [{"ResourceArn": arn, "Priority": 1}],
    },
    "a priority under DEFAULT_ACTION_ORDER": lambda nfw, arn: {
        **policy_document(), "StatefulRuleGroupReferences": [{"ResourceArn": arn, "Priority": 10}]
    },
    "no priority under STRICT_ORDER": lambda nfw, arn: {
        **policy_document(_strict_group(nfw)), "StatefulEngineOptions": {"RuleOrder": "STRICT_ORDER"}
    },
    "stateful default actions under DEFAULT_ACTION_ORDER": lambda nfw, arn: {
        **policy_document(arn), "StatefulDefaultActions": ["aws:drop_established"]
    },
}


@pytest.mark.parametrize("document", INVALID_POLICIES.values(), ids=INVALID_POLICIES.keys())
def test_invalid_firewall_policy_is_refused_on_create_and_update(
    nfw: Any, document: Callable[[Any, str], dict[str, Any]]
) -> None:
    group = make_group(nfw)
    bad = document(nfw, group)
    assert error_code(nfw.create_firewall_policy, FirewallPolicyName=unique("p"), FirewallPolicy=bad) == (
        "InvalidRequestException"
    )
    arn = make_policy(nfw, group)
    token = nfw.describe_firewall_policy(FirewallPolicyArn=arn)["UpdateToken"]
    update = {"UpdateToken": token, "FirewallPolicyArn": arn, "FirewallPolicy": bad}
    assert error_code(nfw.update_firewall_policy, **update) == "InvalidRequestException"


def test_strict_order_policy_with_priorities_is_accepted(nfw: Any) -> None:
    document = {
        **policy_document(),
        "StatefulEngineOptions": {"RuleOrder": "STRICT_ORDER"},
        "StatefulDefaultActions": ["aws:drop_established"],
        "StatefulRuleGroupReferences": [{"ResourceArn": _strict_group(nfw), "Priority": 10}],
    }
    name = unique("policy")
    nfw.create_firewall_policy(FirewallPolicyName=name, FirewallPolicy=document)
    assert nfw.describe_firewall_policy(FirewallPolicyName=name)["FirewallPolicy"] == document


def test_rule_group_cannot_be_deleted_while_a_policy_references_it(nfw: Any) -> None:
    group = make_group(nfw)
    policy = make_policy(nfw, group)
    error = client_error(nfw.delete_rule_group, RuleGroupArn=group)
    assert (error["Code"], error["Message"]) == (
        "InvalidOperationException", "Unable to delete the object because it is still in use"
    )
    deleted = nfw.delete_firewall_policy(FirewallPolicyArn=policy)["FirewallPolicyResponse"]
    assert deleted["FirewallPolicyStatus"] == "DELETING"
    assert error_code(nfw.describe_firewall_policy, FirewallPolicyArn=policy) == "ResourceNotFoundException"
    assert nfw.delete_rule_group(RuleGroupArn=group)["RuleGroupResponse"]["RuleGroupStatus"] == "DELETING"
    assert error_code(nfw.describe_rule_group, RuleGroupArn=group) == "ResourceNotFoundException"
    assert error_code(nfw.delete_rule_group, RuleGroupArn=group) == "ResourceNotFoundException"


def test_policy_cannot_be_deleted_while_a_firewall_uses_it(
    nfw: Any, net: dict[str, Any], settings: SandboxSettings
) -> None:
    policy = make_policy(nfw, make_group(nfw))
    name = make_firewall(nfw, net, policy)["Firewall"]["FirewallName"]
    assert error_code(nfw.delete_firewall_policy, FirewallPolicyArn=policy) == "InvalidOperationException"
    with held(settings, "firewall_deleting_seconds"):
        nfw.delete_firewall(FirewallName=name)
        code = error_code(nfw.delete_firewall_policy, FirewallPolicyArn=policy)
        assert code == "InvalidOperationException"  # while the firewall is DELETING too
    wait_until(lambda: gone(nfw, name))
    nfw.delete_firewall_policy(FirewallPolicyArn=policy)


# --- rules 5 and 6: firewalls and their endpoints ---------------------------------------------------------


def test_firewall_provisions_then_is_ready_with_an_endpoint_per_zone(
    ec2: Any, nfw: Any, net: dict[str, Any]
) -> None:
    policy = make_policy(nfw, make_group(nfw))
    created = make_firewall(nfw, net, policy, Tags=[{"Key": "provision:step", "Value": "fw"}])
    firewall = created["Firewall"]
    assert created["FirewallStatus"] == {
        "Status": "PROVISIONING", "ConfigurationSyncStateSummary": "PENDING", "SyncStates": {}
    }
    assert firewall["VpcId"] == net["vpc"] and firewall["FirewallPolicyArn"] == policy and firewall["FirewallId"]
    assert [m["SubnetId"] for m in firewall["SubnetMappings"]] == list(net["subnets"].values())
    assert firewall["Tags"] == [{"Key": "provision:step", "Value": "fw"}] and firewall["DeleteProtection"] is False

    endpoints = ready(nfw, firewall["FirewallName"])
    described = nfw.describe_firewall(FirewallArn=firewall["FirewallArn"])
    assert described["FirewallStatus"]["ConfigurationSyncStateSummary"] == "IN_SYNC" and described["UpdateToken"]
    assert set(endpoints) == set(net["subnets"])
    for zone, state in described["FirewallStatus"]["SyncStates"].items():
        wanted = {"SubnetId": net["subnets"][zone], "EndpointId": endpoints[zone], "Status": "READY"}
        assert state["Attachment"] == wanted
        assert state["Config"][policy]["SyncStatus"] == "IN_SYNC"

    found = ec2.describe_vpc_endpoints(VpcEndpointIds=list(endpoints.values()))["VpcEndpoints"]
    assert {(e["VpcEndpointType"], e["State"]) for e in found} == {("GatewayLoadBalancer", "available")}
    for endpoint in found:
        zone = next(z for z, e in endpoints.items() if e == endpoint["VpcEndpointId"])
        assert endpoint["SubnetIds"] == [net["subnets"][zone]] and endpoint["VpcId"] == net["vpc"]
        assert endpoint["RequesterManaged"] is True
        found_enis = ec2.describe_network_interfaces(NetworkInterfaceIds=endpoint["NetworkInterfaceIds"])
        [eni] = found_enis["NetworkInterfaces"]
        assert eni["SubnetId"] == net["subnets"][zone] and eni["InterfaceType"] == "gateway_load_balancer_endpoint"
        assert eni["RequesterManaged"] is True


def test_provisioning_delay_is_read_at_request_time(nfw: Any, net: dict[str, Any], settings: SandboxSettings) -> None:
    with delays(settings, firewall_provisioning_seconds=60):
        name = make_firewall(nfw, net)["Firewall"]["FirewallName"]
        time.sleep(PROVISIONING + 0.1)
        assert status(nfw, name)["Status"] == "PROVISIONING"
    ready(nfw, name)


INVALID_FIREWALLS: dict[str, Callable[[Any, Any, dict[str, Any]], dict[str, Any]]] = {
    "an unknown policy": lambda ec2, nfw, net: {"FirewallPolicyArn": make_policy(nfw, make_group(nfw)) + "-missing"},
    "an unknown VPC": lambda ec2, nfw, net: {"VpcId": "vpc-0123456789abcdef0"},
    "no subnets": lambda ec2, nfw, net: {"SubnetMappings": []},
    "an unknown subnet": lambda ec2, nfw, net: {"SubnetMappings": [{"SubnetId": "subnet-0123456789abcdef0"}]},
    "a subnet of another VPC": lambda ec2, nfw, net: {"SubnetMappings": [{"SubnetId": ec2.create_subnet(
        VpcId=ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"], CidrBlock="10.1.0.0/28"
    )["Subnet"]["SubnetId"]}]},
    "two subnets in one zone": lambda ec2, nfw, net: {"SubnetMappings": [
        {"SubnetId": net["subnets"][f"{REGION}a"]},
        {"SubnetId": ec2.create_subnet(VpcId=net["vpc"], CidrBlock="10.0.9.0/28",
                                       AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]},
    ]},
}


@pytest.mark.parametrize("invalid", INVALID_FIREWALLS.values(), ids=INVALID_FIREWALLS.keys())
def test_invalid_firewall_is_refused(
    ec2: Any, nfw: Any, net: dict[str, Any], invalid: Callable[[Any, Any, dict[str, Any]], dict[str, Any]]
) -> None:
    with pytest.raises(ClientError) as info:
        make_firewall(nfw, net, **invalid(ec2, nfw, net))
    assert info.value.response["Error"]["Code"] == "InvalidRequestException"
    assert ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]}])["VpcEndpoints"] == []


def test_firewall_name_is_unique_and_list_filters_on_vpc(ec2: Any, nfw: Any, net: dict[str, Any]) -> None:
    name = make_firewall(nfw, net)["Firewall"]["FirewallName"]
    other_vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    other_subnet = ec2.create_subnet(VpcId=other_vpc, CidrBlock="10.2.0.0/28")["Subnet"]["SubnetId"]
    with pytest.raises(ClientError) as info:
        make_firewall(nfw, {"vpc": other_vpc, "subnets": {"z": other_subnet}}, FirewallName=name)
    assert info.value.response["Error"]["Code"] == "InvalidRequestException"
    other = make_firewall(nfw, {"vpc": other_vpc, "subnets": {"z": other_subnet}})["Firewall"]["FirewallName"]
    assert [f["FirewallName"] for f in nfw.list_firewalls(VpcIds=[net["vpc"]])["Firewalls"]] == [name]
    assert {name, other} <= {f["FirewallName"] for f in nfw.list_firewalls()["Firewalls"]}


def test_firewall_endpoint_is_a_route_target(ec2: Any, nfw: Any, net: dict[str, Any]) -> None:
    endpoints = ready(nfw, make_firewall(nfw, net)["Firewall"]["FirewallName"])
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    table = ec2.create_route_table(VpcId=net["vpc"])["RouteTable"]["RouteTableId"]
    zone_a, zone_b = endpoints[f"{REGION}a"], endpoints[f"{REGION}b"]

    def target(destination: str) -> dict[str, Any]:
        routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
        return next(r for r in routes if r["DestinationCidrBlock"] == destination)

    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", VpcEndpointId=zone_a)
    assert target("0.0.0.0/0")["GatewayId"] == zone_a  # EC2 shows endpoint targets as GatewayId
    ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", VpcEndpointId=zone_b)
    assert target("0.0.0.0/0")["GatewayId"] == zone_b
    ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    assert target("0.0.0.0/0")["GatewayId"] == igw
    ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", VpcEndpointId=zone_a)
    assert target("0.0.0.0/0")["GatewayId"] == zone_a
    s3 = ec2.create_vpc_endpoint(VpcId=net["vpc"], ServiceName=f"com.amazonaws.{REGION}.s3")["VpcEndpoint"]
    code = error_code(ec2.replace_route, RouteTableId=table, DestinationCidrBlock="0.0.0.0/0",
                      VpcEndpointId=s3["VpcEndpointId"])
    assert code == "RouteNotSupported"
    assert target("0.0.0.0/0")["GatewayId"] == zone_a


def test_firewall_subnets_and_vpc_cannot_be_deleted_while_it_exists(
    ec2: Any, nfw: Any, net: dict[str, Any], settings: SandboxSettings
) -> None:
    with held(settings, "firewall_provisioning_seconds"):
        name = make_firewall(nfw, net)["Firewall"]["FirewallName"]
        for subnet in net["subnets"].values():  # already while PROVISIONING
            assert error_code(ec2.delete_subnet, SubnetId=subnet) == "DependencyViolation"
    ready(nfw, name)
    assert error_code(ec2.delete_vpc, VpcId=net["vpc"]) == "DependencyViolation"
    with held(settings, "firewall_deleting_seconds"):
        nfw.delete_firewall(FirewallName=name)
        assert error_code(ec2.delete_subnet, SubnetId=net["subnets"][f"{REGION}a"]) == "DependencyViolation"
    wait_until(lambda: gone(nfw, name))
    for subnet in net["subnets"].values():
        once_released(ec2.delete_subnet, SubnetId=subnet)
    ec2.delete_vpc(VpcId=net["vpc"])


# --- rule 7: deleting a firewall ----------------------------------------------------------------------------


def test_delete_protection_is_on_unless_turned_off(nfw: Any, net: dict[str, Any]) -> None:
    created = nfw.create_firewall(
        FirewallName=unique("fw"), FirewallPolicyArn=make_policy(nfw, make_group(nfw)), VpcId=net["vpc"],
        SubnetMappings=[{"SubnetId": net["subnets"][f"{REGION}a"]}],
    )["Firewall"]
    assert created["DeleteProtection"] is True  # omitted: TRUE, as the API reference says
    name = created["FirewallName"]
    assert error_code(nfw.delete_firewall, FirewallName=name) == "InvalidOperationException"
    assert status(nfw, name)["Status"] != "DELETING"

    token = nfw.describe_firewall(FirewallName=name)["UpdateToken"]
    stale = {"FirewallName": name, "DeleteProtection": False, "UpdateToken": "stale"}
    assert error_code(nfw.update_firewall_delete_protection, **stale) == "InvalidTokenException"
    changed = nfw.update_firewall_delete_protection(**{**stale, "UpdateToken": token})
    assert changed["DeleteProtection"] is False and changed["UpdateToken"] != token
    assert nfw.describe_firewall(FirewallName=name)["Firewall"]["DeleteProtection"] is False
    assert nfw.delete_firewall(FirewallName=name)["FirewallStatus"]["Status"] == "DELETING"


def test_delete_firewall_refused_while_routes_target_its_endpoints(ec2: Any, nfw: Any, net: dict[str, Any]) -> None:
    name = make_firewall(nfw, net)["Firewall"]["FirewallName"]
    endpoint = ready(nfw, name)[f"{REGION}b"]
    table = ec2.create_route_table(VpcId=net["vpc"])["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="10.0.1.0/24", VpcEndpointId=endpoint)
    error = client_error(nfw.delete_firewall, FirewallName=name)
    assert error["Code"] == "InvalidOperationException"
    assert table in error["Message"] and endpoint in error["Message"]
    assert status(nfw, name)["Status"] == "READY"
    ec2.delete_route(RouteTableId=table, DestinationCidrBlock="10.0.1.0/24")
    assert nfw.delete_firewall(FirewallName=name)["FirewallStatus"]["Status"] == "DELETING"


def test_deleted_firewall_is_deleting_then_gone_with_its_endpoints(
    ec2: Any, nfw: Any, net: dict[str, Any], settings: SandboxSettings
) -> None:
    created = make_firewall(nfw, net)["Firewall"]
    name, arn = created["FirewallName"], created["FirewallArn"]
    endpoints = list(ready(nfw, name).values())
    with held(settings, "firewall_deleting_seconds"):
        deleting = nfw.delete_firewall(FirewallArn=arn)
        assert deleting["Firewall"]["FirewallName"] == name
        assert deleting["FirewallStatus"]["Status"] == "DELETING"
        assert {s["Attachment"]["Status"] for s in deleting["FirewallStatus"]["SyncStates"].values()} == {"DELETING"}
        assert nfw.delete_firewall(FirewallName=name)["FirewallStatus"]["Status"] == "DELETING"  # a retry is fine
        endpoint_states = {e["State"] for e in ec2.describe_vpc_endpoints(VpcEndpointIds=endpoints)["VpcEndpoints"]}
        assert endpoint_states == {"deleting"}
        assert name in [f["FirewallName"] for f in nfw.list_firewalls(VpcIds=[net["vpc"]])["Firewalls"]]

    wait_until(lambda: gone(nfw, name))
    assert error_code(nfw.describe_firewall, FirewallArn=arn) == "ResourceNotFoundException"
    assert error_code(nfw.delete_firewall, FirewallArn=arn) == "ResourceNotFoundException"
    assert nfw.list_firewalls(VpcIds=[net["vpc"]])["Firewalls"] == []
    assert ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]}])["VpcEndpoints"] == []
    subnets = list(net["subnets"].values())
    # Their interfaces are released, and go after lingering like any released interface (lifecycle.py, rule 12).
    wait_until(lambda: ec2.describe_network_interfaces(
        Filters=[{"Name": "subnet-id", "Values": subnets}])["NetworkInterfaces"] == [])


def test_hub_teardown_in_order_succeeds(ec2: Any, nfw: Any, net: dict[str, Any]) -> None:
    """What the hub-spoke topology builds and tears down, in the order a teardown has to follow."""
    groups = [make_group(nfw), make_group(nfw, {"RulesSource": {"StatefulRules": [rule("DROP", "SSH", "sid:1")]}})]
    policy = make_policy(nfw, *groups)
    name = make_firewall(nfw, net, policy)["Firewall"]["FirewallName"]
    endpoints = ready(nfw, name)
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    public = ec2.create_route_table(VpcId=net["vpc"])["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public, DestinationCidrBlock="0.0.0.0/0", VpcEndpointId=endpoints[f"{REGION}a"])
    edge = ec2.create_route_table(VpcId=net["vpc"])["RouteTable"]["RouteTableId"]
    edge_association = ec2.associate_route_table(RouteTableId=edge, GatewayId=igw)["AssociationId"]
    ec2.create_route(RouteTableId=edge, DestinationCidrBlock="10.0.0.0/28", VpcEndpointId=endpoints[f"{REGION}a"])

    # Out of order: each dependency refuses.
    assert error_code(nfw.delete_rule_group, RuleGroupArn=groups[0]) == "InvalidOperationException"
    assert error_code(nfw.delete_firewall_policy, FirewallPolicyArn=policy) == "InvalidOperationException"
    assert error_code(nfw.delete_firewall, FirewallName=name) == "InvalidOperationException"

    ec2.delete_route(RouteTableId=public, DestinationCidrBlock="0.0.0.0/0")
    ec2.delete_route(RouteTableId=edge, DestinationCidrBlock="10.0.0.0/28")
    nfw.delete_firewall(FirewallName=name)
    wait_until(lambda: gone(nfw, name))
    nfw.delete_firewall_policy(FirewallPolicyArn=policy)
    for group in groups:
        nfw.delete_rule_group(RuleGroupArn=group)
    ec2.disassociate_route_table(AssociationId=edge_association)
    for table in (public, edge):
        ec2.delete_route_table(RouteTableId=table)
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    for subnet in net["subnets"].values():
        once_released(ec2.delete_subnet, SubnetId=subnet)
    ec2.delete_vpc(VpcId=net["vpc"])


# --- rules 5 and 8: logging configuration and tags -----------------------------------------------------------


def test_logging_configuration_is_stored(nfw: Any, net: dict[str, Any]) -> None:
    arn = make_firewall(nfw, net)["Firewall"]["FirewallArn"]
    assert nfw.describe_logging_configuration(FirewallArn=arn)["LoggingConfiguration"] == {"LogDestinationConfigs": []}
    logging = {"LogDestinationConfigs": [
        {"LogType": "ALERT", "LogDestinationType": "S3", "LogDestination": {"bucketName": "logs", "prefix": "fw"}}
    ]}
    nfw.update_logging_configuration(FirewallArn=arn, LoggingConfiguration=logging)
    assert nfw.describe_logging_configuration(FirewallArn=arn)["LoggingConfiguration"] == logging


def test_tags_on_every_resource(nfw: Any, net: dict[str, Any]) -> None:
    group = make_group(nfw, Tags=[{"Key": "a", "Value": "1"}])
    policy = make_policy(nfw, group)
    firewall = make_firewall(nfw, net, policy)["Firewall"]["FirewallArn"]
    for arn in (group, policy, firewall):
        nfw.tag_resource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "2"}, {"Key": "b", "Value": "3"}])
        assert nfw.list_tags_for_resource(ResourceArn=arn)["Tags"] == [
            {"Key": "a", "Value": "2"}, {"Key": "b", "Value": "3"}
        ]
        nfw.untag_resource(ResourceArn=arn, TagKeys=["a"])
        assert nfw.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "3"}]
    assert nfw.describe_rule_group(RuleGroupArn=group)["RuleGroupResponse"]["Tags"] == [{"Key": "b", "Value": "3"}]
    assert nfw.describe_firewall_policy(FirewallPolicyArn=policy)["FirewallPolicyResponse"]["Tags"] == [
        {"Key": "b", "Value": "3"}
    ]
    assert nfw.describe_firewall(FirewallArn=firewall)["Firewall"]["Tags"] == [{"Key": "b", "Value": "3"}]
    assert error_code(nfw.list_tags_for_resource, ResourceArn=group + "-missing") == "ResourceNotFoundException"


# --- rule 9: the wire protocol ------------------------------------------------------------------------------


def test_errors_are_json_1_0_with_the_service_type(aws_url: str) -> None:
    body = json.dumps({"FirewallName": unique("missing")})
    request = AWSRequest(
        "POST", f"{aws_url}/", data=body,
        headers={"X-Amz-Target": "NetworkFirewall_20201112.DescribeFirewall",
                 "Content-Type": "application/x-amz-json-1.0"},
    )
    SigV4Auth(Credentials("testing", "testing"), "network-firewall", REGION).add_auth(request)
    answer = requests.post(request.url, data=request.body, headers=dict(request.headers), timeout=10)
    assert answer.status_code == 400
    error = answer.json()
    assert error["__type"].split("#")[-1] == "ResourceNotFoundException" and "does not exist" in error["Message"]


def test_operations_the_sandbox_lacks_fail_loudly(nfw: Any) -> None:
    error = client_error(nfw.describe_resource_policy, ResourceArn=make_group(nfw))
    assert error["Code"] == "UnsupportedOperationException" and "DescribeResourcePolicy" in error["Message"]
