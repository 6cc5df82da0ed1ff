"""The hub-spoke part of the mapping (mapper.py maps what hub-spoke shares with basic: VPCs, subnets, gateways,
route tables, endpoints, the role, the buckets, the Databricks objects), for a deployment built by the Terraform
hub-and-spoke guide: a transit gateway by its attachments to the mapped VPCs, an attachment by its gateway and
VPC, a TGW route table by the attachment associated with it, a TGW route by its table, destination and target;
a VPC route a spoke adds to a hub table by the table and destination; the edge route table by its association
with the mapped internet gateway; the firewall by the mapped hub VPC (and its subnets), its policy by the
firewall's policy ARN, each rule group by the policy's references and what its rules do.

A guide spoke maps onto the spec's spoke only when the VPC CIDRs are equal: a spoke whose VPC did not map takes
nothing (its bucket, credentials and storage configuration would otherwise be the guide spoke's), and the
Databricks objects of a spoke are those the workspace on its VPC's network names."""

from __future__ import annotations

from typing import Any

from provision.app.tfimport.mapper import Mapping, _Mapper
from provision.app.tfimport.tfstate import Instance, TerraformState
from provision.clouds.aws.steps.firewall import Firewall, FirewallPolicy, RuleGroup
from provision.clouds.aws.steps.network import Subnet, Vpc
from provision.clouds.aws.steps.routes import RouteTable, VpcRoute
from provision.clouds.aws.steps.storage import RootBucket
from provision.clouds.aws.steps.transit import (
    TransitGateway,
    TransitGatewayAttachment,
    TransitGatewayRoute,
    TransitGatewayRouteTable,
)
from provision.clouds.databricks.steps.account import Credentials, StorageConfiguration
from provision.orchestrator.step import Step

# What the guide has and this topology does not model.
HUB_NEVER = {
    "aws_ec2_transit_gateway_route_table_propagation": "route propagation: this topology routes statically (tgw.route.*); "
                                                       "left as it is",
    "aws_ec2_transit_gateway_route_table_association": "an association `up` converges with its attachment (tgw.attach.*)",
    "aws_security_group": "a security group the Databricks network does not name (the guide's hub security group): "
                          "no step of this topology stands for it; left as it is",
}
# Mapped after the rest, each from what an earlier one found: the policy from the firewall, the rule groups from
# the policy, a TGW route table from the attachments associated with it, a TGW route from its table.
LATER = (FirewallPolicy, RuleGroup, TransitGatewayRouteTable, TransitGatewayRoute)


def _first(value: Any) -> dict[str, Any]:
    """A Terraform nested block (a list of one object) as the object; {} when absent."""
    if isinstance(value, list):
        return value[0] if value and isinstance(value[0], dict) else {}
    return value if isinstance(value, dict) else {}


def _stateful_rules(group: Instance) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    source = _first(_first(group.get("rule_group")).get("rules_source"))
    return list(source.get("stateful_rule") or []), _first(source.get("rules_source_list"))


def _rule_kind(group: Instance) -> str | None:
    """Which of our rule groups a guide rule group is, by what its rules do."""
    rules, domain_list = _stateful_rules(group)
    if domain_list.get("generated_rules_type") == "ALLOWLIST" and domain_list.get("targets"):
        return "fw.rg.domains"
    headers = [(r.get("action"), _first(r.get("header"))) for r in rules]
    if headers and all(action == "DROP" for action, _ in headers):
        return "fw.rg.deny"
    ports = {str(h.get("destination_port")) for action, h in headers if action == "PASS"}
    if ports == {"3306"}:
        return "fw.rg.metastore"
    if ports == {"443"}:
        return "fw.rg.controlplane"
    return None


class _HubMapper(_Mapper):
    def __init__(self, state: TerraformState, steps: list[Step], region: str):
        super().__init__(state, steps, region)
        self.hidden: set[int] = set()  # instances another spoke's workspace names: not this spoke's

    def free(self, *types: str, **where: Any) -> list[Instance]:
        return [i for i in super().free(*types, **where) if id(i) not in self.hidden]

    def run(self) -> Mapping:
        for step in [s for s in self.steps if not isinstance(s, LATER)] + [s for kind in LATER for s in self.steps if isinstance(s, kind)]:
            self.map_step(step)
        self.leftovers()
        self.out.remaining = [s.id for s in self.steps if s.id not in self.out.matches and not s.external]
        self.hub_reasons(self.out)
        return self.out

    def map_step(self, step: Step) -> None:
        spoke = step.id.split(".")[1] if step.id.startswith("spoke.") else None
        if spoke and not isinstance(step, Vpc) and f"spoke.{spoke}.vpc" not in self.out.matches:
            return  # a spoke of another CIDR than the guide's: it takes nothing of the guide's
        self.hidden = self.not_of_spoke(spoke) if spoke and isinstance(step, (Credentials, StorageConfiguration, RootBucket)) else set()
        try:
            if isinstance(step, TransitGateway):
                self.map_tgw(step)
            elif isinstance(step, TransitGatewayAttachment):
                tgw, vpc = self.out.id_of(step.tgw_id.step), self.out.id_of(step.vpc_id.step)
                found = tgw and vpc and self.one(step, self.free("aws_ec2_transit_gateway_vpc_attachment", transit_gateway_id=tgw, vpc_id=vpc),
                                                 "the attachment of the VPC")
                if found:
                    self.take(step, found, found.id)
            elif isinstance(step, TransitGatewayRouteTable):
                self.map_tgw_route_table(step)
            elif isinstance(step, TransitGatewayRoute):
                self.map_tgw_route(step)
            elif isinstance(step, VpcRoute):
                self.map_vpc_route(step)
            elif isinstance(step, RouteTable) and not step.subnet_ids and step.gateway_id is not None:
                self.map_edge_table(step)
            elif isinstance(step, Firewall):
                self.map_firewall(step)
            elif isinstance(step, FirewallPolicy):
                user = next((s for s in self.steps if isinstance(s, Firewall) and s.policy_arn.step == step.id), None)
                fw = self.out.matches.get(user.id) if user else None
                arn = fw.instance.get("firewall_policy_arn") if fw else None
                found = arn and self.one(step, self.free("aws_networkfirewall_firewall_policy", arn=arn), "the firewall's policy")
                if found:
                    self.take(step, found, found.get("arn") or found.id, name=found.get("name"))
            elif isinstance(step, RuleGroup):
                self.map_rule_group(step)
            else:
                super().map_step(step)
        finally:
            self.hidden = set()

    # what identifies each -------------------------------------------------------------------------
    def not_of_spoke(self, label: str) -> set[int]:
        """The credentials, storage configurations and buckets that no workspace on this spoke's network names
        (nothing hidden when no workspace in the state is on it)."""
        vpc = self.out.id_of(f"spoke.{label}.vpc")
        networks = {n.get("network_id") for n in self.state.of_type("databricks_mws_networks") if n.get("vpc_id") == vpc} - {None}
        workspaces = [w for w in self.state.of_type("databricks_mws_workspaces") if w.get("network_id") in networks]
        if not workspaces:
            return set()
        creds = {w.get("credentials_id") for w in workspaces}
        storages = [s for s in self.state.of_type("databricks_mws_storage_configurations")
                    if s.get("storage_configuration_id") in {w.get("storage_configuration_id") for w in workspaces}]
        buckets = {s.get("bucket_name") for s in storages}
        hidden = [c for c in self.state.of_type("databricks_mws_credentials") if c.get("credentials_id") not in creds]
        hidden += [s for s in self.state.of_type("databricks_mws_storage_configurations") if s not in storages]
        hidden += [b for b in self.state.of_type("aws_s3_bucket") if (b.get("bucket") or b.id) not in buckets]
        return {id(i) for i in hidden}

    def map_tgw(self, step: TransitGateway) -> None:
        vpcs = {m.resource_id for m in self.out.matches.values() if m.kind == "ec2.vpc"}
        attached = {a.get("transit_gateway_id") for a in self.state.of_type("aws_ec2_transit_gateway_vpc_attachment") if a.get("vpc_id") in vpcs}
        found = self.one(step, [t for t in self.free("aws_ec2_transit_gateway") if t.id in attached], "the transit gateway attached to the mapped VPCs")
        if found:
            self.take(step, found, found.id)

    def _users(self, table_step: str) -> list[TransitGatewayAttachment]:
        return [s for s in self.steps if isinstance(s, TransitGatewayAttachment) and s.route_table_id.step == table_step]

    def map_tgw_route_table(self, step: TransitGatewayRouteTable) -> None:
        """The table of the TGW that the attachment of ours associated with it is associated with in the state."""
        tgw = self.out.id_of(step.tgw_id.step)
        attachments = {self.out.id_of(a.id) for a in self._users(step.id)} - {None}
        if tgw is None or not attachments:
            return
        tables = {a.get("transit_gateway_route_table_id") for a in self.state.of_type("aws_ec2_transit_gateway_route_table_association")
                  if a.get("transit_gateway_attachment_id") in attachments}
        found = self.one(step, [t for t in self.free("aws_ec2_transit_gateway_route_table", transit_gateway_id=tgw) if t.id in tables],
                         "the TGW route table its attachments are associated with")
        if found:
            self.take(step, found, found.id)
            for assoc in self.free("aws_ec2_transit_gateway_route_table_association", transit_gateway_route_table_id=found.id):
                if assoc.get("transit_gateway_attachment_id") in attachments:
                    self.used.add(id(assoc))
                    self.out.absorbed.append((assoc.address, step.id, "an association `up` converges with its attachment"))

    def map_tgw_route(self, step: TransitGatewayRoute) -> None:
        table = self.out.id_of(step.route_table_id.step)
        if table is None:
            return
        wanted = self.out.id_of(step.attachment_id.step) if step.attachment_id else None
        if step.attachment_id and wanted is None:
            return
        candidates = [r for r in self.free("aws_ec2_transit_gateway_route", transit_gateway_route_table_id=table, destination_cidr_block=step.destination)
                      if (r.get("transit_gateway_attachment_id") == wanted if wanted else bool(r.get("blackhole")))]
        found = self.one(step, candidates, f"the route to {step.destination}")
        if found:
            self.take(step, found, f"{table}:{step.destination}")

    def map_route_table(self, step: RouteTable) -> None:
        """mapper.py's, also when only some of its subnets mapped (the guide's hub has one zone, ours two or more):
        the table of a mapped subnet; `up` associates the subnets it creates."""
        subnets = [self.out.id_of(r.step) for r in step.subnet_ids]
        mapped = [s for s in subnets if s]
        if not mapped or len(mapped) == len(subnets):
            super().map_route_table(step)
            return
        tables = {a.get("route_table_id") for a in self.state.of_type("aws_route_table_association") if a.get("subnet_id") in mapped}
        found = self.one(step, [t for t in self.free("aws_route_table") if t.id in tables], "the route table of its mapped subnets")
        if found:
            self.take(step, found, found.id)
            for part in self.free("aws_route", "aws_route_table_association", route_table_id=found.id):
                self.used.add(id(part))
                self.out.absorbed.append((part.address, step.id, "a route or association `up` converges to the spec's"))

    def map_edge_table(self, step: RouteTable) -> None:
        assert step.gateway_id is not None
        igw = self.out.id_of(step.gateway_id.step)
        if igw is None:
            return
        tables = {a.get("route_table_id") for a in self.state.of_type("aws_route_table_association") if a.get("gateway_id") == igw}
        found = self.one(step, [t for t in self.free("aws_route_table") if t.id in tables], "the internet gateway's edge route table")
        if found:
            self.take(step, found, found.id)
            for part in self.free("aws_route", "aws_route_table_association", route_table_id=found.id):
                self.used.add(id(part))
                self.out.absorbed.append((part.address, step.id, "a route or association `up` converges to the spec's"))

    def map_firewall(self, step: Firewall) -> None:
        vpc = self.out.id_of(step.vpc_id.step)
        if vpc is None:
            return
        mapped = {self.out.id_of(s.step) for s in step.subnet_ids} - {None}
        candidates = self.free("aws_networkfirewall_firewall", vpc_id=vpc)
        if mapped:  # its subnets, where we know them: a firewall in other subnets of the hub is not ours
            candidates = [c for c in candidates if mapped <= {m.get("subnet_id") for m in c.get("subnet_mapping") or []}]
        found = self.one(step, candidates, "the firewall of the hub VPC")
        if found:
            self.take(step, found, found.get("arn") or found.id, name=found.get("name"))

    def map_rule_group(self, step: RuleGroup) -> None:
        user = next((s for s in self.steps if isinstance(s, FirewallPolicy) and step.id in {r.step for r in s.rule_group_arns}), None)
        policy = self.out.matches.get(user.id) if user else None
        if policy is None:
            return
        referenced = {r.get("resource_arn") for r in _first(policy.instance.get("firewall_policy")).get("stateful_rule_group_reference") or []}
        groups = [g for g in self.free("aws_networkfirewall_rule_group") if (g.get("arn") or g.id) in referenced]
        for g in groups:
            if _rule_kind(g) is None:
                self.reasons[id(g)] = "a rule group of the firewall's policy that does none of what ours do (deny, control plane, metastore, domains)"
        found = self.one(step, [g for g in groups if _rule_kind(g) == step.id], f"the policy's rule group that {step.id} stands for")
        if found:
            self.take(step, found, found.get("arn") or found.id, name=found.get("name"))

    # why the rest does not map ----------------------------------------------------------------------
    def hub_reasons(self, out: Mapping) -> None:
        """Reasons for what the generic leftovers would call "no step": said once mapping is done."""
        vpcs = {m.resource_id: m.step_id for m in out.matches.values() if m.kind == "ec2.vpc"}
        cidrs = {s.cidr for s in self.steps if isinstance(s, Subnet)}
        spokes = sorted(s.cidr for s in self.steps if isinstance(s, Vpc))
        tgw = next((m for m in out.matches.values() if m.kind == "ec2.transit_gateway"), None)
        default_tables = {tgw.instance.get("association_default_route_table_id"), tgw.instance.get("propagation_default_route_table_id")} - {None} if tgw else set()
        policy = next((m for m in out.matches.values() if m.kind == "network_firewall.firewall_policy"), None)
        referenced = {r.get("resource_arn") for r in _first(policy.instance.get("firewall_policy")).get("stateful_rule_group_reference") or []} if policy else set()
        taken = {id(m.instance) for m in out.matches.values()}
        kept = []
        for address, why in out.unmapped:
            inst = next((i for i in self.state.instances if i.address == address), None)
            if inst is None or id(inst) in taken or not why.startswith("no step of this topology"):
                kept.append((address, why))
                continue
            better = HUB_NEVER.get(inst.type)
            if inst.type == "aws_vpc":
                better = (f"VPC {inst.get('cidr_block')} is none of the spec's ({', '.join(spokes)}): a guide spoke maps onto a spoke "
                          "only with the same vpc_cidr; left as it is")
            elif inst.type == "aws_subnet" and inst.get("vpc_id") in vpcs and inst.get("cidr_block") not in cidrs:
                better = (f"subnet {inst.get('cidr_block')} of {vpcs[inst.get('vpc_id')]} is none of the spec's subnets (the hub's and the "
                          "spokes' TGW subnets are /28s allocated from vpc_cidr); left as it is: `up` creates the step's own, "
                          "which fails where it overlaps this one")
            elif inst.type == "aws_ec2_transit_gateway_route" and inst.get("transit_gateway_route_table_id") in default_tables:
                better = ("a route in the transit gateway's default route table: this topology associates its attachments with "
                          "its own tables (tgw.rt.hub, tgw.rt.spokes), which `up` creates; left as it is")
            elif inst.type == "aws_networkfirewall_rule_group" and (inst.get("arn") or inst.id) not in referenced:
                better = "a rule group the imported firewall's policy does not reference; left as it is"
            elif inst.type in ("aws_nat_gateway", "aws_route_table", "aws_ec2_transit_gateway_vpc_attachment", "aws_networkfirewall_firewall"):
                better = (f"{inst.type} whose subnets, VPC or gateway did not map (see those); left as it is: "
                          "`up` creates the step's own")
            kept.append((address, better or why))
        out.unmapped = kept


def map_hub_state(state: TerraformState, steps: list[Step], region: str) -> Mapping:
    """map_state for the hub-spoke topology."""
    return _HubMapper(state, steps, region).run()
