"""Validation of the deployment spec: every rule names its field and says why."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provision import topologies as spec
from provision.clouds.aws.spec import bucket_problem
from provision.spec import Spec
from provision.errors import SpecError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "basic.toml"
EXAMPLES = EXAMPLE.parent
BASE = tomllib.loads(EXAMPLE.read_text())


def base() -> dict:
    return copy.deepcopy(BASE)


def with_(path: str, value) -> dict:
    """The base spec with the dotted `path` set to `value`."""
    data = base()
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return data


def without(path: str) -> dict:
    data = base()
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    del node[leaf]
    return data


def problems(data: dict) -> list:
    with pytest.raises(SpecError) as info:
        spec.from_dict(data)
    assert info.value.problems, "SpecError without problems"
    return info.value.problems


def assert_problem(data: dict, field: str, *fragments: str) -> None:
    found = problems(data)
    reasons = [p.reason for p in found if p.field == field]
    assert reasons, f"no problem for {field!r}; got {[str(p) for p in found]}"
    assert any(all(f in r for f in fragments) for r in reasons), f"{field}: {reasons} lack {fragments}"


# --- a valid spec ------------------------------------------------------------------------------


def test_example_is_valid_and_derives_subnets_zones_and_bucket():
    s = spec.from_dict(base())
    assert s.network.vpc_cidr == "10.40.0.0/16"
    assert s.network.availability_zones == () and s.network.az_count == 2  # resolved from the region at run time
    assert s.network.private_subnet_cidrs == ("10.40.0.0/19", "10.40.32.0/19")
    assert s.network.public_subnet_cidrs == ("10.40.64.0/26", "10.40.64.64/26")
    assert s.network.nat == "single"
    assert s.databricks.pricing_tier == "PREMIUM"
    assert s.timeouts.retry_deadline_seconds == 300.0
    assert s.tags == {"Owner": "platform-team", "CostCenter": "data-1234"}


def test_derivation_is_deterministic():
    assert spec.describe(spec.from_dict(base())) == spec.describe(spec.from_dict(base()))


def test_bucket_name_is_stable_and_differs_between_deployments():
    first = spec.from_dict(base()).storage.bucket_name
    again = spec.from_dict(base()).storage.bucket_name
    other = spec.from_dict(with_("name", "acme-other")).storage.bucket_name
    other_region = spec.from_dict(with_("region", "eu-west-1")).storage.bucket_name
    assert first == again
    assert first.startswith("acme-basic-root-")
    assert bucket_problem(first) is None
    assert len({first, other, other_region}) == 3


def test_explicit_bucket_name_is_used():
    assert spec.from_dict(with_("storage.bucket_name", "my.bucket-1")).storage.bucket_name == "my.bucket-1"


def test_explicit_valid_subnets_are_accepted():
    data = with_("network.private_subnet_cidrs", ["10.40.0.0/20", "10.40.16.0/20"])
    data["network"]["public_subnet_cidrs"] = ["10.40.128.0/28", "10.40.128.16/28"]
    s = spec.from_dict(data)
    assert s.network.private_subnet_cidrs == ("10.40.0.0/20", "10.40.16.0/20")
    assert s.network.public_subnet_cidrs == ("10.40.128.0/28", "10.40.128.16/28")


def test_three_zones_derive_three_subnets_each():
    s = spec.from_dict(with_("network.az_count", 3))
    assert s.network.availability_zones == () and s.network.az_count == 3
    assert len(s.network.private_subnet_cidrs) == len(s.network.public_subnet_cidrs) == 3


# --- files -------------------------------------------------------------------------------------


def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(SpecError) as info:
        spec.load(path)
    assert info.value.source == str(path)
    assert [(p.field, p.reason) for p in info.value.problems] == [("(file)", "does not exist")]


def test_load_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "acme\n[network\n')
    with pytest.raises(SpecError) as info:
        spec.load(path)
    [problem] = info.value.problems
    assert problem.field == "(file)"
    assert "not valid TOML" in problem.reason
    assert str(path) in str(info.value)


def test_load_valid_file(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(EXAMPLE.read_text())
    assert spec.load(path).name == "acme-basic"


# --- network -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cidr", ["10.40.0.0/33", "10.400.0.0/16", "banana", "10.40.0.0/-1", "10.40.0.0/16/2"])
def test_malformed_vpc_cidr(cidr):
    assert_problem(with_("network.vpc_cidr", cidr), "network.vpc_cidr", "not a valid IPv4 CIDR")


def test_empty_vpc_cidr_is_a_spec_error():
    # BUG: "" skips parsing without recording a problem; from_dict then dies on an internal assert.
    assert_problem(with_("network.vpc_cidr", ""), "network.vpc_cidr")


def test_vpc_cidr_with_host_bits_suggests_the_network():
    assert_problem(with_("network.vpc_cidr", "10.40.1.0/16"), "network.vpc_cidr", "host bits set", "10.40.0.0/16")


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "10.40.0.0/15", "10.40.0.0/29", "10.40.0.0"])
def test_vpc_netmask_outside_aws_range(cidr):
    assert_problem(with_("network.vpc_cidr", cidr), "network.vpc_cidr", "outside", "/16-/28")


@pytest.mark.parametrize("mask", [16, 27, 0])
def test_private_subnet_netmask_outside_databricks_range(mask):
    assert_problem(with_("network.private_subnet_netmask", mask), "network.private_subnet_netmask", f"/{mask}", "/17-/26")


@pytest.mark.parametrize("mask", [15, 29])
def test_public_subnet_netmask_outside_aws_range(mask):
    assert_problem(with_("network.public_subnet_netmask", mask), "network.public_subnet_netmask", f"/{mask}", "/16-/28")


def test_explicit_private_subnet_netmask_outside_databricks_range():
    data = with_("network.private_subnet_cidrs", ["10.40.0.0/19", "10.40.32.0/27"])
    data["network"]["public_subnet_cidrs"] = ["10.40.64.0/26", "10.40.64.64/26"]
    assert_problem(data, "network.private_subnet_cidrs[1]", "/27", "/17-/26")


def test_explicit_subnet_malformed_and_host_bits():
    data = with_("network.private_subnet_cidrs", ["nope", "10.40.32.1/19"])
    data["network"]["public_subnet_cidrs"] = ["10.40.64.0/26", "10.40.64.64/26"]
    assert_problem(data, "network.private_subnet_cidrs[0]", "not a valid IPv4 CIDR")
    assert_problem(data, "network.private_subnet_cidrs[1]", "host bits set")


def test_overlapping_explicit_subnets():
    data = with_("network.private_subnet_cidrs", ["10.40.0.0/19", "10.40.32.0/19"])
    data["network"]["public_subnet_cidrs"] = ["10.40.32.0/26", "10.40.64.0/26"]
    assert_problem(data, "network.public_subnet_cidrs", "10.40.32.0/26 overlaps 10.40.32.0/19")


def test_overlapping_private_subnets_with_each_other():
    data = with_("network.private_subnet_cidrs", ["10.40.0.0/19", "10.40.16.0/20"])
    data["network"]["public_subnet_cidrs"] = ["10.40.64.0/26", "10.40.64.64/26"]
    assert_problem(data, "network.private_subnet_cidrs", "overlaps")


def test_subnet_outside_vpc():
    data = with_("network.private_subnet_cidrs", ["10.40.0.0/19", "10.41.0.0/19"])
    data["network"]["public_subnet_cidrs"] = ["10.40.64.0/26", "10.40.64.64/26"]
    assert_problem(data, "network.private_subnet_cidrs[1]", "not inside network.vpc_cidr 10.40.0.0/16")


def test_one_explicit_list_without_the_other():
    assert_problem(
        with_("network.private_subnet_cidrs", ["10.40.0.0/19", "10.40.32.0/19"]), "network", "private_subnet_cidrs and public_subnet_cidrs"
    )


def test_explicit_subnets_need_one_per_zone():
    data = with_("network.private_subnet_cidrs", ["10.40.0.0/19"])
    data["network"]["public_subnet_cidrs"] = ["10.40.64.0/26", "10.40.64.64/26"]
    assert_problem(data, "network.private_subnet_cidrs", "one CIDR per availability zone")


def test_vpc_too_small_for_derived_subnets():
    assert_problem(with_("network.vpc_cidr", "10.40.0.0/19"), "network.vpc_cidr", "too small", "2 private /19")


@pytest.mark.parametrize("count", [1, 0, -3])
def test_az_count_below_two(count):
    assert_problem(with_("network.az_count", count), "network.az_count", "at least 2", str(count))


def test_az_count_above_six():
    assert_problem(with_("network.az_count", 7), "network.az_count", "at most 6")


def test_zones_of_another_region():
    assert_problem(
        with_("network.availability_zones", ["us-west-2a", "us-west-2b"]),
        "network.availability_zones",
        "'us-west-2a' is not a zone of region us-east-1",
    )


def test_duplicated_zones():
    assert_problem(with_("network.availability_zones", ["us-east-1a", "us-east-1a"]), "network.availability_zones", "distinct")


def test_zone_count_disagrees_with_az_count():
    data = with_("network.availability_zones", ["us-east-1a", "us-east-1b", "us-east-1c"])
    assert_problem(data, "network.availability_zones", "lists 3 zones", "az_count is 2")


def test_explicit_zones_are_used():
    data = without("network.az_count")
    data["network"]["availability_zones"] = ["us-east-1c", "us-east-1d"]
    assert spec.from_dict(data).network.availability_zones == ("us-east-1c", "us-east-1d")


def test_bad_nat_mode():
    assert_problem(with_("network.nat", "per-az"), "network.nat", "single, per_az", "'per-az'")


def test_network_is_required():
    assert_problem(without("network"), "network", "is required")


def test_vpc_cidr_is_required():
    assert_problem(without("network.vpc_cidr"), "network.vpc_cidr", "is required")


# --- identity ----------------------------------------------------------------------------------


def test_unknown_region():
    assert_problem(with_("region", "us-east-9"), "region", "'us-east-9'", "not an AWS region where Databricks runs")


@pytest.mark.parametrize("name", ["Acme-basic", "a" * 29, "acme-", "ab", "1acme", "acme_basic", ""])
def test_bad_deployment_name(name):
    assert_problem(with_("name", name), "name", "lowercase letters, digits and hyphens")


def test_longest_deployment_name_is_accepted():
    assert spec.from_dict(with_("name", "a" * 28)).name == "a" * 28


def test_deployment_name_with_trailing_newline_is_rejected():
    # BUG: `_NAME_RE.match` with `$` accepts a trailing "\n" (the bucket name derived from it is then invalid too).
    assert_problem(with_("name", "acme-basic\n"), "name")


@pytest.mark.parametrize(
    "account_id",
    ["12345", "5A4DB0C5-0000-4000-8000-00000000000A", "5a4db0c5-0000-4000-8000-00000000000", "5a4db0c500004000800000000000000a"],
)
def test_bad_account_id(account_id):
    assert_problem(with_("databricks.account_id", account_id), "databricks.account_id", "not a Databricks account id")


def test_account_id_is_required():
    assert_problem(without("databricks.account_id"), "databricks.account_id", "is required")


@pytest.mark.parametrize(
    "bucket, why",
    [
        ("Acme-Bucket", "lowercase letters"),
        ("ab", "3-63 characters"),
        ("a" * 64, "3-63 characters"),
        ("acme_bucket", "lowercase letters"),
        ("-acme", "starting and ending"),
        ("acme..root", "'..'"),
        ("acme.-root", "'..', '.-' or '-.'"),
        ("192.168.10.1", "IP address"),
        ("xn--acme", "reserves"),
        ("acme-s3alias", "reserves"),
    ],
)
def test_bad_bucket_name(bucket, why):
    assert_problem(with_("storage.bucket_name", bucket), "storage.bucket_name", repr(bucket), why)


def test_bad_pricing_tier():
    assert_problem(with_("databricks.pricing_tier", "premium"), "databricks.pricing_tier", "STANDARD, PREMIUM, ENTERPRISE", "'premium'")


def test_bad_host_and_profile():
    data = with_("databricks.host", "http://accounts.cloud.databricks.com")
    data["databricks"]["profile"] = "has space"
    assert_problem(data, "databricks.host", "https://")
    assert_problem(data, "databricks.profile", "not a valid profile name")


def test_unknown_topology():
    assert_problem(with_("topology", "fancy"), "topology", "unknown topology 'fancy'")


# --- typos and tags ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["nmae", "network.vpc_cidrs", "network.natt", "databricks.acount_id", "storage.bucket", "timeouts.retry_deadline"],
)
def test_unknown_fields_are_reported(path):
    assert_problem(with_(path, "x"), path, "unknown field")


def test_unknown_empty_key_names_a_field():
    # BUG (minor): TOML allows `"" = 1`; the problem is reported with an empty field name.
    data = base()
    data[""] = 1
    [problem] = problems(data)
    assert problem.field and problem.reason == "unknown field"


@pytest.mark.parametrize("key", ["Name", "provision:deployment", "provision:", "aws:createdBy"])
def test_reserved_tags(key):
    assert_problem(with_(f"tags.{key}", "v"), f"tags.{key}", "reserved")


def test_tag_limits_and_types():
    data = with_("tags.Long", "v" * 257)
    data["tags"]["Count"] = 3
    assert_problem(data, "tags.Long", "256")
    assert_problem(data, "tags.Count", "must be a string")


def test_tags_must_be_a_table():
    assert_problem(with_("tags", ["Owner"]), "tags", "table")


# --- timeouts and types ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["retry_deadline_seconds", "workspace_seconds", "resource_seconds"])
@pytest.mark.parametrize("value", [0, -5, 0.5])
def test_timeouts_must_be_positive(field, value):
    assert_problem(with_(f"timeouts.{field}", value), f"timeouts.{field}", "at least 1", f"{value:g}")


def test_timeout_accepts_float():
    assert spec.from_dict(with_("timeouts.resource_seconds", 12.5)).timeouts.resource_seconds == 12.5


@pytest.mark.parametrize(
    "path, value, got",
    [
        ("network.az_count", "2", "str"),
        ("network.az_count", True, "bool"),
        ("network.az_count", 2.0, "float"),
        ("network.private_subnet_netmask", "19", "str"),
        ("network.public_subnet_netmask", False, "bool"),
        ("timeouts.retry_deadline_seconds", "300", "str"),
        ("timeouts.workspace_seconds", True, "bool"),
    ],
)
def test_wrong_type_for_number(path, value, got):
    assert_problem(with_(path, value), path, "must be a", got)


@pytest.mark.parametrize(
    "path, value",
    [("name", 5), ("region", ["us-east-1"]), ("network.vpc_cidr", 167772160), ("databricks.account_id", None), ("network.nat", True)],
)
def test_wrong_type_for_string(path, value):
    assert_problem(with_(path, value), path, "must be a string", type(value).__name__)


@pytest.mark.parametrize("path", ["network", "databricks", "storage", "timeouts"])
def test_section_must_be_a_table(path):
    assert_problem(with_(path, "oops"), path, "must be a table, got str")


def test_zone_list_must_be_strings():
    assert_problem(with_("network.availability_zones", ["us-east-1a", 2]), "network.availability_zones", "list of strings")


def test_all_problems_are_reported_at_once():
    data = base()
    data["name"] = "Bad_Name"
    data["region"] = "mars-1"
    data["colour"] = "blue"
    data["network"]["vpc_cidr"] = "10.40.0.0/8"
    data["network"]["nat"] = "lots"
    data["databricks"]["pricing_tier"] = "GOLD"
    data["tags"]["Name"] = "x"
    data["timeouts"]["workspace_seconds"] = -1
    with pytest.raises(SpecError) as info:
        spec.from_dict(data, source="acme.toml")
    fields = {p.field for p in info.value.problems}
    assert fields >= {
        "name", "region", "colour", "network.vpc_cidr", "network.nat", "databricks.pricing_tier", "tags.Name", "timeouts.workspace_seconds",
    }
    message = str(info.value)
    assert message.startswith("invalid deployment spec acme.toml:")
    assert "  - network.nat: " in message


# --- fuzzing -----------------------------------------------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=10), inner, max_size=3),
    max_leaves=6,
)
INTERESTING = st.sampled_from(
    ["", "10.40.0.0/16", "10.40.0.0/28", "10.40.0.1/16", "us-east-1", "us-east-1a", "single", "PREMIUM", "Name", "a"]
) | st.integers(min_value=-2, max_value=40)


def _paths(node, prefix=()):
    """Every (path) into nested dicts/lists of `node`, containers included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield prefix + (i,)
            yield from _paths(value, prefix + (i,))


def _parent(data, path):
    node = data
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def mutated_specs(draw):
    data = base()
    if draw(st.booleans()):
        data["network"]["private_subnet_cidrs"] = ["10.40.0.0/19", "10.40.32.0/19"]
        data["network"]["public_subnet_cidrs"] = ["10.40.64.0/26", "10.40.64.64/26"]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = list(_paths(data))
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "add" or not paths:
            where = draw(st.sampled_from([()] + [p for p in paths if isinstance(_parent(data, p + ("x",)), dict)]))
            target = _parent(data, where + ("x",))
            target[draw(st.text(min_size=1, max_size=12))] = draw(JSONISH | INTERESTING)
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        if op == "replace":
            parent[path[-1]] = draw(JSONISH | INTERESTING)
        else:
            del parent[path[-1]]
    return data


@settings(max_examples=300, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_mutated_specs_either_validate_or_report_field_problems(data):
    try:
        result = spec.from_dict(data)
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert isinstance(problem.field, str) and problem.field
            assert isinstance(problem.reason, str) and problem.reason
    else:
        assert isinstance(result, Spec)


def test_privatelink_needs_service_names_outside_the_shipped_table():
    data = tomllib.loads((EXAMPLES / "privatelink.toml").read_text())
    data["region"] = "eu-north-1"
    data["network"].pop("availability_zones", None)
    with pytest.raises(SpecError) as err:
        spec.from_dict(data)
    fields = {p.field for p in err.value.problems}
    assert {"privatelink.workspace_service", "privatelink.relay_service"} <= fields
    data["privatelink"]["workspace_service"] = "com.amazonaws.vpce.eu-north-1.vpce-svc-0123456789abcdef0"
    data["privatelink"]["relay_service"] = "com.amazonaws.vpce.eu-north-1.vpce-svc-0123456789abcdef1"
    assert spec.from_dict(data).privatelink.workspace_service.endswith("0123456789abcdef0")


def test_privatelink_endpoint_subnet_must_fit_the_new_vpc():
    data = tomllib.loads((EXAMPLES / "privatelink.toml").read_text())
    data["privatelink"]["endpoint_subnet_cidr"] = "10.50.0.0/27"  # inside the first workspace subnet
    with pytest.raises(SpecError) as err:
        spec.from_dict(data)
    assert any(p.field == "privatelink.endpoint_subnet_cidr" and "overlaps" in p.reason for p in err.value.problems)


def test_an_existing_network_is_all_three_ids_and_excludes_network():
    data = tomllib.loads((EXAMPLES / "privatelink-existing-vpc.toml").read_text())
    del data["existing"]["security_group_id"]
    data["network"] = {"vpc_cidr": "10.0.0.0/16"}
    with pytest.raises(SpecError) as err:
        spec.from_dict(data)
    fields = {p.field for p in err.value.problems}
    assert {"existing.security_group_id", "network"} <= fields


def test_privatelink_requires_enterprise_and_public_access_and_regional_services():
    data = tomllib.loads((EXAMPLES / "privatelink.toml").read_text())
    data["databricks"]["pricing_tier"] = "PREMIUM"
    data["privatelink"]["public_access_enabled"] = False
    data["privatelink"]["relay_service"] = "com.amazonaws.vpce.eu-west-1.vpce-svc-09b4eb2bc775f4e8c"
    with pytest.raises(SpecError) as err:
        spec.from_dict(data)
    fields = {p.field: p.reason for p in err.value.problems}
    assert "ENTERPRISE" in fields["databricks.pricing_tier"]
    assert "front-end" in fields["privatelink.public_access_enabled"]
    assert "us-east-1" in fields["privatelink.relay_service"]


# --- specs as run (read back from a state file) ----------------------------------------------------


def test_a_hub_spoke_spec_as_run_with_tables_it_never_read_still_loads(tmp_path):
    """An older provision ignored [existing] and [storage] in a hub-and-spoke spec; a deployment built from
    one must stay resumable. A new spec with them is refused, naming the topologies that read them."""
    data = {**tomllib.loads((EXAMPLES / "hub-spoke.toml").read_text()), "storage": {"bucket_name": "old-bucket"}, "existing": {}}
    with pytest.raises(SpecError) as refused:
        spec.from_dict(data)
    assert {p.field for p in refused.value.problems} == {"storage", "existing"}
    assert 'only applies to topologies "basic", "privatelink"' in str(refused.value)
    loaded = spec.from_dict(data, as_run=True)
    assert loaded.hub is not None and loaded.storage is None and loaded.raw["storage"] == {"bucket_name": "old-bucket"}


def test_an_unknown_topology_still_reports_the_deployment_wide_problems():
    with pytest.raises(SpecError) as refused:
        spec.from_dict({**base(), "topology": "fancy", "region": "mars-1", "timeouts": {"resource_seconds": -1}})
    assert {"topology", "region", "timeouts.resource_seconds"} <= {p.field for p in refused.value.problems}


def test_a_section_of_no_topology_is_an_error_not_none():
    loaded = spec.from_dict(base())
    assert loaded.hub is None and loaded.network is not None
    with pytest.raises(AttributeError, match="netwrok"):
        loaded.netwrok  # noqa: B018
    other = spec.from_dict(with_("network.vpc_cidr", "10.99.0.0/16"))
    assert other != loaded
