"""VPC, subnets, internet gateway, Elastic IPs, NAT gateways, route tables, security groups.

Every resource is created with its ownership tags in the same call (TagSpecifications), so a crash right
after the call still leaves something `find` can adopt. Where EC2 accepts a ClientToken we pass a
deterministic one, so a create retried after a lost response cannot make a second resource.
"""

from __future__ import annotations

from typing import Any, Callable

from provision.orchestrator.retry import error_code, is_not_found
from provision.steps.base import Context, Outputs, Step, single

EC2_READY = {"available"}


def _tag(resource: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in resource.get("Tags", []) if t["Key"] == key), None)


class Vpc(Step):
    kind = "ec2.vpc"

    def __init__(self, step_id: str, cidr: str):
        super().__init__(step_id)
        self.cidr = cidr

    def find(self, ctx: Context) -> Outputs | None:
        vpcs = ctx.ec2.describe_vpcs(Filters=ctx.owner_filters(self.id))["Vpcs"]
        vpc = single(vpcs, "VPC", self.id)
        return {"vpc_id": vpc["VpcId"], "cidr": vpc["CidrBlock"]} if vpc else None

    def create(self, ctx: Context) -> Outputs:
        vpc = ctx.ec2.create_vpc(CidrBlock=self.cidr, TagSpecifications=ctx.tag_spec("vpc", self.id))["Vpc"]
        return {"vpc_id": vpc["VpcId"], "cidr": vpc["CidrBlock"]}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        vpc_id = out["vpc_id"]
        ctx.wait(
            lambda: ctx.ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0],
            status_of=lambda v: v["State"], target=EC2_READY, what=f"VPC {vpc_id}",
        )
        # Databricks needs DNS support and DNS hostnames; EC2 takes one attribute per call.
        for attribute, key in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
            current = ctx.call(lambda: ctx.ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute), f"{self.id} {attribute}")
            if not current[key]["Value"]:
                ctx.call(lambda: ctx.ec2.modify_vpc_attribute(VpcId=vpc_id, **{key: {"Value": True}}), f"{self.id} {attribute}")
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        ctx.ec2.delete_vpc(VpcId=out["vpc_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: ctx.ec2.describe_vpcs(VpcIds=[out["vpc_id"]])["Vpcs"] or None, what=f"VPC {out['vpc_id']}")


class Subnet(Step):
    kind = "ec2.subnet"

    def __init__(self, step_id: str, *, vpc: str, cidr: str, zone_index: int = 0, zone_of: str | None = None):
        """The zone: the deployment's zone number `zone_index`, or the zone of the subnet step `zone_of`."""
        super().__init__(step_id, needs=(vpc, *((zone_of,) if zone_of else ())))
        self.vpc, self.cidr, self.zone_index, self.zone_of = vpc, cidr, zone_index, zone_of

    def zone(self, ctx: Context) -> str:
        return ctx.out(self.zone_of, "zone") if self.zone_of else ctx.availability_zones()[self.zone_index]

    def find(self, ctx: Context) -> Outputs | None:
        subnet = single(ctx.ec2.describe_subnets(Filters=ctx.owner_filters(self.id))["Subnets"], "subnet", self.id)
        return self._outputs(subnet) if subnet else None

    @staticmethod
    def _outputs(subnet: dict[str, Any]) -> Outputs:
        return {"subnet_id": subnet["SubnetId"], "cidr": subnet["CidrBlock"], "zone": subnet["AvailabilityZone"]}

    def create(self, ctx: Context) -> Outputs:
        subnet = ctx.ec2.create_subnet(
            VpcId=ctx.out(self.vpc, "vpc_id"), CidrBlock=self.cidr, AvailabilityZone=self.zone(ctx),
            TagSpecifications=ctx.tag_spec("subnet", self.id),
        )["Subnet"]
        return self._outputs(subnet)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        ctx.wait(
            lambda: ctx.ec2.describe_subnets(SubnetIds=[out["subnet_id"]])["Subnets"][0],
            status_of=lambda s: s["State"], target=EC2_READY, what=f"subnet {out['subnet_id']}",
        )
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        ctx.ec2.delete_subnet(SubnetId=out["subnet_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: ctx.ec2.describe_subnets(SubnetIds=[out["subnet_id"]])["Subnets"] or None, what=f"subnet {out['subnet_id']}")


class InternetGateway(Step):
    kind = "ec2.internet_gateway"

    def __init__(self, step_id: str, *, vpc: str):
        super().__init__(step_id, needs=(vpc,))
        self.vpc = vpc

    def find(self, ctx: Context) -> Outputs | None:
        igw = single(ctx.ec2.describe_internet_gateways(Filters=ctx.owner_filters(self.id))["InternetGateways"], "internet gateway", self.id)
        if not igw:
            return None
        attached = [a["VpcId"] for a in igw.get("Attachments", []) if a.get("State") in ("available", "attached", "attaching")]
        return {"igw_id": igw["InternetGatewayId"], "attached_vpc_id": attached[0] if attached else None}

    def create(self, ctx: Context) -> Outputs:
        igw = ctx.ec2.create_internet_gateway(TagSpecifications=ctx.tag_spec("internet-gateway", self.id))["InternetGateway"]
        return {"igw_id": igw["InternetGatewayId"], "attached_vpc_id": None}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        vpc_id = ctx.out(self.vpc, "vpc_id")
        if out.get("attached_vpc_id") != vpc_id:
            def attach() -> None:
                try:
                    ctx.ec2.attach_internet_gateway(InternetGatewayId=out["igw_id"], VpcId=vpc_id)
                except Exception as exc:
                    if error_code(exc) != "Resource.AlreadyAssociated":  # our own retried attach
                        raise

            ctx.call(attach, f"{self.id} attach")
        return {**out, "attached_vpc_id": vpc_id}

    def delete(self, ctx: Context, out: Outputs) -> None:
        vpc_id = out.get("attached_vpc_id")
        if vpc_id:
            try:
                ctx.ec2.detach_internet_gateway(InternetGatewayId=out["igw_id"], VpcId=vpc_id)
            except Exception as exc:
                if error_code(exc) != "Gateway.NotAttached":
                    raise
        ctx.ec2.delete_internet_gateway(InternetGatewayId=out["igw_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(
            lambda: ctx.ec2.describe_internet_gateways(InternetGatewayIds=[out["igw_id"]])["InternetGateways"] or None,
            what=f"internet gateway {out['igw_id']}",
        )


class ElasticIp(Step):
    kind = "ec2.elastic_ip"

    def find(self, ctx: Context) -> Outputs | None:
        address = single(ctx.ec2.describe_addresses(Filters=ctx.owner_filters(self.id))["Addresses"], "Elastic IP", self.id)
        return {"allocation_id": address["AllocationId"], "public_ip": address["PublicIp"]} if address else None

    def create(self, ctx: Context) -> Outputs:
        address = ctx.ec2.allocate_address(Domain="vpc", TagSpecifications=ctx.tag_spec("elastic-ip", self.id))
        return {"allocation_id": address["AllocationId"], "public_ip": address["PublicIp"]}

    def delete(self, ctx: Context, out: Outputs) -> None:
        ctx.ec2.release_address(AllocationId=out["allocation_id"])


class NatGateway(Step):
    typical_seconds = 100.0  # pending -> available (docs/latency-profile.md)
    kind = "ec2.nat_gateway"
    LIVE = ["pending", "available"]

    def __init__(self, step_id: str, *, subnet: str, eip: str, igw: str):
        super().__init__(step_id, needs=(subnet, eip, igw))
        self.subnet, self.eip = subnet, eip

    def find(self, ctx: Context) -> Outputs | None:
        # describe_nat_gateways takes `Filter`, not `Filters`. Failed or deleted NATs are history, not ours.
        filters = ctx.owner_filters(self.id) + [{"Name": "state", "Values": self.LIVE}]
        nat = single(ctx.ec2.describe_nat_gateways(Filter=filters)["NatGateways"], "NAT gateway", self.id)
        return {"nat_gateway_id": nat["NatGatewayId"], "subnet_id": nat["SubnetId"]} if nat else None

    def create(self, ctx: Context) -> Outputs:
        subnet_id, allocation_id = ctx.out(self.subnet, "subnet_id"), ctx.out(self.eip, "allocation_id")
        nat = ctx.ec2.create_nat_gateway(
            SubnetId=subnet_id, AllocationId=allocation_id,
            ConnectivityType="public", ClientToken=ctx.client_token(self.id, subnet_id, allocation_id),
            TagSpecifications=ctx.tag_spec("natgateway", self.id),
        )["NatGateway"]
        return {"nat_gateway_id": nat["NatGatewayId"], "subnet_id": nat["SubnetId"]}

    def _read(self, ctx: Context, nat_id: str) -> dict[str, Any] | None:
        nats = ctx.ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
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
        ctx.ec2.delete_nat_gateway(NatGatewayId=out["nat_gateway_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        # Its Elastic IP stays associated until the NAT is `deleted`, so the EIP step must wait for this.
        ctx.wait_gone(
            lambda: self._read(ctx, out["nat_gateway_id"]), status_of=lambda n: n["State"],
            gone_states={"deleted"}, what=f"NAT gateway {out['nat_gateway_id']}",
        )


# A route as (destination CIDR, target key of create_route, how to find the target id once its step is done).
Route = tuple[str, str, Callable[[Context], str]]
TARGET_OUTPUT = {"GatewayId": "igw_id", "NatGatewayId": "nat_gateway_id", "TransitGatewayId": "tgw_id"}
# DescribeRouteTables reports a route to a VPC endpoint (e.g. a firewall endpoint) under GatewayId.
READ_KEY = {"VpcEndpointId": "GatewayId"}


def target(step_id: str, key: str) -> Callable[[Context], str]:
    return lambda ctx: ctx.out(step_id, key)


def create_route(ctx: Context, route: dict[str, Any]) -> None:
    """create_route, where "already exists" (our own earlier call whose response was lost) means: make
    sure it points where it should."""
    try:
        ctx.ec2.create_route(**route)
    except Exception as exc:
        if error_code(exc) != "RouteAlreadyExists":
            raise
        ctx.ec2.replace_route(**route)


def associate(ctx: Context, table_id: str, **target: str) -> str:
    """associate_route_table, where "already associated" (a lost response) means: read the association."""
    try:
        return ctx.ec2.associate_route_table(RouteTableId=table_id, **target)["AssociationId"]
    except Exception as exc:
        if error_code(exc) != "Resource.AlreadyAssociated":
            raise
        table = ctx.ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
        (key, value), = target.items()
        found = [a["RouteTableAssociationId"] for a in table.get("Associations", []) if a.get(key) == value]
        if not found:
            raise  # associated with another table: a real conflict
        return found[0]


class RouteTable(Step):
    """A route table with its routes and associations (subnets, and optionally a gateway for an edge route
    table), converged whenever the step runs (create, adopt, resume of an unfinished step)."""

    kind = "ec2.route_table"

    def __init__(
        self, step_id: str, *, vpc: str, subnets: list[str], default_route: tuple[str, str] | None = None,
        routes: tuple[Route, ...] = (), gateway: str | None = None, needs: tuple[str, ...] = (),
    ):
        """default_route: (target key, step id), e.g. ("GatewayId", "igw") or ("NatGatewayId", "nat.0"),
        for 0.0.0.0/0; `routes` for anything else, with the steps they target in `needs`. No routes at all
        leaves only the VPC's local route (the PrivateLink endpoint subnet). `gateway`: an internet gateway
        step to associate this table with as its edge route table."""
        self.routes: list[Route] = list(routes)
        extra = list(needs)
        if default_route:
            key, step = default_route
            self.routes.insert(0, ("0.0.0.0/0", key, target(step, TARGET_OUTPUT[key])))
            extra.append(step)
        super().__init__(step_id, needs=(vpc, *subnets, *((gateway,) if gateway else ()), *extra))
        self.vpc, self.subnets, self.gateway = vpc, subnets, gateway

    def find(self, ctx: Context) -> Outputs | None:
        table = single(ctx.ec2.describe_route_tables(Filters=ctx.owner_filters(self.id))["RouteTables"], "route table", self.id)
        return self._outputs(table) if table else None

    @staticmethod
    def _outputs(table: dict[str, Any]) -> Outputs:
        associations = {
            a.get("SubnetId") or a.get("GatewayId"): a["RouteTableAssociationId"]
            for a in table.get("Associations", []) if (a.get("SubnetId") or a.get("GatewayId")) and not a.get("Main")
        }
        return {"route_table_id": table["RouteTableId"], "associations": associations}

    def create(self, ctx: Context) -> Outputs:
        vpc_id = ctx.out(self.vpc, "vpc_id")
        table = ctx.ec2.create_route_table(
            VpcId=vpc_id, ClientToken=ctx.client_token(self.id, vpc_id),
            TagSpecifications=ctx.tag_spec("route-table", self.id),
        )["RouteTable"]
        return self._outputs(table)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        table_id = out["route_table_id"]
        table = ctx.call(lambda: ctx.ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0], f"{self.id} read")
        current = {r.get("DestinationCidrBlock"): r for r in table.get("Routes", [])}
        for destination, key, resolve in self.routes:
            target_id = resolve(ctx)
            route = {"RouteTableId": table_id, "DestinationCidrBlock": destination, key: target_id}
            existing = current.get(destination)
            if existing is None:
                ctx.call(lambda: create_route(ctx, route), f"{self.id} route {destination}")
            elif existing.get(READ_KEY.get(key, key)) != target_id:
                ctx.call(lambda: ctx.ec2.replace_route(**route), f"{self.id} route {destination}")
        associations = dict(self._outputs(table)["associations"])
        for subnet_step in self.subnets:
            subnet_id = ctx.out(subnet_step, "subnet_id")
            if subnet_id not in associations:
                associations[subnet_id] = ctx.call(
                    lambda: associate(ctx, table_id, SubnetId=subnet_id), f"{self.id} associate {subnet_id}",
                )
        if self.gateway:
            gateway_id = ctx.out(self.gateway, "igw_id")
            if gateway_id not in associations:
                associations[gateway_id] = ctx.call(
                    lambda: associate(ctx, table_id, GatewayId=gateway_id), f"{self.id} edge association {gateway_id}",
                )
        return {"route_table_id": table_id, "associations": associations}

    def delete(self, ctx: Context, out: Outputs) -> None:
        for association_id in (out.get("associations") or {}).values():
            try:
                ctx.ec2.disassociate_route_table(AssociationId=association_id)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
        ctx.ec2.delete_route_table(RouteTableId=out["route_table_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(
            lambda: ctx.ec2.describe_route_tables(RouteTableIds=[out["route_table_id"]])["RouteTables"] or None,
            what=f"route table {out['route_table_id']}",
        )


# A rule as (direction, protocol, from port, to port, peer) where peer is "self" or a CIDR.
Rule = tuple[str, str, int, int, str]

# Databricks' required workspace security group (customer-managed VPC docs).
WORKSPACE_SG_RULES: tuple[Rule, ...] = (
    ("ingress", "tcp", 0, 65535, "self"),
    ("ingress", "udp", 0, 65535, "self"),
    ("egress", "tcp", 0, 65535, "self"),
    ("egress", "udp", 0, 65535, "self"),
    ("egress", "tcp", 443, 443, "0.0.0.0/0"),
    ("egress", "tcp", 2443, 2443, "0.0.0.0/0"),
    ("egress", "tcp", 3306, 3306, "0.0.0.0/0"),
    ("egress", "tcp", 6666, 6666, "0.0.0.0/0"),
    ("egress", "tcp", 8443, 8451, "0.0.0.0/0"),
)


# Databricks back-end PrivateLink: what the endpoint security group allows, from and to each CIDR of the
# workspace subnets and the endpoint subnet.
PRIVATELINK_PORTS: tuple[tuple[int, int], ...] = ((443, 443), (2443, 2443), (6666, 6666), (8443, 8451))


def privatelink_rules(cidrs: list[str]) -> tuple[Rule, ...]:
    return tuple(
        (direction, "tcp", low, high, cidr)
        for direction in ("ingress", "egress")
        for low, high in PRIVATELINK_PORTS
        for cidr in sorted(set(cidrs))
    )


class SecurityGroup(Step):
    """A security group whose rules are converged to exactly `rules` (extra rules, such as the
    default allow-all egress, are revoked)."""

    kind = "ec2.security_group"

    def __init__(
        self, step_id: str, *, vpc: str, description: str,
        rules: tuple[Rule, ...] | Callable[[Context], tuple[Rule, ...]], needs: tuple[str, ...] = (),
    ):
        """rules: fixed, or computed from other steps' outputs (e.g. subnet CIDRs) when converging."""
        super().__init__(step_id, needs=(vpc, *needs))
        self.vpc, self.description, self.rules = vpc, description, rules

    def find(self, ctx: Context) -> Outputs | None:
        group = single(ctx.ec2.describe_security_groups(Filters=ctx.owner_filters(self.id))["SecurityGroups"], "security group", self.id)
        return {"group_id": group["GroupId"], "vpc_id": group["VpcId"]} if group else None

    def create(self, ctx: Context) -> Outputs:
        vpc_id = ctx.out(self.vpc, "vpc_id")
        group = ctx.ec2.create_security_group(
            GroupName=ctx.name_for(self.id), Description=self.description, VpcId=vpc_id,
            TagSpecifications=ctx.tag_spec("security-group", self.id),
        )
        return {"group_id": group["GroupId"], "vpc_id": vpc_id}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        group_id = out["group_id"]
        group = ctx.call(lambda: ctx.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0], f"{self.id} read")
        have = self._rules(group, group_id)
        want = set(self.rules(ctx) if callable(self.rules) else self.rules)
        for direction in ("ingress", "egress"):
            add = [r for r in want - have if r[0] == direction]
            remove = [r for r in have - want if r[0] == direction]
            if add:
                perms = [self._permission(r, group_id) for r in add]
                ctx.call(lambda: self._authorize(ctx, direction, group_id, perms), f"{self.id} authorize {direction}")
            if remove:
                perms = [self._permission(r, group_id) for r in remove]
                ctx.call(lambda: getattr(ctx.ec2, f"revoke_security_group_{direction}")(GroupId=group_id, IpPermissions=perms), f"{self.id} revoke {direction}")
        return out

    @staticmethod
    def _authorize(ctx: Context, direction: str, group_id: str, perms: list[dict[str, Any]]) -> None:
        try:
            getattr(ctx.ec2, f"authorize_security_group_{direction}")(GroupId=group_id, IpPermissions=perms)
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
    def _permission(rule: Rule, group_id: str) -> dict[str, Any]:
        _, protocol, low, high, peer = rule
        perm: dict[str, Any] = {"IpProtocol": protocol}
        if protocol != "-1":
            perm.update(FromPort=low, ToPort=high)
        if peer == "self":
            perm["UserIdGroupPairs"] = [{"GroupId": group_id}]
        elif peer.startswith("sg-"):
            perm["UserIdGroupPairs"] = [{"GroupId": peer}]
        elif peer.startswith("pl-"):
            perm["PrefixListIds"] = [{"PrefixListId": peer}]
        elif ":" in peer:
            perm["Ipv6Ranges"] = [{"CidrIpv6": peer}]
        else:
            perm["IpRanges"] = [{"CidrIp": peer}]
        return perm

    def delete(self, ctx: Context, out: Outputs) -> None:
        ctx.ec2.delete_security_group(GroupId=out["group_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(
            lambda: ctx.ec2.describe_security_groups(GroupIds=[out["group_id"]])["SecurityGroups"] or None,
            what=f"security group {out['group_id']}",
        )


class VpcRoute(Step):
    """One route in a route table owned by another step: what a spoke adds to the hub's tables, so adding
    a spoke creates its own routes and leaves the shared tables' steps untouched."""

    kind = "ec2.route"

    def __init__(self, step_id: str, *, route_table: str, destination: str, target_key: str, target_step: str, needs: tuple[str, ...] = ()):
        super().__init__(step_id, needs=(route_table, target_step, *needs))
        self.route_table, self.destination, self.target_key, self.target_step = route_table, destination, target_key, target_step

    def _table(self, ctx: Context) -> dict[str, Any] | None:
        table_id = ctx.outputs.get(self.route_table, {}).get("route_table_id")
        if table_id is None:
            return None
        tables = ctx.ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"]
        return tables[0] if tables else None

    def find(self, ctx: Context) -> Outputs | None:
        table = self._table(ctx)
        route = next((r for r in (table or {}).get("Routes", []) if r.get("DestinationCidrBlock") == self.destination), None)
        if table is None or route is None:
            return None
        return {"route_table_id": table["RouteTableId"], "destination": self.destination, "target": route.get(READ_KEY.get(self.target_key, self.target_key))}

    def create(self, ctx: Context) -> Outputs:
        table_id, target_id = ctx.out(self.route_table, "route_table_id"), ctx.out(self.target_step, TARGET_OUTPUT[self.target_key])
        create_route(ctx, {"RouteTableId": table_id, "DestinationCidrBlock": self.destination, self.target_key: target_id})
        return {"route_table_id": table_id, "destination": self.destination, "target": target_id}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        target_id = ctx.out(self.target_step, TARGET_OUTPUT[self.target_key])
        if out.get("target") != target_id:
            ctx.call(lambda: ctx.ec2.replace_route(RouteTableId=out["route_table_id"], DestinationCidrBlock=self.destination,
                                                   **{self.target_key: target_id}), f"{self.id} replace")
        return {**out, "target": target_id}

    def delete(self, ctx: Context, out: Outputs) -> None:
        ctx.ec2.delete_route(RouteTableId=out["route_table_id"], DestinationCidrBlock=out["destination"])

    def resource_id(self, out: Outputs) -> str | None:
        return f"{out.get('route_table_id')}:{out.get('destination')}" if out else None
