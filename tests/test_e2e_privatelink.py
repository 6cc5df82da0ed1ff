"""Back-end PrivateLink in one run, and deploying into infrastructure the user already has."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

import specs
from sandbox_inventory import PRIVATELINK_NEW_VPC, counts, inventory, untagged

ACCOUNT = specs.example("privatelink")["databricks"]["account_id"]


def aws(sandbox, service: str):
    return boto3.client(service, endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")


def outputs(tmp_path: Path) -> dict:
    return {s["id"]: s["outputs"] for s in json.loads((tmp_path / "provision.state.json").read_text())["steps"]}


def test_privatelink_in_one_run_then_teardown(sandbox, cli, tmp_path):
    spec = specs.write(tmp_path / "spec.toml", specs.example("privatelink"))
    result = cli("up", "--config", str(spec), "--sandbox", check=0)
    assert "RUNNING" in result.stdout

    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == PRIVATELINK_NEW_VPC
    assert untagged(found, "acme-pl") == []
    out = outputs(tmp_path)
    ids = {purpose: out[f"vpce.{purpose}"]["vpc_endpoint_id"] for purpose in ("workspace", "relay")}
    endpoints = {e["VpcEndpointId"]: e for e in found["vpc_endpoint"]}
    for purpose, endpoint_id in ids.items():
        assert endpoints[endpoint_id]["State"] == "available"
        assert endpoints[endpoint_id]["PrivateDnsEnabled"] is True
    registrations = {r["aws_vpc_endpoint_id"]: r for r in found["databricks_vpc-endpoints"]}
    assert set(registrations) == set(ids.values())
    assert all(r["state"] == "available" for r in registrations.values())

    (network,) = found["databricks_networks"]
    assert network["vpc_endpoints"]["rest_api"] == [registrations[ids["workspace"]]["vpc_endpoint_id"]]
    assert network["vpc_endpoints"]["dataplane_relay"] == [registrations[ids["relay"]]["vpc_endpoint_id"]]
    (pas,) = found["databricks_private-access-settings"]
    assert pas["public_access_enabled"] is True and pas["private_access_level"] == "ACCOUNT"
    (workspace,) = found["databricks_workspaces"]
    assert workspace["workspace_status"] == "RUNNING"
    assert workspace["private_access_settings_id"] == pas["private_access_settings_id"]

    # The endpoint security group: 443, 2443, 6666, 8443-8451 from and to the workspace and endpoint subnets, and
    # 5432 (Lakebase) from them.
    group = next(g for g in found["security_group"] if g["GroupId"] == out["sg.endpoints"]["group_id"])
    cidrs = {out[s]["cidr"] for s in ("subnet.private.0", "subnet.private.1", "subnet.endpoints")}
    for direction, extra in (("IpPermissions", {(5432, 5432)}), ("IpPermissionsEgress", set())):
        ports = {(p["FromPort"], p["ToPort"]) for p in group[direction]}
        assert ports == {(443, 443), (2443, 2443), (6666, 6666), (8443, 8451)} | extra
        assert all({r["CidrIp"] for r in p["IpRanges"]} == cidrs for p in group[direction])

    # Drift: the workspace endpoint deleted by hand. The next `up` recreates it, registers the new one, replaces the
    # network (a Databricks network cannot change), moves the workspace to it, then deletes the old network and
    # registration: the inventory is a clean run's again.
    # With it, a rule revoked from the workspace security group: `plan --detailed-exitcode` names both (exit 2).
    old_registration = registrations[ids["workspace"]]["vpc_endpoint_id"]
    ec2 = aws(sandbox, "ec2")
    ec2.delete_vpc_endpoints(VpcEndpointIds=[ids["workspace"]])
    ec2.revoke_security_group_egress(GroupId=out["sg.workspace"]["group_id"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    planned = json.loads(cli("plan", "--config", str(spec), "--sandbox", "--detailed-exitcode", "--output", "json", check=2).stdout)
    by_step = {item["step_id"]: item for item in planned}
    assert by_step["vpce.workspace"]["status"] == "missing"
    assert by_step["sg.workspace"]["status"] == "drifted"
    assert "egress tcp port 443 to 0.0.0.0/0" in by_step["sg.workspace"]["drifts"][0]["wanted"]
    cli("up", "--config", str(spec), "--sandbox", check=0)
    cli("plan", "--config", str(spec), "--sandbox", "--detailed-exitcode", check=0)
    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == PRIVATELINK_NEW_VPC
    out = outputs(tmp_path)
    new_endpoint = out["vpce.workspace"]["vpc_endpoint_id"]
    assert new_endpoint != ids["workspace"]
    registrations = {r["aws_vpc_endpoint_id"]: r for r in found["databricks_vpc-endpoints"]}
    assert set(registrations) == {new_endpoint, ids["relay"]}
    assert old_registration not in {r["vpc_endpoint_id"] for r in registrations.values()}
    (network,) = found["databricks_networks"]
    assert network["vpc_endpoints"]["rest_api"] == [registrations[new_endpoint]["vpc_endpoint_id"]]
    (workspace,) = found["databricks_workspaces"]
    assert workspace["network_id"] == network["network_id"] and workspace["workspace_status"] == "RUNNING"
    assert json.loads((tmp_path / "provision.state.json").read_text())["retired"] == []

    cli("teardown", "--yes", check=0)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}


def _existing_network(sandbox) -> dict:
    """What a platform team already has: a VPC with DNS on, two workspace subnets in two zones, a group."""
    ec2 = aws(sandbox, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in (("10.60.0.0/19", "us-east-1a"), ("10.60.32.0/19", "us-east-1b"))
    ]
    group = ec2.create_security_group(GroupName="team-databricks", Description="team's own", VpcId=vpc)["GroupId"]
    return {"vpc_id": vpc, "subnet_ids": subnets, "security_group_id": group}


def _existing_spec(tmp_path: Path, existing: dict, **tables) -> Path:
    data = specs.example("privatelink-existing-vpc")
    data["existing"] = {**data["existing"], **existing}
    return specs.write(tmp_path / "spec.toml", specs.merged(data, **tables))


def _snapshot(sandbox, existing: dict) -> dict:
    ec2 = aws(sandbox, "ec2")
    return {
        "vpc": ec2.describe_vpcs(VpcIds=[existing["vpc_id"]])["Vpcs"],
        "subnets": ec2.describe_subnets(SubnetIds=existing["subnet_ids"])["Subnets"],
        "group": ec2.describe_security_groups(GroupIds=[existing["security_group_id"]])["SecurityGroups"],
    }


def test_privatelink_into_an_existing_vpc_leaves_it_untouched(sandbox, cli, tmp_path):
    existing = _existing_network(sandbox)
    before = _snapshot(sandbox, existing)
    spec = _existing_spec(tmp_path, existing)

    plan = json.loads(cli("plan", "--config", str(spec), "--sandbox", "--output", "json", check=0).stdout)
    actions = {item["step_id"]: item["action"] for item in plan}
    assert actions["vpc"] == actions["sg.workspace"] == actions["subnet.private.0"] == "existing"
    assert actions["subnet.endpoints"] == "create"

    result = cli("up", "--config", str(spec), "--sandbox", check=0)
    assert "RUNNING" in result.stdout
    state = json.loads((tmp_path / "provision.state.json").read_text())
    external = {s["id"] for s in state["steps"] if s["external"]}
    assert external == {"vpc", "subnet.private.0", "subnet.private.1", "sg.workspace"}
    found = inventory(sandbox, account_id="5a4db0c5-0000-4000-8000-00000000000a")
    assert {w["workspace_status"] for w in found["databricks_workspaces"]} == {"RUNNING"}
    endpoint_subnet = outputs(tmp_path)["subnet.endpoints"]
    assert endpoint_subnet["cidr"] == "10.60.200.0/27"

    cli("teardown", "--yes", check=0)
    assert _snapshot(sandbox, existing) == before  # still there, unchanged (tags included)
    left = counts(inventory(sandbox, account_id="5a4db0c5-0000-4000-8000-00000000000a"))
    assert left == {"vpc": 1, "subnet": 2, "security_group": 1}


def test_existing_bucket_and_role_are_used_and_kept(sandbox, cli, tmp_path):
    s3, iam = aws(sandbox, "s3"), aws(sandbox, "iam")
    s3.create_bucket(Bucket="team-root-bucket")
    s3.put_object(Bucket="team-root-bucket", Key="keep.txt", Body=b"ours")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::414351767826:root"}, "Action": "sts:AssumeRole",
                       "Condition": {"StringEquals": {"sts:ExternalId": "5a4db0c5-0000-4000-8000-00000000000a"}}}],
    }
    role = iam.create_role(RoleName="team-crossaccount", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    data = specs.merged(specs.example("basic"), existing={"bucket_name": "team-root-bucket", "cross_account_role_arn": role})
    spec = specs.write(tmp_path / "spec.toml", data)

    cli("up", "--config", str(spec), "--sandbox", check=0)
    cli("teardown", "--yes", check=0)
    assert s3.get_object(Bucket="team-root-bucket", Key="keep.txt")["Body"].read() == b"ours"
    assert iam.get_role(RoleName="team-crossaccount")["Role"]["Arn"] == role
    assert counts(inventory(sandbox, account_id="5a4db0c5-0000-4000-8000-00000000000a")) == {"bucket": 1, "iam_role": 1}


def _mutations(sandbox, existing: dict) -> dict:
    ec2 = aws(sandbox, "ec2")
    other_vpc = ec2.create_vpc(CidrBlock="10.70.0.0/16")["Vpc"]["VpcId"]
    return {
        "vpc not found": ({"vpc_id": "vpc-0000000000000dead"}, "existing.vpc_id", "not found"),
        "subnet not found": ({"subnet_ids": [existing["subnet_ids"][0], "subnet-00000000000000bad"]}, "existing.subnet_ids[1]", "not found"),
        "same zone": (
            {"subnet_ids": [existing["subnet_ids"][0], ec2.create_subnet(VpcId=existing["vpc_id"], CidrBlock="10.60.64.0/19", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]]},
            "existing.subnet_ids", "availability zone",
        ),
        "netmask": (
            {"subnet_ids": [existing["subnet_ids"][0], ec2.create_subnet(VpcId=existing["vpc_id"], CidrBlock="10.60.96.0/27", AvailabilityZone="us-east-1c")["Subnet"]["SubnetId"]]},
            "existing.subnet_ids[1]", "/27",
        ),
        "group not found": ({"security_group_id": "sg-00000000000000bad"}, "existing.security_group_id", "not found"),
        "group in another vpc": (
            {"security_group_id": ec2.create_security_group(GroupName="elsewhere", Description="x", VpcId=other_vpc)["GroupId"]},
            "existing.security_group_id", other_vpc,
        ),
    }


@pytest.mark.parametrize("case", ["vpc not found", "subnet not found", "same zone", "netmask", "group not found", "group in another vpc", "dns hostnames", "dns support",
                                  "endpoint subnet outside", "bucket not found", "role not found"])
def test_preflight_failures_exit_2_and_create_nothing(sandbox, cli, tmp_path, case):
    existing = _existing_network(sandbox)
    tables: dict = {}
    if case == "dns support":
        aws(sandbox, "ec2").modify_vpc_attribute(VpcId=existing["vpc_id"], EnableDnsSupport={"Value": False})
        change, field, reason = {}, "existing.vpc_id", "enableDnsSupport"
    elif case == "bucket not found":
        change, field, reason = {"bucket_name": "nobody-has-this-bucket"}, "existing.bucket_name", "not found"
    elif case == "role not found":
        change, field, reason = {"cross_account_role_arn": "arn:aws:iam::123456789012:role/nobody"}, "existing.cross_account_role_arn", "not found"
    elif case == "dns hostnames":
        aws(sandbox, "ec2").modify_vpc_attribute(VpcId=existing["vpc_id"], EnableDnsHostnames={"Value": False})
        change, field, reason = {}, "existing.vpc_id", "enableDnsHostnames"
    elif case == "endpoint subnet outside":
        change, field, reason = {}, "privatelink.endpoint_subnet_cidr", "not inside"
        tables = {"privatelink": {"endpoint_subnet_cidr": "10.99.0.0/27"}}
    else:
        change, field, reason = _mutations(sandbox, existing)[case]
    before = counts(inventory(sandbox, account_id=ACCOUNT))
    spec = _existing_spec(tmp_path, {**existing, **change}, **tables)

    result = cli("up", "--config", str(spec), "--sandbox")
    assert result.returncode == 2, result.stderr
    assert field in result.stderr and reason in result.stderr, result.stderr
    assert "nothing was created" in result.stderr and "Traceback" not in result.stderr
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == before
    assert not (tmp_path / "provision.state.json").exists()


def test_fewer_than_two_existing_subnets_is_refused_before_any_call(sandbox, cli, tmp_path):
    existing = _existing_network(sandbox)
    spec = _existing_spec(tmp_path, {**existing, "subnet_ids": existing["subnet_ids"][:1]})
    result = cli("up", "--config", str(spec), "--sandbox")
    assert result.returncode == 2 and "existing.subnet_ids" in result.stderr and "at least 2" in result.stderr
    assert not (tmp_path / "provision.state.json").exists()


def test_an_existing_private_dns_endpoint_to_databricks_is_reported_before_anything_is_created(sandbox, cli, tmp_path):
    existing = _existing_network(sandbox)
    ec2 = aws(sandbox, "ec2")
    # Another workspace's endpoint to the relay service, already registered (accepted) with private DNS on.
    other = ec2.create_vpc_endpoint(
        VpcEndpointType="Interface", VpcId=existing["vpc_id"], ServiceName="com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf",
        SubnetIds=[existing["subnet_ids"][0]], PrivateDnsEnabled=False,
    )["VpcEndpoint"]["VpcEndpointId"]
    from databricks.sdk import AccountClient
    from databricks.sdk.config import Config

    account = AccountClient(config=Config(host=sandbox.databricks_host, account_id=ACCOUNT, token=sandbox.databricks_token, auth_type="pat"))
    account.vpc_endpoints.create(vpc_endpoint_name="someone-else", aws_vpc_endpoint_id=other, region="us-east-1")
    import time

    deadline = time.monotonic() + 10
    while ec2.describe_vpc_endpoints(VpcEndpointIds=[other])["VpcEndpoints"][0]["State"] != "available" and time.monotonic() < deadline:
        time.sleep(0.1)
    ec2.modify_vpc_endpoint(VpcEndpointId=other, PrivateDnsEnabled=True)
    before = counts(inventory(sandbox, account_id=ACCOUNT))

    result = cli("up", "--config", str(_existing_spec(tmp_path, existing)), "--sandbox")
    assert result.returncode == 2 and "privatelink.relay_service" in result.stderr and other in result.stderr
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == before
