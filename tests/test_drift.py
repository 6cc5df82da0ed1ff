"""Drift: `plan` reports, per step, in_sync / drifted (field, wanted, found) / missing / extra / new; `--detailed-exitcode`
as Terraform; `up` refuses, before changing anything, a drift it could only converge by replacing the resource; the
steps name their drifted fields. Unit tests on fakes and a stubbed EC2 client, plus one run in the sandbox."""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from fakes import FakeClock
from structlog.testing import CapturingLogger

from provision import cli as cli_module
from provision import topologies as spec_module
from provision.clouds import error_rules
from provision.clouds.aws.steps.network import (
    WORKSPACE_SG_RULES,
    SecurityGroup,
    Subnet,
    Vpc,
)
from provision.clouds.aws.steps.routes import RouteTable, VpcRoute
from provision.clouds.aws.steps.storage import RootBucket
from provision.errors import ReplacementRefused, UsageError
from provision.orchestrator.clients import CallStats
from provision.orchestrator.drift import Drift, fields, members
from provision.orchestrator.engine import Engine, PlanItem
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import TAG_STEP, Context, Outputs, Ref, Step, single
from provision.orchestrator.wait import PollPolicy
from provision.state.store import StateFile, Status

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "basic.toml"

unit = pytest.mark.usefixtures("no_real_sleep")  # the unit tests run on a fake clock


@pytest.fixture(scope="module")
def spec() -> Any:
    return spec_module.from_dict(tomllib.loads(EXAMPLE.read_text()), str(EXAMPLE))


class Clients:
    """`ctx.clients["aws"].client(service)`: the test's client for each service; calls are counted."""

    def __init__(self, **services: Any) -> None:
        self.services, self.stats = services, CallStats()

    def __getitem__(self, cloud: str) -> Any:
        assert cloud == "aws", cloud
        return self

    def client(self, service: str) -> Any:
        return self.services[service]


def context(spec: Any, **services: Any) -> Context:
    clock = FakeClock(start=0.0)
    return Context(
        spec=spec, clients=Clients(**services),  # type: ignore[arg-type]
        retry=RetryPolicy(deadline_seconds=30, initial_seconds=1, max_seconds=2, clock=clock, sleep=clock.sleep, rng=random.Random(3), errors=error_rules()),
        poll=PollPolicy(initial_seconds=1, factor=2, max_seconds=4, timeout_seconds=60, clock=clock, sleep=clock.sleep),
        log=structlog.wrap_logger(CapturingLogger(), processors=[]),
    )


# the engine, on fakes ---------------------------------------------------------------------------------------


class Thing(Step):
    """A resource with one field (`size`) that converges in place and one (`zone`) that cannot change. The cloud is
    a dict: step id -> the resources that carry its tags."""

    kind = "fake.thing"
    produces = ("thing_id", "size", "zone")
    drift_before_up = True

    def __init__(self, step_id: str, cloud: dict[str, list[Outputs]], *, size: int = 1, zone: str = "a", needs: tuple[str, ...] = ()):
        super().__init__(step_id, needs)
        self.cloud, self.size, self.zone = cloud, size, zone
        self.calls: list[str] = []

    def find(self, ctx: Context) -> Outputs | None:
        self.calls.append("find")
        found = single(self.cloud.get(self.id, []), "thing", self.id)
        return dict(found) if found else None

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return bool(self.drift(ctx, found))

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        return fields({"size": self.size, "zone": self.zone}, found, replaced=("zone",))

    def create(self, ctx: Context) -> Outputs:
        self.calls.append("create")
        raise AssertionError("plan and the pre-pass never create")


def engine(tmp_path: Path, spec: Any, steps: list[Step], done: dict[str, Outputs]) -> Engine:
    state = StateFile.new(tmp_path / "state.json", deployment=spec.name, cloud="aws", target="sandbox", spec=spec.to_json(), spec_path=None)
    state.ensure_steps([(s.id, s.kind) for s in steps])
    for step_id, outputs in done.items():
        state.update(step_id, status=Status.DONE, outputs=outputs, attempts=1)
    return Engine(steps, state, context(spec))


@unit
def test_plan_reports_each_status_with_its_drifts(tmp_path: Path, spec: Any) -> None:
    cloud = {
        "same": [{"thing_id": "t-1", "size": 1, "zone": "a"}],
        "bigger": [{"thing_id": "t-2", "size": 3, "zone": "a"}],
        "moved": [{"thing_id": "t-3", "size": 1, "zone": "b"}],
        "twice": [{"thing_id": "t-4", "size": 1, "zone": "a"}, {"thing_id": "t-5", "size": 1, "zone": "a"}],
        "crashed": [{"thing_id": "t-6", "size": 2, "zone": "a"}],
    }
    steps: list[Step] = [Thing(s, cloud) for s in ("same", "bigger", "moved", "gone", "twice", "crashed", "fresh")]
    steps.append(Thing("after.gone", {"after.gone": [{"thing_id": "t-7", "size": 1, "zone": "a"}]}, needs=("gone",)))
    done = {s: {"thing_id": f"rec-{s}", "size": 1, "zone": "a"} for s in ("same", "bigger", "moved", "gone", "twice", "after.gone")}

    items = {i.step_id: i for i in engine(tmp_path, spec, steps, done).plan()}

    assert {s: (i.action, i.status) for s, i in items.items()} == {
        "same": ("keep", "in_sync"),
        "bigger": ("converge", "drifted"),
        "moved": ("replace", "drifted"),
        "gone": ("recreate", "missing"),
        "twice": ("conflict", "extra"),
        "crashed": ("adopt", "drifted"),
        "fresh": ("create", "new"),
        "after.gone": ("converge", "in_sync"),  # up converges what needs a step it creates again
    }
    assert items["bigger"].drifts == [Drift("size", 1, 3)]
    assert items["moved"].drifts == [Drift("zone", "a", "b", in_place=False)]
    assert "2 things carry the tags of step twice" in (items["twice"].detail or "")
    assert [s for s, i in items.items() if not i.changes] == ["same"]
    assert items["moved"].to_json() == {
        "step_id": "moved", "kind": "fake.thing", "action": "replace", "resource_id": "t-3", "status": "drifted",
        "drifts": [{"field": "zone", "wanted": "a", "found": "b", "in_place": False}], "detail": None,
    }
    assert all(s.calls == ["find"] for s in steps if isinstance(s, Thing))  # type: ignore[attr-defined]


@unit
def test_refuse_replacements_names_every_step_and_field_and_changes_nothing(tmp_path: Path, spec: Any) -> None:
    cloud = {"a": [{"thing_id": "t-1", "size": 2, "zone": "b"}], "b": [{"thing_id": "t-2", "size": 1, "zone": "c"}]}
    steps: list[Step] = [Thing("a", cloud), Thing("b", cloud)]
    eng = engine(tmp_path, spec, steps, {"a": {"thing_id": "t-1"}, "b": {"thing_id": "t-2"}})
    before = (tmp_path / "state.json").read_text()

    with pytest.raises(ReplacementRefused) as refused:
        eng.refuse_replacements()

    assert refused.value.exit_code == 2
    assert [(s, d.field) for s, d in refused.value.drifts] == [("a", "zone"), ("b", "zone")]
    message = str(refused.value)
    assert "a: zone: wanted a, found b: would have to replace it" in message and "nothing was changed" in message
    assert (tmp_path / "state.json").read_text() == before
    assert all("create" not in s.calls for s in steps)  # type: ignore[attr-defined]


@unit
def test_refuse_replacements_keeps_what_up_converges_and_reads_only_steps_that_ask(tmp_path: Path, spec: Any) -> None:
    cloud = {"a": [{"thing_id": "t-1", "size": 2, "zone": "a"}], "b": [{"thing_id": "t-2", "size": 1, "zone": "a"}]}

    class Plain(Thing):
        drift_before_up = False

    plain, pending = Plain("plain", {"plain": [{"thing_id": "t-3", "size": 9, "zone": "z"}]}), Thing("pending", {})
    eng = engine(tmp_path, spec, [Thing("a", cloud), Thing("b", cloud), plain, pending], {s: {"thing_id": s} for s in ("a", "b", "plain")})
    eng.refuse_replacements()
    assert eng.drifted == {"a"}
    assert plain.calls == [] and pending.calls == []  # a no-op up pays only for the steps that declare drift_before_up


def test_default_drift_says_only_that_it_differs(spec: Any) -> None:
    class Digest(Step):
        def needs_converge(self, ctx: Context, found: Outputs) -> bool:
            return found.get("digest") != "wanted"

    ctx = context(spec)
    assert Digest("x").drift(ctx, {"digest": "wanted"}) == []
    assert [str(d) for d in Digest("x").drift(ctx, {"digest": "old"})] == ["*: wanted as the spec says, found differs"]


def test_members_lists_missing_then_extra() -> None:
    assert members("rules", {1, 2}, {2, 3}) == [Drift("rules", "1", None), Drift("rules", None, "3")]
    assert str(Drift("rules", None, "3")) == "rules: wanted (none), found 3"


# the steps' drift -------------------------------------------------------------------------------------------


def test_vpc_and_subnet_cidr_or_zone_cannot_change_in_place(spec: Any) -> None:
    ctx = context(spec)
    ctx.outputs["subnet.0"] = {"zone": "us-east-1a"}
    vpc = Vpc("vpc", "10.40.0.0/16")
    assert vpc.drift_before_up and vpc.drift(ctx, {"vpc_id": "vpc-1", "cidr": "10.40.0.0/16"}) == []
    assert vpc.drift(ctx, {"vpc_id": "vpc-1", "cidr": "10.99.0.0/16"}) == [Drift("cidr", "10.40.0.0/16", "10.99.0.0/16", in_place=False)]
    subnet = Subnet("subnet.1", vpc="vpc", cidr="10.40.1.0/24", zone_of="subnet.0")
    assert subnet.drift(ctx, {"subnet_id": "s", "cidr": "10.40.1.0/24", "zone": "us-east-1b"}) == [Drift("zone", "us-east-1a", "us-east-1b", in_place=False)]


def _group(group_id: str, egress: list[tuple[int, int]]) -> dict[str, Any]:
    self_pair = [{"GroupId": group_id}]
    return {
        "GroupId": group_id, "VpcId": "vpc-1", "GroupName": "g", "Description": "d",
        "Tags": [{"Key": TAG_STEP, "Value": "sg.workspace"}],
        "IpPermissions": [{"IpProtocol": p, "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": self_pair} for p in ("tcp", "udp")],
        "IpPermissionsEgress": [{"IpProtocol": p, "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": self_pair} for p in ("tcp", "udp")]
        + [{"IpProtocol": "tcp", "FromPort": low, "ToPort": high, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]} for low, high in egress],
    }


@unit
def test_security_group_drift_names_each_missing_and_extra_rule_with_one_read(spec: Any) -> None:
    ec2 = boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name="us-east-1").client("ec2")
    wanted_egress = [(r[2], r[3]) for r in WORKSPACE_SG_RULES if r[0] == "egress" and r[4] != "self"]
    group = SecurityGroup("sg.workspace", vpc="vpc", description="d", rules=WORKSPACE_SG_RULES)
    ctx = context(spec, ec2=ec2)
    live = [p for p in wanted_egress if p != (3306, 3306)] + [(22, 22)]
    with Stubber(ec2) as stub:
        stub.add_response("describe_security_groups", {"SecurityGroups": [_group("sg-1", wanted_egress)]})
        stub.add_response("describe_security_groups", {"SecurityGroups": [_group("sg-1", live)]}, {"GroupIds": ["sg-1"]})
        found = group.find(ctx)
        assert found is not None and group.drift(ctx, found) == []  # in sync: no read beyond find
        drifts = group.drift(ctx, {**found, "rules_digest": "changed"})
    assert [str(d) for d in drifts] == [
        "rules: wanted egress tcp port 3306 to 0.0.0.0/0, found (none)",
        "rules: wanted (none), found egress tcp port 22 to 0.0.0.0/0",
    ]


def test_route_table_drift_and_converge_from_finds_outputs(spec: Any) -> None:
    ctx = context(spec)
    ctx.outputs.update({"vpc": {"vpc_id": "vpc-1"}, "subnet.0": {"subnet_id": "subnet-0"}, "nat.0": {"nat_gateway_id": "nat-new"}})
    table = RouteTable("rt.private.0", vpc="vpc", subnets=["subnet.0"], default_route=("NatGatewayId", Ref("nat.0", "nat_gateway_id")))
    live = {"RouteTableId": "rtb-1", "Associations": [], "Routes": [
        {"DestinationCidrBlock": "10.40.0.0/16", "GatewayId": "local"}, {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-old"},
    ]}
    found = {**table._outputs(live), "routes": table._live_routes(live)}
    assert table.needs_converge(ctx, found)
    assert table.drift(ctx, found) == [Drift("route 0.0.0.0/0", "nat-new", "nat-old"), Drift("association", "subnet-0", None)]
    in_sync = {"route_table_id": "rtb-1", "associations": {"subnet-0": "a-1"}, "routes": {"0.0.0.0/0": "nat-new"}}
    assert not table.needs_converge(ctx, in_sync) and table.drift(ctx, in_sync) == []

    ctx.outputs.update({"hub.rt": {"route_table_id": "rtb-2"}, "tgw": {"tgw_id": "tgw-1"}})
    route = VpcRoute("hub.route", route_table="hub.rt", destination="10.9.0.0/16", target_key="TransitGatewayId", target=Ref("tgw", "tgw_id"))
    assert route.drift(ctx, {"route_table_id": "rtb-2", "destination": "10.9.0.0/16", "target": "igw-1"}) == [Drift("target", "tgw-1", "igw-1")]


class FakeS3:
    """The reads RootBucket's drift makes, answering what a bucket changed by hand would."""

    def __init__(self, *, region: str | None, versioning: str | None, encryption: bool) -> None:
        self.region, self.versioning, self.encryption = region, versioning, encryption

    def get_bucket_location(self, Bucket: str) -> dict[str, Any]:
        return {"LocationConstraint": self.region}

    def get_bucket_versioning(self, Bucket: str) -> dict[str, Any]:
        return {"Status": self.versioning} if self.versioning else {}

    def get_bucket_encryption(self, Bucket: str) -> dict[str, Any]:
        if not self.encryption:
            raise ClientError({"Error": {"Code": "ServerSideEncryptionConfigurationNotFoundError", "Message": "none"}}, "GetBucketEncryption")
        rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
        return {"ServerSideEncryptionConfiguration": {"Rules": [rule]}}

    def get_public_access_block(self, Bucket: str) -> dict[str, Any]:
        keys = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
        return {"PublicAccessBlockConfiguration": dict.fromkeys(keys, True)}

    def get_bucket_ownership_controls(self, Bucket: str) -> dict[str, Any]:
        return {"OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}}


def test_bucket_drift_reads_its_settings_and_a_region_cannot_change(spec: Any) -> None:
    bucket = RootBucket("s3.root", "acme-root")
    found = {"bucket": "acme-root", "arn": "arn:aws:s3:::acme-root", "digest": "d"}
    assert bucket.drift_before_up
    in_sync = bucket.drift(context(spec, s3=FakeS3(region=None, versioning="Enabled", encryption=True)), found)
    assert in_sync == [Drift("settings digest", bucket._settings_digest(context(spec)), "d")]  # only the digest tag is stale
    drifts = bucket.drift(context(spec, s3=FakeS3(region="eu-west-1", versioning="Suspended", encryption=False)), found)
    assert [(d.field, d.found, d.in_place) for d in drifts] == [
        ("region", "eu-west-1", False), ("versioning", "Suspended", True), ("encryption", None, True),
    ]


# the CLI ------------------------------------------------------------------------------------------------------


def _plan_with(monkeypatch: pytest.MonkeyPatch, result: list[PlanItem] | Exception) -> None:
    from provision.app import runner

    def plan(*args: Any, **kwargs: Any) -> list[PlanItem]:
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(runner, "plan", plan)


def _main(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        cli_module.main(["plan", "--config", str(EXAMPLE), *args])
    return int(exited.value.code or 0)


def test_plan_detailed_exitcode_is_terraforms(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    kept = PlanItem("vpc", "ec2.vpc", "keep", "vpc-1", "in_sync")
    drifted = PlanItem("sg.workspace", "ec2.security_group", "converge", "sg-1", "drifted", [Drift("rules", "egress tcp port 3306 to 0.0.0.0/0", None)])
    _plan_with(monkeypatch, [kept])
    assert _main("--detailed-exitcode") == 0
    assert "nothing to do" in capsys.readouterr().out
    _plan_with(monkeypatch, [kept, drifted])
    assert _main("--detailed-exitcode", "--output", "json") == 2
    listed = json.loads(capsys.readouterr().out)
    assert listed[1]["status"] == "drifted" and listed[1]["drifts"] == [
        {"field": "rules", "wanted": "egress tcp port 3306 to 0.0.0.0/0", "found": None, "in_place": True},
    ]
    assert _main() == 0  # without the flag, changes are no error
    text = capsys.readouterr().out
    assert "sg.workspace" in text and "[drifted]" in text and "rules: wanted egress tcp port 3306 to 0.0.0.0/0, found (none)" in text
    _plan_with(monkeypatch, UsageError("bad"))
    assert _main("--detailed-exitcode") == 1  # 2 would read as "changes"
    assert _main() == 2


# one deployment in the sandbox ----------------------------------------------------------------------------------


def test_a_rule_revoked_and_a_route_repointed_by_hand_are_planned_and_restored(sandbox: Any, cli: Any, tmp_path: Path) -> None:
    import specs

    spec_path = specs.write(tmp_path / "spec.toml", specs.example())
    cli("up", "--config", str(spec_path), "--sandbox", check=0)
    state = json.loads((tmp_path / "provision.state.json").read_text())
    outputs = {s["id"]: s["outputs"] for s in state["steps"]}
    ec2 = boto3.client("ec2", endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    group_id, table_id = outputs["sg.workspace"]["group_id"], outputs["rt.private.0"]["route_table_id"]
    ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.replace_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=outputs["igw"]["igw_id"])
    s3 = boto3.client("s3", endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    bucket = outputs["s3.root"]["bucket"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})

    planned = cli("plan", "--config", str(spec_path), "--sandbox", "--detailed-exitcode", "--output", "json", check=2)
    changed = {i["step_id"]: i for i in json.loads(planned.stdout) if i["action"] != "keep"}
    assert set(changed) == {"sg.workspace", "route.private.0.nat", "s3.root"}, changed
    assert changed["sg.workspace"]["drifts"] == [{"field": "rules", "wanted": "egress tcp port 3306 to 0.0.0.0/0", "found": None, "in_place": True}]
    assert changed["route.private.0.nat"]["drifts"] == [
        {"field": "target", "wanted": outputs["nat.0"]["nat_gateway_id"], "found": outputs["igw"]["igw_id"], "in_place": True},
    ]
    text = cli("plan", "--config", str(spec_path), "--sandbox", check=0).stdout
    assert "rules: wanted egress tcp port 3306 to 0.0.0.0/0, found (none)" in text
    assert "versioning: wanted Enabled, found Suspended" in text

    again = cli("up", "--config", str(spec_path), "--sandbox", check=0)
    for step in ("sg.workspace", "route.private.0.nat", "s3.root"):
        assert f"{step}: converged" in again.stdout, again.stdout
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    cli("plan", "--config", str(spec_path), "--sandbox", "--detailed-exitcode", check=0)

    # Our subnet's tags moved by hand onto another subnet (another CIDR): converging would mean replacing it, so `up`
    # stops before it changes anything, not even the state file.
    sid = outputs["subnet.private.0"]["subnet_id"]
    tags = ec2.describe_subnets(SubnetIds=[sid])["Subnets"][0]["Tags"]
    other = ec2.create_subnet(VpcId=outputs["vpc"]["vpc_id"], CidrBlock="10.40.250.0/24")["Subnet"]["SubnetId"]
    ec2.delete_tags(Resources=[sid], Tags=[{"Key": t["Key"]} for t in tags if t["Key"].startswith("provision:")])
    ec2.create_tags(Resources=[other], Tags=tags)
    before = (tmp_path / "provision.state.json").read_text()
    refused = cli("up", "--config", str(spec_path), "--sandbox")
    assert refused.returncode == 2, refused.stderr
    assert "subnet.private.0: cidr: wanted" in refused.stderr and "would have to replace" in refused.stderr
    assert (tmp_path / "provision.state.json").read_text() == before
