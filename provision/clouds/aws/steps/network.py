"""VPC, subnets, internet gateway, Elastic IPs, NAT gateways, security groups (route tables: routes.py).

Every resource is created with its ownership tags in the same call (TagSpecifications), so a crash right
after the call still leaves something `find` can adopt. Where EC2 accepts a ClientToken we pass a
deterministic one, so a create retried after a lost response cannot make a second resource.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code
from provision.orchestrator.drift import Drift, fields, members
from provision.orchestrator.step import Context, Outputs, Ref, Step, single

EC2_READY = {"available"}


def _tag(resource: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in resource.get("Tags", []) if t["Key"] == key), None)


class Vpc(Step):
    kind = "ec2.vpc"
    produces = ("vpc_id", "cidr")

    def __init__(self, step_id: str, cidr: str):
        super().__init__(step_id)
        self.cidr = cidr

    def find(self, ctx: Context) -> Outputs | None:
        vpcs = aws.find_owned(ctx, self.id, "describe_vpcs", "Vpcs")
        vpc = single(vpcs, "VPC", self.id)
        return {"vpc_id": vpc["VpcId"], "cidr": vpc["CidrBlock"]} if vpc else None

    # A VPC's primary CIDR cannot change: one with our tags and another CIDR could only be replaced.
    drift_before_up = True

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        return fields({"cidr": self.cidr}, found, replaced=("cidr",))

    def create(self, ctx: Context) -> Outputs:
        vpc = aws.ec2(ctx).create_vpc(CidrBlock=self.cidr, TagSpecifications=aws.tag_spec(ctx, "vpc", self.id))["Vpc"]
        return {"vpc_id": vpc["VpcId"], "cidr": vpc["CidrBlock"]}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        vpc_id = out["vpc_id"]
        ctx.wait(
            lambda: aws.ec2(ctx).describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0],
            status_of=lambda v: v["State"], target=EC2_READY, what=f"VPC {vpc_id}",
        )
        # Databricks needs DNS support and DNS hostnames; EC2 takes one attribute per call.
        for attribute, key in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
            current = ctx.call(lambda: aws.ec2(ctx).describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute), f"{self.id} {attribute}")
            if not current[key]["Value"]:
                ctx.call(lambda: aws.ec2(ctx).modify_vpc_attribute(VpcId=vpc_id, **{key: {"Value": True}}), f"{self.id} {attribute}")
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.ec2(ctx).delete_vpc(VpcId=out["vpc_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: aws.ec2(ctx).describe_vpcs(VpcIds=[out["vpc_id"]])["Vpcs"] or None, what=f"VPC {out['vpc_id']}")


class Subnet(Step):
    kind = "ec2.subnet"
    produces = ("subnet_id", "cidr", "zone")

    def __init__(self, step_id: str, *, vpc: str, cidr: str, zones: aws.Zones | None = None, zone_index: int = 0, zone_of: str | None = None):
        """The zone: number `zone_index` of the deployment's `zones`, or the zone of the subnet step `zone_of`."""
        assert zones is not None or zone_of is not None, "a subnet needs zones or zone_of"
        super().__init__(step_id, needs=(vpc, *((zone_of,) if zone_of else ())))
        self.vpc_id, self.cidr, self.zones, self.zone_index = Ref(vpc, "vpc_id"), cidr, zones, zone_index
        self.zone_of = Ref(zone_of, "zone") if zone_of else None

    def zone(self, ctx: Context) -> str:
        if self.zone_of:
            return ctx.out(self.zone_of)
        assert self.zones is not None
        return aws.zones(ctx, self.zones)[self.zone_index]

    def find(self, ctx: Context) -> Outputs | None:
        subnet = single(aws.find_owned(ctx, self.id, "describe_subnets", "Subnets"), "subnet", self.id)
        return self._outputs(subnet) if subnet else None

    @staticmethod
    def _outputs(subnet: dict[str, Any]) -> Outputs:
        return {"subnet_id": subnet["SubnetId"], "cidr": subnet["CidrBlock"], "zone": subnet["AvailabilityZone"]}

    # Neither a subnet's CIDR nor its zone can change.
    drift_before_up = True

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        wanted = {"cidr": self.cidr}
        # The zone only when known without a call: reads for drift must not resolve (and record) the zones fact,
        # which a deployment that never created a subnet by itself (one imported) may not have.
        if self.zone_of or (self.zones and self.zones.explicit) or ctx.facts.get("availability_zones"):
            wanted["zone"] = self.zone(ctx)
        return fields(wanted, found, replaced=("cidr", "zone"))

    def create(self, ctx: Context) -> Outputs:
        subnet = aws.ec2(ctx).create_subnet(
            VpcId=ctx.out(self.vpc_id), CidrBlock=self.cidr, AvailabilityZone=self.zone(ctx),
            TagSpecifications=aws.tag_spec(ctx, "subnet", self.id),
        )["Subnet"]
        return self._outputs(subnet)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        ctx.wait(
            lambda: aws.ec2(ctx).describe_subnets(SubnetIds=[out["subnet_id"]])["Subnets"][0],
            status_of=lambda s: s["State"], target=EC2_READY, what=f"subnet {out['subnet_id']}",
        )
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.ec2(ctx).delete_subnet(SubnetId=out["subnet_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: aws.ec2(ctx).describe_subnets(SubnetIds=[out["subnet_id"]])["Subnets"] or None, what=f"subnet {out['subnet_id']}")


class InternetGateway(Step):
    kind = "ec2.internet_gateway"
    produces = ("igw_id", "attached_vpc_id")

    def __init__(self, step_id: str, *, vpc: str):
        super().__init__(step_id, needs=(vpc,))
        self.vpc_id = Ref(vpc, "vpc_id")

    def find(self, ctx: Context) -> Outputs | None:
        igw = single(aws.find_owned(ctx, self.id, "describe_internet_gateways", "InternetGateways"), "internet gateway", self.id)
        if not igw:
            return None
        attached = [a["VpcId"] for a in igw.get("Attachments", []) if a.get("State") in ("available", "attached", "attaching")]
        return {"igw_id": igw["InternetGatewayId"], "attached_vpc_id": attached[0] if attached else None}

    def create(self, ctx: Context) -> Outputs:
        igw = aws.ec2(ctx).create_internet_gateway(TagSpecifications=aws.tag_spec(ctx, "internet-gateway", self.id))["InternetGateway"]
        return {"igw_id": igw["InternetGatewayId"], "attached_vpc_id": None}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        vpc_id = ctx.out(self.vpc_id)
        if out.get("attached_vpc_id") != vpc_id:
            def attach() -> None:
                try:
                    aws.ec2(ctx).attach_internet_gateway(InternetGatewayId=out["igw_id"], VpcId=vpc_id)
                except Exception as exc:
                    if error_code(exc) != "Resource.AlreadyAssociated":  # our own retried attach
                        raise

            ctx.call(attach, f"{self.id} attach")
        return {**out, "attached_vpc_id": vpc_id}

    def delete(self, ctx: Context, out: Outputs) -> None:
        vpc_id = out.get("attached_vpc_id")
        if vpc_id:
            try:
                aws.ec2(ctx).detach_internet_gateway(InternetGatewayId=out["igw_id"], VpcId=vpc_id)
            except Exception as exc:
                if error_code(exc) != "Gateway.NotAttached":
                    raise
        aws.ec2(ctx).delete_internet_gateway(InternetGatewayId=out["igw_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(
            lambda: aws.ec2(ctx).describe_internet_gateways(InternetGatewayIds=[out["igw_id"]])["InternetGateways"] or None,
            what=f"internet gateway {out['igw_id']}",
        )


class ElasticIp(Step):
    kind = "ec2.elastic_ip"
    produces = ("allocation_id", "public_ip")

    def find(self, ctx: Context) -> Outputs | None:
        address = single(aws.find_owned(ctx, self.id, "describe_addresses", "Addresses"), "Elastic IP", self.id)
        return {"allocation_id": address["AllocationId"], "public_ip": address["PublicIp"]} if address else None

    def create(self, ctx: Context) -> Outputs:
        address = aws.ec2(ctx).allocate_address(Domain="vpc", TagSpecifications=aws.tag_spec(ctx, "elastic-ip", self.id))
        return {"allocation_id": address["AllocationId"], "public_ip": address["PublicIp"]}

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.ec2(ctx).release_address(AllocationId=out["allocation_id"])


class NatGateway(Step):
    typical_seconds = 100.0  # pending -> available (docs/latency-profile.md)
    kind = "ec2.nat_gateway"
    produces = ("nat_gateway_id", "subnet_id")
    LIVE = ["pending", "available"]

    def __init__(self, step_id: str, *, subnet: str, eip: str, igw: str):
        super().__init__(step_id, needs=(subnet, eip, igw))
        self.subnet_id, self.allocation_id = Ref(subnet, "subnet_id"), Ref(eip, "allocation_id")

    def find(self, ctx: Context) -> Outputs | None:
        # describe_nat_gateways takes `Filter`, not `Filters`. Failed or deleted NATs are history, not ours.
        found = aws.find_owned(ctx, self.id, "describe_nat_gateways", "NatGateways", [{"Name": "state", "Values": self.LIVE}], filter_param="Filter")
        nat = single(found, "NAT gateway", self.id)
        return {"nat_gateway_id": nat["NatGatewayId"], "subnet_id": nat["SubnetId"]} if nat else None

    def create(self, ctx: Context) -> Outputs:
        subnet_id, allocation_id = ctx.out(self.subnet_id), ctx.out(self.allocation_id)
        nat = aws.ec2(ctx).create_nat_gateway(
            SubnetId=subnet_id, AllocationId=allocation_id,
            ConnectivityType="public", ClientToken=ctx.client_token(self.id, subnet_id, allocation_id),
            TagSpecifications=aws.tag_spec(ctx, "natgateway", self.id),
        )["NatGateway"]
        return {"nat_gateway_id": nat["NatGatewayId"], "subnet_id": nat["SubnetId"]}

    def _read(self, ctx: Context, nat_id: str) -> dict[str, Any] | None:
        nats = aws.ec2(ctx).describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
        return nats[0] if nats else None

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        nat_id = out["nat_gateway_id"]
        ctx.wait(
            lambda: self._read(ctx, nat_id) or {"State": "missing"},
            status_of=lambda n: n["State"], target={"available"}, failure={"failed", "deleting", "deleted", "missing"},
            detail_of=lambda n: n.get("FailureMessage", ""), what=f"NAT gateway {nat_id}",
        )
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.ec2(ctx).delete_nat_gateway(NatGatewayId=out["nat_gateway_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        # Its Elastic IP stays associated until the NAT is `deleted`, so the EIP step must wait for this.
        ctx.wait_gone(
            lambda: self._read(ctx, out["nat_gateway_id"]), status_of=lambda n: n["State"],
            gone_states={"deleted"}, what=f"NAT gateway {out['nat_gateway_id']}",
        )


# A rule as (direction, protocol, from port, to port, peer) where peer is "self" or a CIDR.
Rule = tuple[str, str, int, int, str]

# Databricks' required workspace security group: the customer-managed VPC docs' ports (3306 for the legacy
# Hive metastore included) plus SRA's 5432 (Lakebase PostgreSQL).
WORKSPACE_SG_RULES: tuple[Rule, ...] = (
    ("ingress", "tcp", 0, 65535, "self"),
    ("ingress", "udp", 0, 65535, "self"),
    ("egress", "tcp", 0, 65535, "self"),
    ("egress", "udp", 0, 65535, "self"),
    ("egress", "tcp", 443, 443, "0.0.0.0/0"),
    ("egress", "tcp", 2443, 2443, "0.0.0.0/0"),
    ("egress", "tcp", 3306, 3306, "0.0.0.0/0"),
    ("egress", "tcp", 5432, 5432, "0.0.0.0/0"),
    ("egress", "tcp", 6666, 6666, "0.0.0.0/0"),
    ("egress", "tcp", 8443, 8451, "0.0.0.0/0"),
)


# Databricks back-end PrivateLink: what the endpoint security group allows, from and to each CIDR of the
# workspace subnets and the endpoint subnet (the docs' ports), plus SRA's inbound 5432 (Lakebase).
PRIVATELINK_PORTS: tuple[tuple[int, int], ...] = ((443, 443), (2443, 2443), (6666, 6666), (8443, 8451))
PRIVATELINK_INGRESS_ONLY_PORTS: tuple[tuple[int, int], ...] = ((5432, 5432),)

# What each rule is for, by port range (a rule's Description; EC2 allows letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*).
RULE_PURPOSES: dict[tuple[str, int, int], str] = {
    ("tcp", 0, 65535): "Databricks - cluster nodes to each other (TCP)",
    ("udp", 0, 65535): "Databricks - cluster nodes to each other (UDP)",
    ("tcp", 443, 443): "Databricks - REST API, control plane and AWS services (HTTPS)",
    ("tcp", 2443, 2443): "Databricks - Secure Cluster Connectivity, compliance security profile (FIPS)",
    ("tcp", 3306, 3306): "Databricks - legacy Hive metastore (MySQL)",
    ("tcp", 5432, 5432): "Databricks - Lakebase PostgreSQL",
    ("tcp", 6666, 6666): "Databricks - Secure Cluster Connectivity relay",
    ("tcp", 8443, 8451): "Databricks - control plane internal calls (8443), Unity Catalog logging and lineage (8444), future use (8445-8451)",
}


def privatelink_rules(cidrs: list[str]) -> tuple[Rule, ...]:
    peers = sorted(set(cidrs))
    both = tuple((direction, "tcp", low, high, cidr) for direction in ("ingress", "egress") for low, high in PRIVATELINK_PORTS for cidr in peers)
    return both + tuple(("ingress", "tcp", low, high, cidr) for low, high in PRIVATELINK_INGRESS_ONLY_PORTS for cidr in peers)


def _purpose(rule: Rule) -> str | None:
    return RULE_PURPOSES.get(rule[1:4])


def _show_rule(rule: Rule) -> str:
    direction, protocol, low, high, peer = rule
    ports = "all ports" if (low, high) == (0, 65535) else (f"port {low}" if low == high else f"ports {low}-{high}")
    what = "all traffic" if protocol == "-1" else f"{protocol} {ports}"
    return f"{direction} {what} {'to' if direction == 'egress' else 'from'} {peer}"


def _rules_digest(rules: set[Rule]) -> str:
    return hashlib.sha256(json.dumps(sorted(map(list, rules))).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PrivateLinkRules:
    """The PrivateLink endpoint rules for CIDRs known only once their subnets exist: each a subnet step's
    `cidr` (a Ref) or a CIDR."""

    cidrs: tuple[Ref | str, ...]

    def resolve(self, ctx: Context) -> tuple[Rule, ...]:
        return privatelink_rules([ctx.out(c) if isinstance(c, Ref) else c for c in self.cidrs])


class SecurityGroup(Step):
    """A security group whose rules are converged to exactly `rules` (extra rules, such as the
    default allow-all egress, are revoked)."""

    kind = "ec2.security_group"
    # rules_digest: what `find` saw of the group's rules, so a rerun converges a group whose rules differ
    # from the spec (a port added since, a rule edited by hand) at no extra call.
    produces = ("group_id", "vpc_id", "rules_digest")

    def __init__(
        self, step_id: str, *, vpc: str, description: str,
        rules: tuple[Rule, ...] | PrivateLinkRules, needs: tuple[str, ...] = (),
    ):
        """rules: fixed, or computed from other steps' outputs (e.g. subnet CIDRs, with those steps in
        `needs`) when converging."""
        super().__init__(step_id, needs=(vpc, *needs))
        self.vpc_id, self.description, self.rules = Ref(vpc, "vpc_id"), description, rules

    def find(self, ctx: Context) -> Outputs | None:
        group = single(aws.find_owned(ctx, self.id, "describe_security_groups", "SecurityGroups"), "security group", self.id)
        if not group:
            return None
        return {"group_id": group["GroupId"], "vpc_id": group["VpcId"], "rules_digest": _rules_digest(self._rules(group, group["GroupId"]))}

    def _wanted(self, ctx: Context) -> set[Rule]:
        return set(self.rules.resolve(ctx) if isinstance(self.rules, PrivateLinkRules) else self.rules)

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found.get("rules_digest") != _rules_digest(self._wanted(ctx))

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        """Each rule missing or extra: one read, made only when the digest says the rules differ."""
        if not self.needs_converge(ctx, found):
            return []
        group_id = found["group_id"]
        group = aws.ec2(ctx).describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        return members("rules", self._wanted(ctx), self._rules(group, group_id), show=_show_rule)

    def create(self, ctx: Context) -> Outputs:
        vpc_id = ctx.out(self.vpc_id)
        group = aws.ec2(ctx).create_security_group(
            GroupName=ctx.name_for(self.id), Description=self.description, VpcId=vpc_id,
            TagSpecifications=aws.tag_spec(ctx, "security-group", self.id),
        )
        return {"group_id": group["GroupId"], "vpc_id": vpc_id}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        group_id = out["group_id"]
        group = ctx.call(lambda: aws.ec2(ctx).describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0], f"{self.id} read")
        have = self._rules(group, group_id)
        want = self._wanted(ctx)
        for direction in ("ingress", "egress"):
            add = [r for r in want - have if r[0] == direction]
            remove = [r for r in have - want if r[0] == direction]
            # New rules carry their purpose; a rule that exists keeps whatever description it has (a rule of an
            # earlier version has none), so converging never needs ec2:UpdateSecurityGroupRuleDescriptions*.
            if add:
                perms = [self._permission(r, group_id) for r in add]
                ctx.call(lambda: self._authorize(ctx, direction, group_id, perms), f"{self.id} authorize {direction}")
            if remove:
                perms = [self._permission(r, group_id, described=False) for r in remove]
                ctx.call(lambda: getattr(aws.ec2(ctx), f"revoke_security_group_{direction}")(GroupId=group_id, IpPermissions=perms), f"{self.id} revoke {direction}")
        # What `find` will see from now on: recorded now, a later no-op run has nothing new to write.
        return {**out, "rules_digest": _rules_digest(want)}

    @staticmethod
    def _authorize(ctx: Context, direction: str, group_id: str, perms: list[dict[str, Any]]) -> None:
        try:
            getattr(aws.ec2(ctx), f"authorize_security_group_{direction}")(GroupId=group_id, IpPermissions=perms)
        except Exception as exc:
            # A retried call whose first response was lost: the rules are there; the next converge re-reads.
            if error_code(exc) != "InvalidPermission.Duplicate":
                raise

    @staticmethod
    def _rules(group: dict[str, Any], group_id: str) -> set[Rule]:
        rules: set[Rule] = set()
        for direction, key in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress")):
            for perm in group.get(key, []):
                protocol = perm["IpProtocol"]
                low, high = perm.get("FromPort", 0), perm.get("ToPort", 65535)
                if protocol == "-1":
                    low, high = 0, 65535
                for pair in perm.get("UserIdGroupPairs", []):
                    rules.add((direction, protocol, low, high, "self" if pair["GroupId"] == group_id else pair["GroupId"]))
                for ip_range in perm.get("IpRanges", []):
                    rules.add((direction, protocol, low, high, ip_range["CidrIp"]))
                # Kept so that converging revokes them: the workspace group has no IPv6 or prefix-list rules.
                for ip_range in perm.get("Ipv6Ranges", []):
                    rules.add((direction, protocol, low, high, ip_range["CidrIpv6"]))
                for prefix_list in perm.get("PrefixListIds", []):
                    rules.add((direction, protocol, low, high, prefix_list["PrefixListId"]))
        return rules

    @staticmethod
    def _permission(rule: Rule, group_id: str, *, described: bool = True) -> dict[str, Any]:
        _, protocol, low, high, peer = rule
        perm: dict[str, Any] = {"IpProtocol": protocol}
        if protocol != "-1":
            perm.update(FromPort=low, ToPort=high)
        if peer == "self":
            target: dict[str, str] = {"GroupId": group_id}
            perm["UserIdGroupPairs"] = [target]
        elif peer.startswith("sg-"):
            target = {"GroupId": peer}
            perm["UserIdGroupPairs"] = [target]
        elif peer.startswith("pl-"):
            target = {"PrefixListId": peer}
            perm["PrefixListIds"] = [target]
        elif ":" in peer:
            target = {"CidrIpv6": peer}
            perm["Ipv6Ranges"] = [target]
        else:
            target = {"CidrIp": peer}
            perm["IpRanges"] = [target]
        purpose = _purpose(rule) if described else None
        if purpose:
            target["Description"] = purpose
        return perm

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.ec2(ctx).delete_security_group(GroupId=out["group_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(
            lambda: aws.ec2(ctx).describe_security_groups(GroupIds=[out["group_id"]])["SecurityGroups"] or None,
            what=f"security group {out['group_id']}",
        )
