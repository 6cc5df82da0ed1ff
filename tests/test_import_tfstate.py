"""`provision import --terraform-state`: the version-4 parser and the mapping onto the basic topology's steps, with no
cloud (the whole flow against the sandbox is test_import_e2e.py)."""

from __future__ import annotations

import copy
import json

import import_guide as guide
import pytest
import specs

from provision import topologies
from provision.app.tfimport import tfstate
from provision.app.tfimport.aws_tags import ownership_tags
from provision.app.tfimport.mapper import map_state
from provision.errors import UsageError


def basic_steps():
    spec = topologies.from_dict(specs.merged(specs.example(), **guide.SPEC_TABLES), "test")
    return spec, topologies.build(spec)


def parsed(data=None):
    return tfstate.parse(data or guide.tfstate(guide.fake_ids()), "terraform.tfstate")


def test_parser_keeps_managed_instances_with_module_paths_and_index_keys():
    state = parsed()
    addresses = {i.address for i in state.instances}
    assert "module.vpc.aws_subnet.private[1]" in addresses
    assert 'module.vpc_endpoints.aws_vpc_endpoint.this["kinesis-streams"]' in addresses
    assert "aws_iam_role.cross_account_role" in addresses
    assert not any(i.type == "aws_availability_zones" for i in state.instances), "data sources are someone else's"
    assert (state.serial, state.terraform_version) == (42, "1.9.5")


def test_parser_never_keeps_a_secret():
    state = parsed()
    text = json.dumps([i.attributes for i in state.instances])
    assert guide.TOKEN_SECRET not in text
    workspace = state.of_type("databricks_mws_workspaces")[0]
    assert workspace.get("token")[0]["token_id"] == "tok-1"  # the id stays
    assert state.of_type("databricks_token")[0].attributes == {"id": "tok-2", "comment": "automation"}


@pytest.mark.parametrize("version", [3, "4", None])
def test_parser_refuses_other_format_versions(version):
    data = guide.tfstate(guide.fake_ids())
    data["version"] = version
    with pytest.raises(UsageError, match="version"):
        tfstate.parse(data, "old.tfstate")


def test_read_refuses_missing_and_non_json_files(tmp_path):
    with pytest.raises(UsageError, match="cannot read"):
        tfstate.read(str(tmp_path / "none.tfstate"))
    (tmp_path / "bad.tfstate").write_text("{not json")
    with pytest.raises(UsageError, match="not JSON"):
        tfstate.read(str(tmp_path / "bad.tfstate"))
    with pytest.raises(UsageError, match="s3://bucket/key"):
        tfstate.read("s3://only-bucket", lambda: None)


def test_mapping_of_the_guide_onto_basic():
    spec, steps = basic_steps()
    ids = guide.fake_ids()
    mapping = map_state(parsed(), steps, spec.region)
    got = {sid: m.resource_id for sid, m in mapping.matches.items()}
    assert got == {
        "vpc": ids["vpc"], "subnet.private.0": ids["private"][0], "subnet.private.1": ids["private"][1],
        "subnet.public.0": ids["public"][0], "subnet.public.1": ids["public"][1], "igw": ids["igw"],
        "eip.nat.0": ids["eip"], "nat.0": ids["nat"], "rt.public": ids["rt_public"], "rt.private.0": ids["rt_private"],
        "route.private.0.nat": f"{ids['rt_private']}:0.0.0.0/0",
        "sg.workspace": ids["sg"], "vpce.s3": ids["vpce"]["s3"], "vpce.sts": ids["vpce"]["sts"], "vpce.kinesis": ids["vpce"]["kinesis-streams"],
        "iam.crossaccount": f"{guide.PREFIX}-crossaccount", "iam.crossaccount.policy": f"{guide.PREFIX}-policy",
        "s3.root": f"{guide.PREFIX}-rootbucket", "dbx.credentials": ids["credentials_id"], "dbx.storage": ids["storage_configuration_id"],
        "dbx.network": ids["network_id"], "dbx.workspace": str(ids["workspace_id"]),
    }
    assert mapping.names == {
        "iam.crossaccount": f"{guide.PREFIX}-crossaccount", "iam.crossaccount.policy": f"{guide.PREFIX}-policy",
        "s3.root": f"{guide.PREFIX}-rootbucket", "dbx.credentials": f"{guide.PREFIX}-creds", "dbx.storage": f"{guide.PREFIX}-storage",
        "dbx.network": f"{guide.PREFIX}-network", "dbx.workspace": guide.PREFIX,
    }
    absorbed = {address: step for address, step, _ in mapping.absorbed}
    assert absorbed["module.vpc.aws_route_table_association.private[1]"] == "rt.private.0"
    assert absorbed["module.vpc.aws_route.public_internet_gateway[0]"] == "rt.public"
    assert absorbed["aws_s3_bucket_versioning.root_bucket"] == "s3.root"
    assert absorbed["aws_s3_bucket_policy.root_bucket_policy"] == "s3.root.policy"
    unmapped = dict(mapping.unmapped)
    assert set(unmapped) == {"databricks_token.pat"} and "secret" in unmapped["databricks_token.pat"]
    assert mapping.remaining == ["s3.root.policy"]


def test_mapping_is_by_identity_not_by_address():
    """A flat state (no modules, other names and keys) maps alike; a subnet of another CIDR does not map."""
    spec, steps = basic_steps()
    data = guide.tfstate(guide.fake_ids())
    for resource in data["resources"]:
        resource.pop("module", None)
        resource["name"] = f"renamed_{resource['name']}"
        for n, instance in enumerate(resource["instances"]):
            instance["index_key"] = f"k{n}"
    subnet = next(r for r in data["resources"] if r["type"] == "aws_subnet" and r["instances"][0]["attributes"]["cidr_block"] == guide.PUBLIC[0])
    subnet["instances"][1]["attributes"]["cidr_block"] = "10.4.1.0/26"
    mapping = map_state(tfstate.parse(data, "flat"), steps, spec.region)
    assert "subnet.public.1" not in mapping.matches and "subnet.public.1" in mapping.remaining
    assert mapping.matches["subnet.private.1"].instance.address == 'aws_subnet.renamed_private["k1"]'
    assert any(address == 'aws_subnet.renamed_public["k1"]' for address, _ in mapping.unmapped)
    assert mapping.matches["rt.private.0"].resource_id == "rtb-0prv"


def test_two_candidates_map_to_neither():
    spec, steps = basic_steps()
    data = guide.tfstate(guide.fake_ids())
    vpc = next(r for r in data["resources"] if r["type"] == "aws_vpc")
    vpc["instances"].append(copy.deepcopy(vpc["instances"][0]))
    vpc["instances"][1]["index_key"] = 1
    vpc["instances"][1]["attributes"]["id"] = "vpc-0b2"
    mapping = map_state(tfstate.parse(data, "dup"), steps, spec.region)
    assert "vpc" not in mapping.matches and "subnet.private.0" not in mapping.matches
    assert sum("candidates for vpc" in why for _, why in mapping.unmapped) == 2


def test_ownership_tags_keep_the_resources_name():
    add = ownership_tags("acme", "vpc", {"Owner": "team"}, {"Name": "demo-vpc", "Owner": "team"}, "acme-vpc")
    assert add == {"provision:deployment": "acme", "provision:step": "vpc"}
    assert ownership_tags("acme", "vpc", {}, {}, "acme-vpc")["Name"] == "acme-vpc"


def test_mapping_of_the_privatelink_guide_onto_privatelink():
    data = specs.merged(specs.example("privatelink"), **guide.SPEC_TABLES, privatelink={"endpoint_subnet_cidr": guide.PL_CIDR})
    spec = topologies.from_dict(data, "test")
    pl = spec.privatelink
    mapping = map_state(tfstate.parse(guide.privatelink_tfstate(guide.fake_ids(), pl.workspace_service, pl.relay_service), "pl"),
                        topologies.build(spec), spec.region)
    got = {sid: m.resource_id for sid, m in mapping.matches.items()}
    assert {k: got.get(k) for k in ("subnet.endpoints", "rt.endpoints", "sg.endpoints", "vpce.workspace", "vpce.relay",
                                    "dbx.vpce.workspace", "dbx.vpce.relay", "dbx.pas", "sg.workspace", "dbx.network")} == {
        "subnet.endpoints": "subnet-0pl", "rt.endpoints": "rtb-0pl", "sg.endpoints": "sg-0pl", "vpce.workspace": "vpce-0rest",
        "vpce.relay": "vpce-0relay", "dbx.vpce.workspace": "reg-rest", "dbx.vpce.relay": "reg-relay", "dbx.pas": "pas-1",
        "sg.workspace": "sg-01", "dbx.network": "net-1",
    }
    assert mapping.names["dbx.pas"] == "Private Access Settings for private-link-ws"
    assert mapping.names["dbx.vpce.relay"].startswith("private-link-ws-vpc-relay-")
    # Private DNS on the endpoints is a setting `up` converges; nothing of the guide is left unmapped but the token.
    assert set(mapping.remaining) == {"s3.root.policy", "vpce.workspace.dns", "vpce.relay.dns"}
    assert [a for a, _ in mapping.unmapped] == ["databricks_token.pat"]


class FakeEc2:
    def __init__(self, vpcs):
        self.vpcs, self.tagged = vpcs, []

    def describe_vpcs(self, VpcIds):
        return {"Vpcs": [v for v in self.vpcs if v["VpcId"] in VpcIds]}

    def create_tags(self, Resources, Tags):
        self.tagged.append((Resources, Tags))


def tagger(ec2):
    from provision.app.tfimport.aws_tags import Tagger

    return Tagger(lambda service: ec2, lambda fn, what: fn(), deployment="acme", spec_tags={"Owner": "team"})


def test_tagger_adds_our_tags_keeps_the_name_and_refuses_another_deployments_resource():
    from provision.errors import OwnershipConflict

    ec2 = FakeEc2([{"VpcId": "vpc-1", "Tags": [{"Key": "Name", "Value": "demo"}]},
                   {"VpcId": "vpc-2", "Tags": [{"Key": "provision:deployment", "Value": "other"}]}])
    assert tagger(ec2).adopt("ec2.vpc", "vpc", "vpc-1", "acme-vpc") is True
    assert ec2.tagged == [(["vpc-1"], [{"Key": "Owner", "Value": "team"}, {"Key": "provision:deployment", "Value": "acme"},
                                       {"Key": "provision:step", "Value": "vpc"}])]
    assert tagger(ec2).adopt("ec2.vpc", "vpc", "vpc-9", "acme-vpc") is False  # gone since Terraform made it
    with pytest.raises(OwnershipConflict, match="another provision deployment"):
        tagger(ec2).adopt("ec2.vpc", "vpc", "vpc-2", "acme-vpc")


def test_read_from_s3_through_the_given_client():
    import io

    body = json.dumps(guide.tfstate(guide.fake_ids())).encode()

    class FakeS3:
        def get_object(self, Bucket, Key):
            assert (Bucket, Key) == ("tf-states", "prod/databricks.tfstate")
            return {"Body": io.BytesIO(body)}

    state = tfstate.read("s3://tf-states/prod/databricks.tfstate", lambda: FakeS3())
    assert state.source == "s3://tf-states/prod/databricks.tfstate" and len(state.of_type("aws_subnet")) == 4


def test_report_text_names_each_mapping_and_what_up_creates():
    from provision.app.tfimport.importer import ImportReport

    report = ImportReport("acme", "terraform.tfstate", "provision.state.json",
                          imported=[{"address": "module.vpc.aws_vpc.this[0]", "step": "vpc", "resource_id": "vpc-1"}],
                          absorbed=[{"address": "aws_s3_bucket_versioning.v", "step": "s3.root", "note": "a setting"}],
                          not_imported=[{"address": "databricks_token.pat", "reason": "a secret"}], up_creates=["s3.root.policy"])
    text = "\n".join(report.lines())
    assert "module.vpc.aws_vpc.this[0] -> vpc (vpc-1)" in text and "databricks_token.pat: a secret" in text
    assert "`provision up` will still create: s3.root.policy" in text


def test_zones_of_the_imported_subnets_become_the_deployments_zones():
    from provision.app.tfimport.importer import _zones

    tables = {"network": {k: v for k, v in guide.SPEC_TABLES["network"].items() if k != "availability_zones"}}
    spec = topologies.from_dict(specs.merged(specs.example(), **tables), "test")
    steps = topologies.build(spec)
    mapping = map_state(parsed(), steps, spec.region)
    assert _zones(spec, mapping, steps) == guide.ZONES
    explicit, steps = basic_steps()
    assert _zones(explicit, map_state(parsed(), steps, explicit.region), steps) is None  # the spec's own zones rule


# Only what the Databricks objects name is taken (review item 9) --------------------------------------------
def _resources(data, rtype):
    return [r for r in data["resources"] if r["type"] == rtype]


def _attrs(data, rtype):
    return _resources(data, rtype)[0]["instances"][0]["attributes"]


def test_a_bucket_the_storage_configuration_does_not_name_is_never_taken_as_the_root_bucket():
    """The storage configuration names a bucket outside this state; the state's only bucket is a logs bucket: it must
    not become s3.root (it would get our tags and `up` would rewrite its ownership controls and policy)."""
    spec, steps = basic_steps()
    data = guide.tfstate(guide.fake_ids())
    _attrs(data, "databricks_mws_storage_configurations")["bucket_name"] = "root-bucket-made-by-hand"
    logs = "demo4f2a-logs"
    for rtype in ("aws_s3_bucket", "aws_s3_bucket_policy", "aws_s3_bucket_versioning"):
        _attrs(data, rtype).update(id=logs, bucket=logs)
    mapping = map_state(tfstate.parse(data, "logs"), steps, spec.region)
    assert "s3.root" not in mapping.matches and "s3.root" not in mapping.names and "s3.root" in mapping.remaining
    assert not any(step.startswith("s3.root") for _, step, _ in mapping.absorbed), "the logs bucket's policy is not ours to replace"
    unmapped = dict(mapping.unmapped)
    assert "root-bucket-made-by-hand" in unmapped["aws_s3_bucket.root_storage_bucket"]
    # The storage configuration names a bucket this import does not take: it is not imported either.
    assert "dbx.storage" not in mapping.matches and "root-bucket-made-by-hand" in unmapped["databricks_mws_storage_configurations.this"]


def test_a_role_the_credentials_configuration_does_not_name_is_never_taken():
    spec, steps = basic_steps()
    data = guide.tfstate(guide.fake_ids())
    _attrs(data, "databricks_mws_credentials")["role_arn"] = "arn:aws:iam::123456789012:role/made-by-hand"
    mapping = map_state(tfstate.parse(data, "roles"), steps, spec.region)
    assert not {"iam.crossaccount", "iam.crossaccount.policy", "dbx.credentials"} & set(mapping.matches)
    unmapped = dict(mapping.unmapped)
    assert "made-by-hand" in unmapped["aws_iam_role.cross_account_role"]
    assert "made-by-hand" in unmapped["databricks_mws_credentials.this"]
    assert mapping.matches["s3.root"].resource_id == f"{guide.PREFIX}-rootbucket"  # the rest maps as before


def test_the_only_role_and_bucket_stand_in_when_no_databricks_object_names_one():
    spec, steps = basic_steps()
    data = guide.tfstate(guide.fake_ids())
    data["resources"] = [r for r in data["resources"] if r["type"] not in ("databricks_mws_credentials", "databricks_mws_storage_configurations")]
    mapping = map_state(tfstate.parse(data, "aws only"), steps, spec.region)
    assert mapping.matches["iam.crossaccount"].resource_id == f"{guide.PREFIX}-crossaccount"
    assert mapping.matches["s3.root"].resource_id == f"{guide.PREFIX}-rootbucket"


def test_a_workspace_on_another_network_is_not_taken():
    spec, steps = basic_steps()
    data = guide.tfstate(guide.fake_ids())
    _attrs(data, "databricks_mws_workspaces")["network_id"] = "net-elsewhere"
    mapping = map_state(tfstate.parse(data, "ws"), steps, spec.region)
    assert "dbx.workspace" not in mapping.matches and mapping.matches["dbx.network"].resource_id == "net-1"
    assert "net-elsewhere" in dict(mapping.unmapped)["databricks_mws_workspaces.this"]


# A resource its step's find does not confirm keeps none of our tags (review item 10) --------------------------
class TagEc2:
    """describe_vpcs / create_tags / delete_tags over live tag sets."""

    def __init__(self, vpcs):
        self.vpcs = {v: dict(tags) for v, tags in vpcs.items()}

    def describe_vpcs(self, VpcIds):
        return {"Vpcs": [{"VpcId": v, "Tags": [{"Key": k, "Value": x} for k, x in self.vpcs[v].items()]} for v in VpcIds if v in self.vpcs]}

    def create_tags(self, Resources, Tags):
        for r in Resources:
            self.vpcs[r].update({t["Key"]: t["Value"] for t in Tags})

    def delete_tags(self, Resources, Tags):
        for r in Resources:
            for t in Tags:
                if self.vpcs[r].get(t["Key"]) == t["Value"]:
                    del self.vpcs[r][t["Key"]]


def test_untag_takes_off_exactly_what_adopt_added():
    ec2 = TagEc2({"vpc-1": {"Name": "demo", "Owner": "someone", "ManagedBy": "Terraform"}, "vpc-2": {}})
    t = tagger(ec2)
    assert t.adopt("ec2.vpc", "vpc", "vpc-1", "acme-vpc") and t.adopt("ec2.vpc", "vpc.b", "vpc-2", "acme-vpc-b")
    assert ec2.vpcs["vpc-1"]["provision:step"] == "vpc" and ec2.vpcs["vpc-2"]["Name"] == "acme-vpc-b"
    t.untag("vpc")
    t.untag("vpc.b")
    assert ec2.vpcs == {"vpc-1": {"Name": "demo", "Owner": "someone", "ManagedBy": "Terraform"}, "vpc-2": {}}


def _adopt_vpc(found):
    from types import SimpleNamespace

    from provision.app.tfimport.importer import ImportReport, _adopt
    from provision.app.tfimport.mapper import Mapping, Match
    from provision.clouds.aws.steps.network import Vpc

    step = Vpc("vpc", guide.VPC_CIDR)
    step.find = lambda ctx: found
    ec2 = TagEc2({"vpc-0a1": {"Name": "demo"}})
    instance = tfstate.Instance("module.vpc", "aws_vpc", "this", 0, {"id": "vpc-0a1"})
    mapping = Mapping(matches={"vpc": Match("vpc", step.kind, instance, "vpc-0a1")})
    ctx = SimpleNamespace(call=lambda fn, what: fn(), name_for=lambda sid: f"acme-{sid}", outputs={})
    report = ImportReport("acme", "terraform.tfstate", "provision.state.json")
    return _adopt(ctx, tagger(ec2), mapping, [step], report), report, ec2


def test_a_resource_its_steps_find_does_not_confirm_loses_our_tags_and_is_not_imported():
    # The step finds another VPC (one already tagged as this deployment's): the Terraform VPC must not stay tagged.
    outputs, report, ec2 = _adopt_vpc({"vpc_id": "vpc-other", "cidr": guide.VPC_CIDR})
    assert outputs == {} and report.imported == []
    assert ec2.vpcs["vpc-0a1"] == {"Name": "demo"}
    assert "finds vpc-other, not vpc-0a1" in report.not_imported[0]["reason"]
    outputs, report, ec2 = _adopt_vpc(None)
    assert outputs == {} and ec2.vpcs["vpc-0a1"] == {"Name": "demo"}
    # Confirmed: imported, and the tags stay.
    outputs, report, ec2 = _adopt_vpc({"vpc_id": "vpc-0a1", "cidr": guide.VPC_CIDR})
    assert outputs == {"vpc": {"vpc_id": "vpc-0a1", "cidr": guide.VPC_CIDR}} and ec2.vpcs["vpc-0a1"]["provision:step"] == "vpc"


def test_a_find_that_raises_an_ownership_conflict_loses_our_tags_too():
    from provision.errors import OwnershipConflict

    def conflict(ctx):
        raise OwnershipConflict("two VPCs")

    from types import SimpleNamespace

    from provision.app.tfimport.importer import ImportReport, _adopt
    from provision.app.tfimport.mapper import Mapping, Match
    from provision.clouds.aws.steps.network import Vpc

    step = Vpc("vpc", guide.VPC_CIDR)
    step.find = conflict
    ec2 = TagEc2({"vpc-0a1": {}})
    mapping = Mapping(matches={"vpc": Match("vpc", step.kind, tfstate.Instance("", "aws_vpc", "v", None, {"id": "vpc-0a1"}), "vpc-0a1")})
    report = ImportReport("acme", "t", "s")
    _adopt(SimpleNamespace(call=lambda fn, what: fn(), name_for=lambda sid: "acme-vpc", outputs={}), tagger(ec2), mapping, [step], report)
    assert ec2.vpcs["vpc-0a1"] == {} and "two VPCs" in report.not_imported[0]["reason"]


# One write of our state, at the end (review item 3) ----------------------------------------------------------
def _offline_import(tmp_path, monkeypatch, adopt, state_path=None, writes=None):
    """importer.run with no cloud: the run's preparation and preflight stubbed, `_adopt` replaced; the backend counts
    its writes (each payload, into `writes`). Returns (report, the Terraform state path, its bytes before)."""
    from provision.app import runner
    from provision.app.tfimport import importer
    from provision.orchestrator.clients import SANDBOX, CallStats, Clients, Target
    from provision.state.backend import LocalBackend

    spec, steps = basic_steps()
    writes = [] if writes is None else writes

    class Counting(LocalBackend):
        def write(self, payload, expected):
            writes.append(json.loads(payload))
            return super().write(payload, expected)

    target = Target(kind=SANDBOX)
    clients = Clients(target, {"aws": type("Aws", (), {"client": staticmethod(lambda service: None)})()}, CallStats())
    monkeypatch.setattr(runner, "prepare", lambda spec_, kind: runner._Run(spec_, steps, target, clients, runner._CallLog()))
    monkeypatch.setattr(runner, "preflight", lambda run_, source: None)
    monkeypatch.setattr(runner, "state_backend", lambda opts, spec_, sandbox: Counting(state_path or tmp_path / "provision.state.json"))
    monkeypatch.setattr(importer.topologies, "load", lambda config: spec)
    monkeypatch.setattr(importer, "_adopt", adopt)
    tf = tmp_path / "terraform.tfstate"
    tf.write_text(json.dumps(guide.tfstate(guide.fake_ids())))
    before = tf.read_bytes()
    report = importer.run(str(tf), tmp_path / "spec.toml", runner.RunOptions(console_write=lambda line: None), sandbox=True)
    return report, tf, before


def test_import_writes_our_state_once_even_when_a_find_resolves_a_fact(tmp_path, monkeypatch):
    writes, writes_seen = [], []

    def adopt(ctx, tagger, mapping, steps_, report):
        assert ctx.fact("aws_account_id", lambda: "123456789012") == "123456789012"  # what a find may resolve
        writes_seen.append(len(writes))
        report.imported.append({"address": "module.vpc.aws_vpc.this[0]", "step": "vpc", "resource_id": "vpc-0a1"})
        return {"vpc": {"vpc_id": "vpc-0a1", "cidr": guide.VPC_CIDR}}

    report, tf, before = _offline_import(tmp_path, monkeypatch, adopt, writes=writes)
    assert writes_seen == [0], "a fact resolved during the import wrote the state early"
    assert len(writes) == 1
    saved = writes[0]
    assert saved["facts"]["aws_account_id"] == "123456789012" and saved["facts"]["names"]["dbx.workspace"] == guide.PREFIX
    assert {s["id"]: s["status"] for s in saved["steps"]}["vpc"] == "done"
    text = (tmp_path / "provision.state.json").read_text() + json.dumps(report.to_json()) + "\n".join(report.lines())
    text += "".join(p.read_text() for p in (tmp_path / "provision-logs").glob("*"))
    assert guide.TOKEN_SECRET not in text
    assert tf.read_bytes() == before


def test_our_state_is_never_written_over_the_terraform_state(tmp_path, monkeypatch):
    def adopt(*args):
        raise AssertionError("nothing is adopted")

    with pytest.raises(UsageError, match="the Terraform state itself"):
        _offline_import(tmp_path, monkeypatch, adopt, state_path=tmp_path / "sub" / ".." / "terraform.tfstate")


def test_every_sensitive_attribute_is_dropped_whatever_its_key():
    """Terraform's index steps hold a cty value ({"value": 0, "type": "number"}): a sensitive attribute in a list or map
    under a key that is not a known credential name is dropped all the same, and a path that cannot be followed drops
    its whole top-level attribute."""
    number = lambda n: {"type": "index", "value": {"value": n, "type": "number"}}
    data = {"version": 4, "resources": [{"mode": "managed", "type": "databricks_mws_workspaces", "name": "w", "instances": [{
        "attributes": {"id": "acc/1", "workspace_id": 1, "token": [{"token_id": "tok-1", "opaque": "S3CRET-list"}],
                       "custom_tags": {"k": "S3CRET-map"}, "odd": {"deep": "S3CRET-odd"}},
        "sensitive_attributes": [
            [{"type": "get_attr", "value": "token"}, number(0), {"type": "get_attr", "value": "opaque"}],
            [{"type": "get_attr", "value": "custom_tags"}, {"type": "index", "value": {"value": "k", "type": "string"}}],
            [{"type": "get_attr", "value": "odd"}, number(3), {"type": "get_attr", "value": "deep"}],
        ]}]}]}
    before = copy.deepcopy(data)
    state = tfstate.parse(data, "sensitive")
    attributes = state.instances[0].attributes
    assert "S3CRET" not in json.dumps(attributes)
    assert attributes["token"] == [{"token_id": "tok-1"}] and attributes["workspace_id"] == 1 and "odd" not in attributes
    assert data == before, "the input is only read"


def test_an_import_after_which_up_could_not_create_the_specs_subnets_is_refused_before_anything():
    """The guide carved its VPC differently: our subnet would overlap a Terraform subnet that did not map."""
    from types import SimpleNamespace

    from provision.app.tfimport.importer import _refuse_collisions
    from provision.app.tfimport.mapper import Mapping, Match
    from provision.app.tfimport.tfstate import Instance
    from provision.clouds.aws.context import Zones
    from provision.clouds.aws.steps.network import Subnet, Vpc
    from provision.errors import UsageError

    vpc = Instance("module.vpc", "aws_vpc", "this", 0, {"id": "vpc-1", "cidr_block": "10.0.0.0/16"})
    theirs = Instance("module.vpc", "aws_subnet", "private", 0, {"id": "subnet-9", "vpc_id": "vpc-1", "cidr_block": "10.0.0.0/18"})
    tf = SimpleNamespace(of_type=lambda *types: [theirs] if "aws_subnet" in types else [])
    mapping = Mapping(matches={"vpc": Match("vpc", "ec2.vpc", vpc, "vpc-1")})
    steps = [Vpc("vpc", cidr="10.0.0.0/16"), Subnet("subnet.private.0", vpc="vpc", cidr="10.0.0.0/19", zones=Zones(2))]
    with pytest.raises(UsageError) as caught:
        _refuse_collisions(tf, mapping, steps)
    assert "subnet.private.0 would create 10.0.0.0/19, which overlaps module.vpc.aws_subnet.private[0] (10.0.0.0/18)" in str(caught.value)
    # Elsewhere in the VPC: no collision, nothing refused.
    steps[1] = Subnet("subnet.private.0", vpc="vpc", cidr="10.0.128.0/19", zones=Zones(2))
    _refuse_collisions(tf, mapping, steps)
