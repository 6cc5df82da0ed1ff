"""Route tables, their routes and associations, and single routes in another step's table.

"Already exists" on a route or an association is a lost response of our own earlier call: it is re-read
and converged, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code, is_not_found
from provision.orchestrator.drift import Drift
from provision.orchestrator.step import Context, Outputs, Ref, Step, single


@dataclass(frozen=True)
class EndpointInZone:
    """A route target: the firewall endpoint (from a firewall step's `endpoints`, by zone) in the zone of
    a subnet step."""

    endpoints: Ref
    zone: Ref

    def resolve(self, ctx: Context) -> str:
        return ctx.out(self.endpoints)[ctx.out(self.zone)]


# A route target's id: another step's output, or the firewall endpoint of a subnet's zone.
Target = Ref | EndpointInZone
# A route as (destination CIDR, target key of create_route, target id once its step is done).
Route = tuple[str, str, Target]
# DescribeRouteTables reports a route to a VPC endpoint (e.g. a firewall endpoint) under GatewayId.
READ_KEY = {"VpcEndpointId": "GatewayId"}
# Where else a route read may name its target (a route re-pointed by hand to another kind of target).
OTHER_TARGETS = ("GatewayId", "NatGatewayId", "TransitGatewayId", "NetworkInterfaceId", "VpcPeeringConnectionId", "InstanceId")


def live_target(route: dict[str, Any], key: str) -> str | None:
    """Where a route read points: under `key` (as DescribeRouteTables names it), or wherever it was re-pointed."""
    return route.get(READ_KEY.get(key, key)) or next((route[k] for k in OTHER_TARGETS if route.get(k)), None)


def target_id(ctx: Context, target: Target) -> str:
    return ctx.out(target) if isinstance(target, Ref) else target.resolve(ctx)


def create_route(ctx: Context, route: dict[str, Any]) -> None:
    """create_route, where "already exists" (our own earlier call whose response was lost) means: make
    sure it points where it should."""
    try:
        aws.ec2(ctx).create_route(**route)
    except Exception as exc:
        if error_code(exc) != "RouteAlreadyExists":
            raise
        aws.ec2(ctx).replace_route(**route)


def associate(ctx: Context, table_id: str, **target: str) -> str:
    """associate_route_table, where "already associated" (a lost response) means: read the association."""
    try:
        return aws.ec2(ctx).associate_route_table(RouteTableId=table_id, **target)["AssociationId"]
    except Exception as exc:
        if error_code(exc) != "Resource.AlreadyAssociated":
            raise
        table = aws.ec2(ctx).describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
        (key, value), = target.items()
        found = [a["RouteTableAssociationId"] for a in table.get("Associations", []) if a.get(key) == value]
        if not found:
            raise  # associated with another table: a real conflict
        return found[0]


class RouteTable(Step):
    """A route table with its routes and associations (subnets, and optionally a gateway for an edge route
    table), converged whenever the step runs (create, adopt, resume of an unfinished step)."""

    kind = "ec2.route_table"
    # routes: what `find` saw (destination -> target), so a rerun converges a route re-pointed or deleted by hand
    # at no extra call.
    produces = ("route_table_id", "associations", "routes")

    def __init__(
        self, step_id: str, *, vpc: str, subnets: list[str], default_route: tuple[str, Ref] | None = None,
        routes: tuple[Route, ...] = (), gateway: str | None = None, needs: tuple[str, ...] = (),
    ):
        """default_route: (target key, target id), e.g. ("GatewayId", Ref("igw", "igw_id")), for 0.0.0.0/0;
        `routes` for anything else, with the steps they target in `needs`. No routes at all leaves only the
        VPC's local route (the PrivateLink endpoint subnet). `gateway`: an internet gateway step to
        associate this table with as its edge route table."""
        self.routes: list[Route] = list(routes)
        extra = list(needs)
        if default_route:
            key, target = default_route
            self.routes.insert(0, ("0.0.0.0/0", key, target))
            extra.append(target.step)
        super().__init__(step_id, needs=(vpc, *subnets, *((gateway,) if gateway else ()), *extra))
        self.vpc_id = Ref(vpc, "vpc_id")
        self.subnet_ids = [Ref(s, "subnet_id") for s in subnets]
        self.gateway_id = Ref(gateway, "igw_id") if gateway else None

    def find(self, ctx: Context) -> Outputs | None:
        table = single(aws.find_owned(ctx, self.id, "describe_route_tables", "RouteTables"), "route table", self.id)
        return {**self._outputs(table), "routes": self._live_routes(table)} if table else None

    def _live_routes(self, table: dict[str, Any]) -> dict[str, str | None]:
        """This step's routes as the table has them: destination -> target id (None: no such route)."""
        current = {r.get("DestinationCidrBlock"): r for r in table.get("Routes", [])}

        return {d: live_target(current.get(d) or {}, key) for d, key, _ in self.routes}

    def _wanted(self, ctx: Context) -> tuple[dict[str, str], list[str]]:
        """The routes (destination -> target id) and the associations (subnet or gateway ids) the spec wants."""
        routes = {destination: target_id(ctx, target) for destination, _, target in self.routes}
        associated = [ctx.out(s) for s in self.subnet_ids] + ([ctx.out(self.gateway_id)] if self.gateway_id else [])
        return routes, associated

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        """Routes the spec wants that are missing or point elsewhere, and missing associations. Routes it does not
        name (the local route, what other steps add) are not this step's."""
        routes, associated = self._wanted(ctx)
        live, associations = found.get("routes") or {}, found.get("associations") or {}
        drifts = [Drift(f"route {d}", target, live.get(d)) for d, target in routes.items() if live.get(d) != target]
        return drifts + [Drift("association", a, None) for a in associated if a not in associations]

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return bool(self.drift(ctx, found))

    @staticmethod
    def _outputs(table: dict[str, Any]) -> Outputs:
        associations = {
            a.get("SubnetId") or a.get("GatewayId"): a["RouteTableAssociationId"]
            for a in table.get("Associations", []) if (a.get("SubnetId") or a.get("GatewayId")) and not a.get("Main")
        }
        return {"route_table_id": table["RouteTableId"], "associations": associations}

    def create(self, ctx: Context) -> Outputs:
        vpc_id = ctx.out(self.vpc_id)
        table = aws.ec2(ctx).create_route_table(
            VpcId=vpc_id, ClientToken=ctx.client_token(self.id, vpc_id),
            TagSpecifications=aws.tag_spec(ctx, "route-table", self.id),
        )["RouteTable"]
        return self._outputs(table)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        table_id = out["route_table_id"]
        table = ctx.call(lambda: aws.ec2(ctx).describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0], f"{self.id} read")
        current = {r.get("DestinationCidrBlock"): r for r in table.get("Routes", [])}
        for destination, key, target in self.routes:
            wanted = target_id(ctx, target)
            route = {"RouteTableId": table_id, "DestinationCidrBlock": destination, key: wanted}
            existing = current.get(destination)
            if existing is None:
                ctx.call(lambda: create_route(ctx, route), f"{self.id} route {destination}")
            elif existing.get(READ_KEY.get(key, key)) != wanted:
                ctx.call(lambda: aws.ec2(ctx).replace_route(**route), f"{self.id} route {destination}")
        associations = dict(self._outputs(table)["associations"])
        for subnet_ref in self.subnet_ids:
            subnet_id = ctx.out(subnet_ref)
            if subnet_id not in associations:
                associations[subnet_id] = ctx.call(
                    lambda: associate(ctx, table_id, SubnetId=subnet_id), f"{self.id} associate {subnet_id}",
                )
        if self.gateway_id:
            gateway_id = ctx.out(self.gateway_id)
            if gateway_id not in associations:
                associations[gateway_id] = ctx.call(
                    lambda: associate(ctx, table_id, GatewayId=gateway_id), f"{self.id} edge association {gateway_id}",
                )
        # The routes as `find` will see them from now on (so a later no-op run has nothing new to record).
        routes = {destination: target_id(ctx, target) for destination, _, target in self.routes}
        return {"route_table_id": table_id, "associations": associations, "routes": routes}

    def delete(self, ctx: Context, out: Outputs) -> None:
        for association_id in (out.get("associations") or {}).values():
            try:
                aws.ec2(ctx).disassociate_route_table(AssociationId=association_id)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
        aws.ec2(ctx).delete_route_table(RouteTableId=out["route_table_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(
            lambda: aws.ec2(ctx).describe_route_tables(RouteTableIds=[out["route_table_id"]])["RouteTables"] or None,
            what=f"route table {out['route_table_id']}",
        )


class VpcRoute(Step):
    """One route in a route table owned by another step: what a spoke adds to the hub's tables, so adding
    a spoke creates its own routes and leaves the shared tables' steps untouched."""

    kind = "ec2.route"
    produces = ("route_table_id", "destination", "target")

    def __init__(self, step_id: str, *, route_table: str, destination: str, target_key: str, target: Ref, needs: tuple[str, ...] = ()):
        """target_key: create_route's key for the target, e.g. "TransitGatewayId"; target: its id."""
        super().__init__(step_id, needs=(route_table, target.step, *needs))
        self.route_table_id, self.destination, self.target_key, self.target = Ref(route_table, "route_table_id"), destination, target_key, target

    def _table(self, ctx: Context) -> dict[str, Any] | None:
        # In teardown the table's step may be gone already (and its routes with it).
        table_id = ctx.out_if_known(self.route_table_id)
        if table_id is None:
            return None
        tables = aws.ec2(ctx).describe_route_tables(RouteTableIds=[table_id])["RouteTables"]
        return tables[0] if tables else None

    def find(self, ctx: Context) -> Outputs | None:
        table = self._table(ctx)
        route = next((r for r in (table or {}).get("Routes", []) if r.get("DestinationCidrBlock") == self.destination), None)
        if table is None or route is None:
            return None
        return {"route_table_id": table["RouteTableId"], "destination": self.destination, "target": live_target(route, self.target_key)}

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        wanted = ctx.out(self.target)
        return [] if found.get("target") == wanted else [Drift("target", wanted, found.get("target"))]

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return bool(self.drift(ctx, found))

    def create(self, ctx: Context) -> Outputs:
        table_id, target_id = ctx.out(self.route_table_id), ctx.out(self.target)
        create_route(ctx, {"RouteTableId": table_id, "DestinationCidrBlock": self.destination, self.target_key: target_id})
        return {"route_table_id": table_id, "destination": self.destination, "target": target_id}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        target_id = ctx.out(self.target)
        if out.get("target") != target_id:
            ctx.call(lambda: aws.ec2(ctx).replace_route(RouteTableId=out["route_table_id"], DestinationCidrBlock=self.destination,
                                                   **{self.target_key: target_id}), f"{self.id} replace")
        return {**out, "target": target_id}

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.ec2(ctx).delete_route(RouteTableId=out["route_table_id"], DestinationCidrBlock=out["destination"])

    def resource_id(self, out: Outputs) -> str | None:
        return f"{out.get('route_table_id')}:{out.get('destination')}" if out else None
