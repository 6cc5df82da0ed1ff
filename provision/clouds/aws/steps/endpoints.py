"""VPC endpoints: the S3 gateway endpoint and the STS / Kinesis interface endpoints Databricks uses.

An endpoint may carry a policy (`policy`): a document, or a callable `(ctx) -> document` for one that needs
other steps' outputs or the account id. Such a callable keeps the Refs it reads as dataclass fields (so the
step declares them) and names their steps in a `needs` attribute (see clouds/aws/endpoint_policies.py). The
policy is set on create and converged on every later run: the live document is compared, as parsed JSON, with
the wanted one. Without a policy (None) the endpoint's policy is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.endpoint_policies import compact, digest, same
from provision.clouds.aws.errors import is_not_found
from provision.orchestrator.drift import Drift
from provision.orchestrator.step import Context, Outputs, Ref, Step, single

LIVE_STATES = ["pendingAcceptance", "pending", "available"]

PolicySource = dict[str, Any] | Callable[[Context], dict[str, Any]] | None


class _Endpoint(Step):
    kind = "ec2.vpc_endpoint"
    produces = ("vpc_endpoint_id", "service_name", "policy_digest")

    def __init__(self, step_id: str, *, vpc: str, service: str, needs: tuple[str, ...], policy: PolicySource = None):
        """service: the suffix after com.amazonaws.<region>., e.g. "s3" or "sts"."""
        policy_needs = () if policy is None or isinstance(policy, dict) else tuple(getattr(policy, "needs", ()))
        super().__init__(step_id, needs=tuple(dict.fromkeys((vpc, *needs, *policy_needs))))
        self.vpc_id, self.service = Ref(vpc, "vpc_id"), service
        self.policy = policy

    def wanted_policy(self, ctx: Context) -> dict[str, Any] | None:
        if self.policy is None or isinstance(self.policy, dict):
            return self.policy
        return self.policy(ctx)

    def _policy_arguments(self, ctx: Context) -> dict[str, Any]:
        wanted = self.wanted_policy(ctx)
        return {} if wanted is None else {"PolicyDocument": compact(wanted)}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        wanted = self.wanted_policy(ctx)
        return wanted is not None and found.get("policy_digest") != digest(wanted)

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        wanted = self.wanted_policy(ctx)
        if wanted is None or found.get("policy_digest") == digest(wanted):
            return []
        return [Drift("policy (digest)", digest(wanted), found.get("policy_digest"))]

    def service_name(self, ctx: Context) -> str:
        """`service` is an AWS service suffix ("sts") or a full endpoint service name (Databricks')."""
        if self.service.startswith("com.amazonaws."):
            return self.service
        return f"com.amazonaws.{ctx.spec.region}.{self.service}"

    def find(self, ctx: Context) -> Outputs | None:
        found = aws.find_owned(ctx, self.id, "describe_vpc_endpoints", "VpcEndpoints", [{"Name": "vpc-endpoint-state", "Values": LIVE_STATES}])
        endpoint = single(found, "VPC endpoint", self.id)
        return self._outputs(endpoint) if endpoint else None

    def _outputs(self, endpoint: dict[str, Any]) -> Outputs:
        out: Outputs = {"vpc_endpoint_id": endpoint["VpcEndpointId"], "service_name": endpoint["ServiceName"]}
        if self.policy is not None:
            out["policy_digest"] = digest(endpoint.get("PolicyDocument"))
        return out

    def _read(self, ctx: Context, endpoint_id: str) -> dict[str, Any] | None:
        endpoints = aws.ec2(ctx).describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"]
        return endpoints[0] if endpoints else None

    # States in which the endpoint is usable as far as this step is concerned. An endpoint to a service
    # that requires acceptance is ready for its next step (registration) while pendingAcceptance.
    ready_states = frozenset({"available"})

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        endpoint_id = out["vpc_endpoint_id"]
        endpoint = ctx.wait(
            lambda: self._read(ctx, endpoint_id) or {"State": "missing"},
            status_of=lambda e: e["State"], target=set(self.ready_states),
            failure={"failed", "rejected", "deleting", "deleted", "expired", "missing"},
            what=f"VPC endpoint {endpoint_id}",
        )
        wanted = self.wanted_policy(ctx)
        if wanted is None:
            return out
        if not same(endpoint.get("PolicyDocument"), wanted):
            ctx.call(
                lambda: aws.ec2(ctx).modify_vpc_endpoint(VpcEndpointId=endpoint_id, PolicyDocument=compact(wanted)),
                f"{self.id} policy",
            )
        return {**out, "policy_digest": digest(wanted)}

    def delete(self, ctx: Context, out: Outputs) -> None:
        result = aws.ec2(ctx).delete_vpc_endpoints(VpcEndpointIds=[out["vpc_endpoint_id"]])
        for failure in result.get("Unsuccessful", []):
            error = failure.get("Error", {})
            if "NotFound" not in error.get("Code", ""):
                raise RuntimeError(f"delete_vpc_endpoints {out['vpc_endpoint_id']}: {error.get('Code')}: {error.get('Message')}")

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        # Interface endpoints keep their network interfaces in the subnets until fully deleted.
        ctx.wait_gone(
            lambda: self._read(ctx, out["vpc_endpoint_id"]), status_of=lambda e: e["State"],
            gone_states={"deleted"}, what=f"VPC endpoint {out['vpc_endpoint_id']}",
        )


class GatewayEndpoint(_Endpoint):
    def __init__(self, step_id: str, *, vpc: str, service: str, route_tables: list[str], policy: PolicySource = None):
        super().__init__(step_id, vpc=vpc, service=service, needs=tuple(route_tables), policy=policy)
        self.route_table_ids = [Ref(rt, "route_table_id") for rt in route_tables]

    def create(self, ctx: Context) -> Outputs:
        vpc_id = ctx.out(self.vpc_id)
        tables = [ctx.out(rt) for rt in self.route_table_ids]
        policy = self._policy_arguments(ctx)
        endpoint = aws.ec2(ctx).create_vpc_endpoint(
            VpcEndpointType="Gateway", VpcId=vpc_id, ServiceName=self.service_name(ctx), RouteTableIds=tables, **policy,
            ClientToken=ctx.client_token(self.id, vpc_id, *tables, *policy.values()),
            TagSpecifications=aws.tag_spec(ctx, "vpc-endpoint", self.id),
        )["VpcEndpoint"]
        return self._outputs(endpoint)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        out = super().wait_ready(ctx, out)
        endpoint = ctx.call(lambda: self._read(ctx, out["vpc_endpoint_id"]), f"{self.id} read") or {}
        missing = [ctx.out(rt) for rt in self.route_table_ids]
        missing = [rt for rt in missing if rt not in endpoint.get("RouteTableIds", [])]
        if missing:
            ctx.call(lambda: aws.ec2(ctx).modify_vpc_endpoint(VpcEndpointId=out["vpc_endpoint_id"], AddRouteTableIds=missing), f"{self.id} route tables")
        return out


class InterfaceEndpoint(_Endpoint):
    typical_seconds = 90.0  # pending -> available
    def __init__(
        self, step_id: str, *, vpc: str, service: str, subnets: list[str], security_group: str, private_dns: bool = True,
        policy: PolicySource = None,
    ):
        super().__init__(step_id, vpc=vpc, service=service, needs=(*subnets, security_group), policy=policy)
        self.subnet_ids, self.group_id = [Ref(s, "subnet_id") for s in subnets], Ref(security_group, "group_id")
        self.private_dns = private_dns
        if not private_dns:
            # A Databricks endpoint waits for the provider's acceptance, which registration triggers;
            # private DNS can only be turned on after that (see PrivateDns).
            self.ready_states = frozenset({"pendingAcceptance", "pending", "available"})

    def create(self, ctx: Context) -> Outputs:
        vpc_id = ctx.out(self.vpc_id)
        subnets = [ctx.out(s) for s in self.subnet_ids]
        group = ctx.out(self.group_id)
        policy = self._policy_arguments(ctx)
        endpoint = aws.ec2(ctx).create_vpc_endpoint(
            VpcEndpointType="Interface", VpcId=vpc_id, ServiceName=self.service_name(ctx),
            SubnetIds=subnets, SecurityGroupIds=[group], PrivateDnsEnabled=self.private_dns, **policy,
            ClientToken=ctx.client_token(self.id, vpc_id, group, *subnets, *policy.values()),
            TagSpecifications=aws.tag_spec(ctx, "vpc-endpoint", self.id),
        )["VpcEndpoint"]
        return self._outputs(endpoint)


class PrivateDns(Step):
    """Private DNS on an interface endpoint, which AWS allows only once the service provider accepted the
    endpoint. Databricks accepts on registration, so this step needs the registration: the one-run
    answer to the guides' "apply twice"."""

    kind = "ec2.vpc_endpoint_private_dns"
    produces = ("vpc_endpoint_id", "private_dns_enabled")

    def __init__(self, step_id: str, *, endpoint: str, registration: str):
        super().__init__(step_id, needs=(endpoint, registration))
        self.endpoint_id = Ref(endpoint, "vpc_endpoint_id")

    def _endpoint_id(self, ctx: Context) -> str | None:
        # In teardown the endpoint's step may be gone already.
        return ctx.out_if_known(self.endpoint_id)

    def find(self, ctx: Context) -> Outputs | None:
        endpoint_id = self._endpoint_id(ctx)
        if endpoint_id is None:
            return None
        try:
            endpoints = aws.ec2(ctx).describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"]
        except Exception as exc:
            # The endpoint recorded was deleted (by hand): its DNS setting went with it; `plan` says so, `up` recreates.
            if is_not_found(exc):
                return None
            raise
        enabled = bool(endpoints) and endpoints[0].get("PrivateDnsEnabled")
        return {"vpc_endpoint_id": endpoint_id, "private_dns_enabled": True} if enabled else None

    def create(self, ctx: Context) -> Outputs:
        endpoint_id = ctx.out(self.endpoint_id)
        # Accepted means AWS state `available`; the registration step waited for that already, and
        # polling once more here keeps this step correct on its own.
        ctx.wait(
            lambda: aws.ec2(ctx).describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0],
            status_of=lambda e: e["State"], target={"available"}, failure={"rejected", "failed", "deleted", "expired"},
            what=f"VPC endpoint {endpoint_id} acceptance",
        )
        aws.ec2(ctx).modify_vpc_endpoint(VpcEndpointId=endpoint_id, PrivateDnsEnabled=True)
        return {"vpc_endpoint_id": endpoint_id, "private_dns_enabled": True}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        endpoint_id = out["vpc_endpoint_id"]
        ctx.wait(
            lambda: aws.ec2(ctx).describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0],
            status_of=lambda e: "enabled" if e.get("PrivateDnsEnabled") and e["State"] == "available" else e["State"],
            target={"enabled"}, failure={"rejected", "failed", "deleted", "expired"}, what=f"private DNS of {endpoint_id}",
        )
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        # Nothing to undo on its own: the endpoint itself is deleted by its own step, right after.
        return None
