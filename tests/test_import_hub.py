"""`provision import --terraform-state` onto the hub-spoke topology: a version-4 state shaped like what the Databricks
hub-and-spoke Terraform guide builds (hub and spoke VPCs, the transit gateway and its attachments, Network Firewall,
the VPC endpoints module, the role, the bucket, the account objects), mapped with no cloud; and the tagging of the
new kinds (transit gateway, attachments, TGW route tables, Network Firewall objects) against botocore Stubbers."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import specs
from botocore.stub import Stubber

from provision import topologies
from provision.app.tfimport import tfstate
from provision.app.tfimport.aws_tags import Tagger
from provision.app.tfimport.mapper_hub import map_hub_state

PREFIX = "demo7kq2xz"
ACCOUNT = "123456789012"
HUB_CIDR, SPOKE_CIDR = "10.10.0.0/16", "10.173.0.0/16"
SPOKE_PRIVATE = ["10.173.0.0/19", "10.173.32.0/19"]  # the guide's cidrsubnet(spoke, 3, 0..1): the spec's /19s too
GUIDE_SPOKE_TGW = ["10.173.64.0/19", "10.173.96.0/19"]  # cidrsubnet(spoke, 3, 2..3)
GUIDE_HUB = {"tgw": "10.10.0.0/19", "public": "10.10.32.0/19", "firewall": "10.10.64.0/19"}  # cidrsubnet(hub, 3, 0..2)
# The same guide with its locals set to the spec's subnets (the hub's and the spokes' TGW subnets are /28s).
SPEC_HUB = {"tgw": "10.10.0.0/28", "public": "10.10.0.32/28", "firewall": "10.10.0.64/28"}
SPEC_SPOKE_TGW = ["10.173.64.0/28", "10.173.64.16/28"]
NFW = f"arn:aws:network-firewall:us-east-1:{ACCOUNT}"


def hub_spec(spoke_cidr: str = SPOKE_CIDR):
    data = specs.merged(specs.example("hub-spoke"), hub={"vpc_cidr": HUB_CIDR, "az_count": 2},
                        spokes=[{"name": "analytics", "vpc_cidr": spoke_cidr}])
    data["databricks"].pop("workspace_token", None)
    spec = topologies.from_dict(data, "test")
    return spec, topologies.build(spec)


def _resource(rtype: str, name: str, instances: list[tuple[Any, dict]], module: str | None = None) -> dict[str, Any]:
    provider = {"databricks": "databricks/databricks", "random": "hashicorp/random"}.get(rtype.split("_")[0], "hashicorp/aws")
    out: dict[str, Any] = {"mode": "managed", "type": rtype, "name": name, "provider": f'provider["registry.terraform.io/{provider}"]',
                           "instances": [{"schema_version": 0, "attributes": a, "sensitive_attributes": [],
                                          **({"index_key": k} if k is not None else {})} for k, a in instances]}
    if module:
        out["module"] = module
    return out


def _rule_group(name: str, arn: str, rules_source: dict[str, Any]) -> dict[str, Any]:
    home = [{"key": "HOME_NET", "ip_set": [{"definition": [SPOKE_CIDR, HUB_CIDR]}]}]
    return {"id": arn, "arn": arn, "name": name, "type": "STATEFUL", "capacity": 100,
            "rule_group": [{"rules_source": [rules_source], "rule_variables": [{"ip_sets": home}]}]}


def _rule(action: str, protocol: str, destination: str, port: str, sid: int) -> dict[str, Any]:
    return {"action": action, "header": [{"destination": destination, "destination_port": port, "protocol": protocol, "direction": "ANY",
                                          "source": "ANY", "source_port": "ANY"}], "rule_option": [{"keyword": f"sid:{sid}"}]}


def guide_state(hub_cidrs: dict[str, str] = SPEC_HUB, spoke_tgw: list[str] = SPEC_SPOKE_TGW, own_tgw_tables: bool = True) -> dict[str, Any]:
    """The guide's resources as Terraform records them. own_tgw_tables: the TGW's default tables off and two tables of
    its own (hub, spokes) with associations and static routes; else the guide's default route table."""
    acct, bucket = "5a4db0c5-0000-4000-8000-00000000000a", f"{PREFIX}-rootbucket"
    rg = {k: f"{NFW}:stateful-rulegroup/{PREFIX}-{k}-rg" for k in ("databricks-fqdns", "allow-db-cpl-protocols", "deny-protocols")}
    policy_arn, fw_arn = f"{NFW}:firewall-policy/{PREFIX}-egress-policy", f"{NFW}:firewall/{PREFIX}-fw"
    default_rt = "tgw-rtb-0default"
    rt = {"hub": "tgw-rtb-0hub", "spokes": "tgw-rtb-0spk"} if own_tgw_tables else {"hub": default_rt, "spokes": default_rt}
    enable = "disable" if own_tgw_tables else "enable"
    res = [
        _resource("random_string", "naming", [(None, {"id": PREFIX[4:], "result": PREFIX[4:]})]),
        _resource("aws_iam_role", "cross_account_role", [(None, {"id": f"{PREFIX}-crossaccount", "name": f"{PREFIX}-crossaccount",
                                                                  "arn": f"arn:aws:iam::{ACCOUNT}:role/{PREFIX}-crossaccount"})]),
        _resource("aws_iam_role_policy", "this", [(None, {"id": f"{PREFIX}-crossaccount:{PREFIX}-policy", "name": f"{PREFIX}-policy",
                                                          "role": f"{PREFIX}-crossaccount"})]),
        _resource("databricks_mws_credentials", "this", [(None, {"id": f"{acct}/cred-1", "credentials_id": "cred-1", "credentials_name": f"{PREFIX}-creds",
                                                                 "role_arn": f"arn:aws:iam::{ACCOUNT}:role/{PREFIX}-crossaccount"})]),
        # the spoke
        _resource("aws_vpc", "spoke_vpc", [(None, {"id": "vpc-0spoke", "cidr_block": SPOKE_CIDR})]),
        _resource("aws_subnet", "spoke_db_private_subnet", [(i, {"id": f"subnet-0sp{i}", "vpc_id": "vpc-0spoke", "cidr_block": c,
                                                                 "availability_zone": f"us-east-1{'ab'[i]}"}) for i, c in enumerate(SPOKE_PRIVATE)]),
        _resource("aws_subnet", "spoke_tgw_private_subnet", [(i, {"id": f"subnet-0st{i}", "vpc_id": "vpc-0spoke", "cidr_block": c,
                                                                  "availability_zone": f"us-east-1{'ab'[i]}"}) for i, c in enumerate(spoke_tgw)]),
        _resource("aws_route_table", "spoke_db_private_rt", [(None, {"id": "rtb-0spoke", "vpc_id": "vpc-0spoke"})]),
        _resource("aws_main_route_table_association", "spoke-set-worker-default-rt-assoc", [(None, {"id": "rtbassoc-0spm", "vpc_id": "vpc-0spoke",
                                                                                                    "route_table_id": "rtb-0spoke"})]),
        _resource("aws_route_table_association", "spoke_db_private_rta", [(i, {"id": f"rtbassoc-0sp{i}", "subnet_id": f"subnet-0sp{i}",
                                                                               "route_table_id": "rtb-0spoke"}) for i in range(2)]),
        _resource("aws_security_group", "default_spoke_sg", [(None, {"id": "sg-0spoke", "name": f"{PREFIX}-default-sg", "vpc_id": "vpc-0spoke"})]),
        _resource("databricks_mws_networks", "this", [(None, {"id": f"{acct}/net-1", "network_id": "net-1", "network_name": f"{PREFIX}-network",
                                                              "vpc_id": "vpc-0spoke", "subnet_ids": ["subnet-0sp0", "subnet-0sp1"],
                                                              "security_group_ids": ["sg-0spoke"]})]),
        # the hub
        _resource("aws_vpc", "hub_vpc", [(None, {"id": "vpc-0hub", "cidr_block": HUB_CIDR})]),
        *[_resource("aws_subnet", f"hub_{name}_subnet", [(0, {"id": f"subnet-0h{kind}", "vpc_id": "vpc-0hub", "cidr_block": hub_cidrs[kind],
                                                               "availability_zone": "us-east-1a"})])
          for kind, name in (("tgw", "tgw_private"), ("public", "nat_public"), ("firewall", "firewall"))],
        _resource("aws_internet_gateway", "hub_igw", [(None, {"id": "igw-0hub", "vpc_id": "vpc-0hub"})]),
        _resource("aws_eip", "hub_nat_eip", [(None, {"id": "eipalloc-0hub", "allocation_id": "eipalloc-0hub", "domain": "vpc"})]),
        _resource("aws_nat_gateway", "hub_nat", [(None, {"id": "nat-0hub", "allocation_id": "eipalloc-0hub", "subnet_id": "subnet-0hpublic"})]),
        *[_resource("aws_route_table", f"hub_{n}_rt", [(None, {"id": f"rtb-0{n}", "vpc_id": "vpc-0hub"})]) for n in ("tgw_private", "nat_public", "firewall", "igw")],
        _resource("aws_route_table_association", "hub_tgw_rta", [(0, {"id": "rtbassoc-0ht", "subnet_id": "subnet-0htgw", "route_table_id": "rtb-0tgw_private"})]),
        _resource("aws_route_table_association", "hub_nat_rta", [(0, {"id": "rtbassoc-0hn", "subnet_id": "subnet-0hpublic", "route_table_id": "rtb-0nat_public"})]),
        _resource("aws_route_table_association", "hub_firewall_rta", [(0, {"id": "rtbassoc-0hf", "subnet_id": "subnet-0hfirewall", "route_table_id": "rtb-0firewall"})]),
        _resource("aws_route_table_association", "hub_igw_rta", [(None, {"id": "rtbassoc-0hi", "gateway_id": "igw-0hub", "route_table_id": "rtb-0igw"})]),
        _resource("aws_route", "db_private_nat_gtw", [(None, {"id": "r-tgwnat", "route_table_id": "rtb-0tgw_private", "destination_cidr_block": "0.0.0.0/0",
                                                              "nat_gateway_id": "nat-0hub"})]),
        _resource("aws_route", "db_firewall_public_gtw", [(None, {"id": "r-fwigw", "route_table_id": "rtb-0firewall", "destination_cidr_block": "0.0.0.0/0",
                                                                  "gateway_id": "igw-0hub"})]),
        _resource("aws_main_route_table_association", "set-worker-default-rt-assoc", [(None, {"id": "rtbassoc-0hm", "vpc_id": "vpc-0hub",
                                                                                              "route_table_id": "rtb-0firewall"})]),
        _resource("aws_security_group", "default_hub_sg", [(None, {"id": "sg-0hub", "name": f"{PREFIX}-default-hub-sg", "vpc_id": "vpc-0hub"})]),
        _resource("aws_vpc_endpoint", "this", [
            (svc, {"id": f"vpce-0{short}", "vpc_id": "vpc-0spoke", "service_name": f"com.amazonaws.us-east-1.{svc}",
                   "security_group_ids": [] if svc == "s3" else ["sg-0spoke"]})
            for svc, short in (("s3", "s3"), ("sts", "sts"), ("kinesis-streams", "kin"))], module="module.vpc_endpoints"),
        # the firewall
        _resource("aws_networkfirewall_rule_group", "databricks_fqdns_rg", [(None, _rule_group(f"{PREFIX}-databricks-fqdns-rg", rg["databricks-fqdns"], {
            "rules_source_list": [{"generated_rules_type": "ALLOWLIST", "target_types": ["TLS_SNI", "HTTP_HOST"], "targets": [".pypi.org"]}]}))]),
        _resource("aws_networkfirewall_rule_group", "allow_db_cpl_protocols_rg", [(None, _rule_group(
            f"{PREFIX}-allow-db-cpl-protocols-rg", rg["allow-db-cpl-protocols"], {"stateful_rule": [_rule("PASS", "TCP", "3.237.73.224/28", "443", 1)]}))]),
        _resource("aws_networkfirewall_rule_group", "deny_protocols_rg", [(None, _rule_group(
            f"{PREFIX}-deny-protocols-rg", rg["deny-protocols"], {"stateful_rule": [_rule("DROP", p, "ANY", "ANY", i + 1) for i, p in enumerate(["ICMP", "FTP", "SSH"])]}))]),
        _resource("aws_networkfirewall_firewall_policy", "egress_policy", [(None, {
            "id": policy_arn, "arn": policy_arn, "name": f"{PREFIX}-egress-policy",
            "firewall_policy": [{"stateless_default_actions": ["aws:forward_to_sfe"],
                                 "stateful_rule_group_reference": [{"resource_arn": rg[k]} for k in ("databricks-fqdns", "deny-protocols", "allow-db-cpl-protocols")]}]})]),
        _resource("aws_networkfirewall_firewall", "exfiltration_firewall", [(None, {
            "id": fw_arn, "arn": fw_arn, "name": f"{PREFIX}-fw", "firewall_policy_arn": policy_arn, "vpc_id": "vpc-0hub",
            "subnet_mapping": [{"subnet_id": "subnet-0hfirewall"}]})]),
        _resource("aws_route", "db_nat_firewall", [(None, {"id": "r-natfw", "route_table_id": "rtb-0nat_public", "destination_cidr_block": "0.0.0.0/0",
                                                           "vpc_endpoint_id": "vpce-0fw"})]),
        _resource("aws_route", "db_igw_nat_firewall", [(0, {"id": "r-igwfw", "route_table_id": "rtb-0igw", "destination_cidr_block": hub_cidrs["public"],
                                                            "vpc_endpoint_id": "vpce-0fw"})]),
        # the transit gateway
        _resource("aws_ec2_transit_gateway", "tgw", [(None, {"id": "tgw-0abc", "arn": f"arn:aws:ec2:us-east-1:{ACCOUNT}:transit-gateway/tgw-0abc",
                                                             "default_route_table_association": enable, "default_route_table_propagation": enable,
                                                             "association_default_route_table_id": default_rt, "propagation_default_route_table_id": default_rt})]),
        _resource("aws_ec2_transit_gateway_vpc_attachment", "hub", [(None, {"id": "tgw-attach-0hub", "transit_gateway_id": "tgw-0abc", "vpc_id": "vpc-0hub",
                                                                            "subnet_ids": ["subnet-0htgw"]})]),
        _resource("aws_ec2_transit_gateway_vpc_attachment", "spoke", [(None, {"id": "tgw-attach-0spk", "transit_gateway_id": "tgw-0abc",
                                                                              "vpc_id": "vpc-0spoke", "subnet_ids": ["subnet-0st0", "subnet-0st1"]})]),
        _resource("aws_route", "spoke_db_to_tgw", [(None, {"id": "r-spk", "route_table_id": "rtb-0spoke", "destination_cidr_block": "0.0.0.0/0",
                                                           "transit_gateway_id": "tgw-0abc"})]),
        _resource("aws_route", "hub_to_spoke", [(None, {"id": "r-hubspk", "route_table_id": "rtb-0tgw_private", "destination_cidr_block": SPOKE_CIDR,
                                                        "transit_gateway_id": "tgw-0abc"})]),
        _resource("aws_route", "hub_nat_to_tgw", [(None, {"id": "r-natspk", "route_table_id": "rtb-0nat_public", "destination_cidr_block": SPOKE_CIDR,
                                                          "transit_gateway_id": "tgw-0abc"})]),
        _resource("aws_ec2_transit_gateway_route", "spoke_to_hub", [(None, {"id": f"{rt['spokes']}_0.0.0.0/0", "destination_cidr_block": "0.0.0.0/0",
                                                                            "transit_gateway_attachment_id": "tgw-attach-0hub",
                                                                            "transit_gateway_route_table_id": rt["spokes"], "blackhole": False})]),
        # the workspace (the guide's aws-workspace.md part)
        _resource("aws_s3_bucket", "root_storage_bucket", [(None, {"id": bucket, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"})]),
        _resource("aws_s3_bucket_versioning", "root_bucket", [(None, {"id": bucket, "bucket": bucket})]),
        _resource("aws_s3_bucket", "logs", [(None, {"id": f"{PREFIX}-logs", "bucket": f"{PREFIX}-logs"})]),
        _resource("databricks_mws_storage_configurations", "this", [(None, {"id": f"{acct}/stor-1", "storage_configuration_id": "stor-1",
                                                                            "storage_configuration_name": f"{PREFIX}-storage", "bucket_name": bucket})]),
        _resource("databricks_mws_workspaces", "this", [(None, {"id": f"{acct}/1234", "workspace_id": 1234, "workspace_name": PREFIX,
                                                                "credentials_id": "cred-1", "storage_configuration_id": "stor-1", "network_id": "net-1"})]),
    ]
    if own_tgw_tables:
        res += [
            _resource("aws_ec2_transit_gateway_route_table", "hub", [(None, {"id": rt["hub"], "transit_gateway_id": "tgw-0abc"})]),
            _resource("aws_ec2_transit_gateway_route_table", "spokes", [(None, {"id": rt["spokes"], "transit_gateway_id": "tgw-0abc"})]),
            _resource("aws_ec2_transit_gateway_route_table_association", "hub", [(None, {"id": f"{rt['hub']}_tgw-attach-0hub",
                                                                                         "transit_gateway_attachment_id": "tgw-attach-0hub",
                                                                                         "transit_gateway_route_table_id": rt["hub"]})]),
            _resource("aws_ec2_transit_gateway_route_table_association", "spoke", [(None, {"id": f"{rt['spokes']}_tgw-attach-0spk",
                                                                                           "transit_gateway_attachment_id": "tgw-attach-0spk",
                                                                                           "transit_gateway_route_table_id": rt["spokes"]})]),
            _resource("aws_ec2_transit_gateway_route_table_propagation", "hub", [(None, {"id": "prop-1", "transit_gateway_attachment_id": "tgw-attach-0hub",
                                                                                         "transit_gateway_route_table_id": rt["spokes"]})]),
            _resource("aws_ec2_transit_gateway_route", "hub_to_spoke", [(None, {"id": f"{rt['hub']}_{SPOKE_CIDR}", "destination_cidr_block": SPOKE_CIDR,
                                                                                "transit_gateway_attachment_id": "tgw-attach-0spk",
                                                                                "transit_gateway_route_table_id": rt["hub"], "blackhole": False})]),
            _resource("aws_ec2_transit_gateway_route", "spoke_blackhole", [(None, {"id": f"{rt['spokes']}_{SPOKE_CIDR}", "destination_cidr_block": SPOKE_CIDR,
                                                                                   "transit_gateway_route_table_id": rt["spokes"], "blackhole": True})]),
        ]
    return {"version": 4, "terraform_version": "1.9.5", "serial": 7, "lineage": "hub-guide", "outputs": {}, "resources": res}


def mapped(data: dict[str, Any], spoke_cidr: str = SPOKE_CIDR):
    spec, steps = hub_spec(spoke_cidr)
    return map_hub_state(tfstate.parse(data, "terraform.tfstate"), steps, spec.region)


EXPECTED = {
    "iam.crossaccount": f"{PREFIX}-crossaccount", "iam.crossaccount.policy": f"{PREFIX}-policy",
    "hub.vpc": "vpc-0hub", "hub.subnet.tgw.0": "subnet-0htgw", "hub.subnet.public.0": "subnet-0hpublic", "hub.subnet.firewall.0": "subnet-0hfirewall",
    "hub.igw": "igw-0hub", "hub.eip.nat.0": "eipalloc-0hub", "hub.nat.0": "nat-0hub",
    "fw": f"{NFW}:firewall/{PREFIX}-fw", "fw.policy": f"{NFW}:firewall-policy/{PREFIX}-egress-policy",
    "fw.rg.deny": f"{NFW}:stateful-rulegroup/{PREFIX}-deny-protocols-rg",
    "fw.rg.controlplane": f"{NFW}:stateful-rulegroup/{PREFIX}-allow-db-cpl-protocols-rg",
    "fw.rg.domains": f"{NFW}:stateful-rulegroup/{PREFIX}-databricks-fqdns-rg",
    "tgw": "tgw-0abc", "tgw.rt.hub": "tgw-rtb-0hub", "tgw.rt.spokes": "tgw-rtb-0spk",
    "tgw.attach.hub": "tgw-attach-0hub", "tgw.attach.analytics": "tgw-attach-0spk",
    "tgw.route.spokes.default": "tgw-rtb-0spk:0.0.0.0/0", "tgw.route.hub.analytics": f"tgw-rtb-0hub:{SPOKE_CIDR}",
    "tgw.route.spokes.blackhole.analytics": f"tgw-rtb-0spk:{SPOKE_CIDR}",
    "hub.rt.tgw": "rtb-0tgw_private", "hub.rt.firewall": "rtb-0firewall", "hub.rt.public.0": "rtb-0nat_public", "hub.rt.edge": "rtb-0igw",
    "hub.route.public.0.analytics": f"rtb-0nat_public:{SPOKE_CIDR}",
    "spoke.analytics.vpc": "vpc-0spoke", "spoke.analytics.subnet.private.0": "subnet-0sp0", "spoke.analytics.subnet.private.1": "subnet-0sp1",
    "spoke.analytics.subnet.tgw.0": "subnet-0st0", "spoke.analytics.subnet.tgw.1": "subnet-0st1",
    "spoke.analytics.rt.private": "rtb-0spoke", "spoke.analytics.sg.workspace": "sg-0spoke",
    "spoke.analytics.vpce.s3": "vpce-0s3", "spoke.analytics.vpce.sts": "vpce-0sts", "spoke.analytics.vpce.kinesis": "vpce-0kin",
    "spoke.analytics.s3.root": f"{PREFIX}-rootbucket", "spoke.analytics.dbx.credentials": "cred-1", "spoke.analytics.dbx.storage": "stor-1",
    "spoke.analytics.dbx.network": "net-1", "spoke.analytics.dbx.workspace": "1234",
}


def test_the_guide_maps_onto_hub_spoke():
    mapping = mapped(guide_state())
    assert {sid: m.resource_id for sid, m in mapping.matches.items()} == EXPECTED
    # What our topology has and the guide lacks: `up` creates it (the hub's second zone, the metastore rule group).
    assert set(mapping.remaining) == {
        "hub.subnet.tgw.1", "hub.subnet.public.1", "hub.subnet.firewall.1", "hub.rt.public.1", "hub.route.public.1.analytics",
        "fw.rg.metastore", "spoke.analytics.s3.root.policy",
    }
    assert mapping.names["fw"] == f"{PREFIX}-fw" and mapping.names["fw.rg.deny"] == f"{PREFIX}-deny-protocols-rg"
    absorbed = {address: step for address, step, _ in mapping.absorbed}
    assert absorbed["aws_route.db_igw_nat_firewall[0]"] == "hub.rt.edge"
    assert absorbed["aws_route_table_association.hub_igw_rta"] == "hub.rt.edge"
    assert absorbed["aws_route.db_nat_firewall"] == "hub.rt.public.0"
    assert absorbed["aws_route.spoke_db_to_tgw"] == "spoke.analytics.rt.private"
    assert absorbed["aws_ec2_transit_gateway_route_table_association.spoke"] == "tgw.rt.spokes"
    assert "aws_route.hub_nat_to_tgw" not in absorbed  # it is hub.route.public.0.analytics itself
    assert mapping.matches["hub.route.public.0.analytics"].instance.address == "aws_route.hub_nat_to_tgw"
    unmapped = dict(mapping.unmapped)
    assert set(unmapped) == {
        "random_string.naming", "aws_main_route_table_association.spoke-set-worker-default-rt-assoc",
        "aws_main_route_table_association.set-worker-default-rt-assoc", "aws_security_group.default_hub_sg",
        "aws_ec2_transit_gateway_route_table_propagation.hub", "aws_s3_bucket.logs",
    }
    assert "main route table" in unmapped["aws_main_route_table_association.set-worker-default-rt-assoc"]
    assert "statically" in unmapped["aws_ec2_transit_gateway_route_table_propagation.hub"]
    assert "does not name" in unmapped["aws_security_group.default_hub_sg"]
    assert "no step" in unmapped["aws_s3_bucket.logs"]  # never taken as a root bucket


def test_the_guide_verbatim_reports_what_it_has_and_we_do_not_model():
    """The guide's own CIDRs (/19 hub and spoke TGW subnets) and its TGW default route table: those do not map, with why."""
    mapping = mapped(guide_state(GUIDE_HUB, GUIDE_SPOKE_TGW, own_tgw_tables=False))
    got = set(mapping.matches)
    assert {"hub.vpc", "hub.igw", "fw", "fw.policy", "fw.rg.deny", "fw.rg.controlplane", "fw.rg.domains", "tgw", "tgw.attach.hub",
            "tgw.attach.analytics", "hub.rt.edge", "spoke.analytics.vpc", "spoke.analytics.subnet.private.1", "spoke.analytics.rt.private",
            "spoke.analytics.dbx.workspace"} <= got
    assert not got & {"hub.subnet.tgw.0", "hub.nat.0", "hub.rt.tgw", "spoke.analytics.subnet.tgw.0", "tgw.rt.hub", "tgw.rt.spokes",
                      "tgw.route.spokes.default", "hub.route.public.0.analytics"}
    assert {"tgw.rt.hub", "tgw.rt.spokes", "tgw.route.spokes.default", "hub.subnet.tgw.0"} <= set(mapping.remaining)
    unmapped = dict(mapping.unmapped)
    assert "/28s" in unmapped["aws_subnet.hub_tgw_private_subnet[0]"] and "overlaps" in unmapped["aws_subnet.hub_tgw_private_subnet[0]"]
    assert "/28s" in unmapped["aws_subnet.spoke_tgw_private_subnet[1]"]
    assert "default route table" in unmapped["aws_ec2_transit_gateway_route.spoke_to_hub"]
    assert "did not map" in unmapped["aws_nat_gateway.hub_nat"]
    assert "did not map" in unmapped["aws_route_table.hub_tgw_private_rt"]


def test_a_spoke_of_another_cidr_takes_nothing_of_the_guides_spoke():
    mapping = mapped(guide_state(), spoke_cidr="10.50.0.0/16")
    spoke = [sid for sid in mapping.matches if sid.startswith("spoke.") or sid.endswith(".analytics")]
    assert spoke == []
    # The hub is still the guide's; the guide spoke's bucket and account objects are not given to the other spoke.
    assert {"hub.vpc", "tgw", "tgw.attach.hub", "tgw.rt.hub", "fw"} <= set(mapping.matches)
    unmapped = dict(mapping.unmapped)
    assert "10.50.0.0/16" in unmapped["aws_vpc.spoke_vpc"] and "same vpc_cidr" in unmapped["aws_vpc.spoke_vpc"]
    for address in ("aws_s3_bucket.root_storage_bucket", "databricks_mws_credentials.this", "databricks_mws_workspaces.this",
                    "aws_ec2_transit_gateway_vpc_attachment.spoke"):
        assert address in unmapped


def test_two_firewalls_in_the_hub_map_to_neither():
    data = guide_state()
    fw = next(r for r in data["resources"] if r["type"] == "aws_networkfirewall_firewall")
    fw["instances"].append({**fw["instances"][0], "index_key": 1, "attributes": {**fw["instances"][0]["attributes"], "id": "arn2", "arn": "arn2"}})
    mapping = mapped(data)
    assert not {"fw", "fw.policy", "fw.rg.deny"} & set(mapping.matches)
    assert sum("candidates for fw" in why for _, why in mapping.unmapped) == 2


def test_a_rule_group_the_policy_does_not_reference_is_not_taken():
    data = guide_state()
    policy = next(r for r in data["resources"] if r["type"] == "aws_networkfirewall_firewall_policy")
    refs = policy["instances"][0]["attributes"]["firewall_policy"][0]["stateful_rule_group_reference"]
    policy["instances"][0]["attributes"]["firewall_policy"][0]["stateful_rule_group_reference"] = [r for r in refs if "deny" not in r["resource_arn"]]
    mapping = mapped(data)
    assert "fw.rg.deny" not in mapping.matches and "fw.rg.domains" in mapping.matches
    assert "does not reference" in dict(mapping.unmapped)["aws_networkfirewall_rule_group.deny_protocols_rg"]


# tagging ---------------------------------------------------------------------------------------------
OURS = [{"Key": "Owner", "Value": "platform-team"}, {"Key": "provision:deployment", "Value": "acme-hub"}]


def _clients():
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    clients = {"ec2": session.client("ec2"), "network-firewall": session.client("network-firewall")}
    stubs = {k: Stubber(c) for k, c in clients.items()}
    tagger = Tagger(clients.__getitem__, lambda fn, what: fn(), deployment="acme-hub", spec_tags={"Owner": "platform-team"})
    return tagger, stubs


@pytest.mark.parametrize(("kind", "operation", "param", "key", "item"), [
    ("ec2.transit_gateway", "describe_transit_gateways", "TransitGatewayIds", "TransitGateways", {"TransitGatewayId": "tgw-1", "State": "available"}),
    ("ec2.transit_gateway_vpc_attachment", "describe_transit_gateway_vpc_attachments", "TransitGatewayAttachmentIds",
     "TransitGatewayVpcAttachments", {"TransitGatewayAttachmentId": "tgw-1", "State": "available"}),
    ("ec2.transit_gateway_route_table", "describe_transit_gateway_route_tables", "TransitGatewayRouteTableIds",
     "TransitGatewayRouteTables", {"TransitGatewayRouteTableId": "tgw-1", "State": "available"}),
])
def test_tgw_kinds_are_tagged_with_ec2_keeping_their_name(kind, operation, param, key, item):
    tagger, stubs = _clients()
    ec2 = stubs["ec2"]
    ec2.add_response(operation, {key: [{**item, "Tags": [{"Key": "Name", "Value": "demo-tgw"}]}]}, {param: ["tgw-1"]})
    ec2.add_response("create_tags", {}, {"Resources": ["tgw-1"], "Tags": [*OURS, {"Key": "provision:step", "Value": "tgw"}]})
    ec2.add_response("delete_tags", {}, {"Resources": ["tgw-1"], "Tags": [*OURS, {"Key": "provision:step", "Value": "tgw"}]})
    ec2.add_response(operation, {key: [{**item, "State": "deleted"}]}, {param: ["tgw-1"]})
    with ec2:
        assert tagger.handles(kind)
        assert tagger.adopt(kind, "tgw", "tgw-1", "acme-hub-tgw") is True
        tagger.untag("tgw")
        assert tagger.adopt(kind, "tgw", "tgw-1", "acme-hub-tgw") is False  # gone
    ec2.assert_no_pending_responses()


ID36 = "0" * 36  # the API's ids are UUIDs
FIREWALL = {"FirewallName": "demo-fw", "FirewallArn": f"{NFW}:firewall/demo-fw", "FirewallPolicyArn": f"{NFW}:firewall-policy/p",
            "VpcId": "vpc-1", "SubnetMappings": [{"SubnetId": "subnet-1"}], "FirewallId": ID36}


@pytest.mark.parametrize(("kind", "operation", "param", "answer"), [
    ("network_firewall.firewall", "describe_firewall", "FirewallArn",
     lambda tags: {"UpdateToken": "t", "Firewall": {**FIREWALL, "Tags": tags}, "FirewallStatus": {"Status": "READY", "ConfigurationSyncStateSummary": "IN_SYNC"}}),
    ("network_firewall.firewall_policy", "describe_firewall_policy", "FirewallPolicyArn",
     lambda tags: {"UpdateToken": "t", "FirewallPolicyResponse": {"FirewallPolicyName": "p", "FirewallPolicyArn": "arn-1", "FirewallPolicyId": ID36, "Tags": tags}}),
    ("network_firewall.rule_group", "describe_rule_group", "RuleGroupArn",
     lambda tags: {"UpdateToken": "t", "RuleGroupResponse": {"RuleGroupName": "g", "RuleGroupArn": "arn-1", "RuleGroupId": ID36, "Tags": tags}}),
])
def test_network_firewall_kinds_are_tagged_by_arn_and_get_no_name_tag(kind, operation, param, answer):
    tagger, stubs = _clients()
    nfw = stubs["network-firewall"]
    own = [{"Key": "Owner", "Value": "someone"}]  # a spec tag with another value: overwritten, then put back
    added = [{"Key": "Owner", "Value": "platform-team"}, {"Key": "provision:deployment", "Value": "acme-hub"}, {"Key": "provision:step", "Value": "fw"}]
    nfw.add_response(operation, answer(own), {param: "arn-1"})
    nfw.add_response("tag_resource", {}, {"ResourceArn": "arn-1", "Tags": added})
    nfw.add_response(operation, answer(added), {param: "arn-1"})
    nfw.add_response("untag_resource", {}, {"ResourceArn": "arn-1", "TagKeys": ["provision:deployment", "provision:step"]})
    nfw.add_response("tag_resource", {}, {"ResourceArn": "arn-1", "Tags": own})
    with nfw:
        assert tagger.handles(kind)
        assert tagger.adopt(kind, "fw", "arn-1", "acme-hub-fw") is True
        tagger.untag("fw")
    nfw.assert_no_pending_responses()


def test_a_network_firewall_object_of_another_deployment_is_refused_and_a_missing_one_is_gone():
    from provision.errors import OwnershipConflict

    tagger, stubs = _clients()
    nfw = stubs["network-firewall"]
    nfw.add_response("describe_rule_group", {"UpdateToken": "t", "RuleGroupResponse": {
        "RuleGroupName": "g", "RuleGroupArn": "arn-1", "RuleGroupId": ID36, "Tags": [{"Key": "provision:deployment", "Value": "other"}]}},
        {"RuleGroupArn": "arn-1"})
    nfw.add_client_error("describe_firewall", "ResourceNotFoundException", expected_params={"FirewallArn": "arn-2"})
    with nfw:
        with pytest.raises(OwnershipConflict, match="other"):
            tagger.adopt("network_firewall.rule_group", "fw.rg.deny", "arn-1", "x")
        assert tagger.adopt("network_firewall.firewall", "fw", "arn-2", "x") is False
    nfw.assert_no_pending_responses()
