"""Back-end PrivateLink objects of the Account API: VPC endpoint registrations and private access settings."""

from __future__ import annotations

from typing import Any

from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.steps.account_base import _AccountObject, _current
from provision.orchestrator.step import Context, Outputs, Ref


class VpcEndpointRegistration(_AccountObject):
    """Registers an AWS interface endpoint with Databricks, which accepts it; waits until Databricks
    reports it available (Databricks mirrors the AWS endpoint's state).

    A registration cannot be changed. When the AWS endpoint it names was deleted (by hand) and the endpoint step
    made a new one, our old registration is retired (deleted once no network uses it) and a new one registered
    under the same name: Databricks does not require names to be unique."""

    kind = "databricks.vpc_endpoint"
    api, name_field, id_field, what = "vpc_endpoints", "vpc_endpoint_name", "vpc_endpoint_id", "VPC endpoint registration"
    produces = ("vpc_endpoint_id", "name", "aws_vpc_endpoint_id", "state")

    def __init__(self, step_id: str, *, endpoint: str, purpose: str):
        super().__init__(step_id, needs=(endpoint,))
        self.endpoint_id = Ref(endpoint, "vpc_endpoint_id")
        self.suffix = f"vpce-{purpose}"

    def find(self, ctx: Context) -> Outputs | None:
        found = _current(self, ctx, lambda obj: obj.aws_vpc_endpoint_id, ctx.out_if_known(self.endpoint_id), "aws_vpc_endpoint_id")
        return self._outputs(found) if found is not None else None

    def _outputs(self, obj: Any) -> Outputs:
        return {**super()._outputs(obj), "aws_vpc_endpoint_id": obj.aws_vpc_endpoint_id, "state": obj.state}

    def _create(self, ctx: Context) -> Any:
        return dbx.account(ctx).vpc_endpoints.create(
            vpc_endpoint_name=self.name(ctx), aws_vpc_endpoint_id=ctx.out(self.endpoint_id), region=ctx.spec.region
        )

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        registered = ctx.wait(
            lambda: dbx.account(ctx).vpc_endpoints.get(vpc_endpoint_id=out["vpc_endpoint_id"]),
            # Databricks mirrors the AWS endpoint's state; compare without case.
            status_of=lambda e: (e.state or "unknown").lower(), target={"available"}, failure={"rejected", "failed", "deleted", "expired"},
            what=f"acceptance of VPC endpoint {out['aws_vpc_endpoint_id']}",
        )
        return self._outputs(registered)


class PrivateAccessSettings(_AccountObject):
    kind = "databricks.private_access_settings"
    api, name_field, id_field, suffix, what = (
        "private_access", "private_access_settings_name", "private_access_settings_id", "pas", "private access settings",
    )
    produces = ("private_access_settings_id", "name", "allowed_vpc_endpoint_ids")

    def __init__(self, step_id: str, *, rest_registration: str, public_access_enabled: bool, private_access_level: str):
        """private_access_level ACCOUNT or ENDPOINT (only the REST API registration `rest_registration`)."""
        super().__init__(step_id, needs=(rest_registration,))
        self.rest_endpoint_id = Ref(rest_registration, "vpc_endpoint_id")
        self.public_access_enabled, self.private_access_level = public_access_enabled, private_access_level

    def references(self, ctx: Context, obj: Any) -> list[tuple[str, Any, Any]]:
        return [("region", obj.region, ctx.spec.region)]

    def _outputs(self, obj: Any) -> Outputs:
        return {**super()._outputs(obj), "allowed_vpc_endpoint_ids": list(getattr(obj, "allowed_vpc_endpoint_ids", None) or [])}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        """At ENDPOINT level: the settings still allow a REST API registration that was replaced (a run that stopped
        before converging them would otherwise leave them allowing only the retired one)."""
        wanted = ctx.out_if_known(self.rest_endpoint_id)
        return self.private_access_level == "ENDPOINT" and wanted is not None and found.get("allowed_vpc_endpoint_ids") != [wanted]

    def _wanted(self, ctx: Context) -> dict[str, Any]:
        from databricks.sdk.service.provisioning import PrivateAccessLevel

        wanted: dict[str, Any] = {
            "private_access_settings_name": self.name(ctx), "region": ctx.spec.region,
            "public_access_enabled": self.public_access_enabled, "private_access_level": PrivateAccessLevel(self.private_access_level),
        }
        if self.private_access_level == "ENDPOINT":
            wanted["allowed_vpc_endpoint_ids"] = [ctx.out(self.rest_endpoint_id)]
        return wanted

    def _create(self, ctx: Context) -> Any:
        return dbx.account(ctx).private_access.create(**self._wanted(ctx))

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        from databricks.sdk.service.provisioning import (
            PrivateAccessSettings as Settings,
        )

        current = ctx.call(lambda: dbx.account(ctx).private_access.get(private_access_settings_id=out["private_access_settings_id"]), f"{self.id} read")
        wanted = self._wanted(ctx)
        level = getattr(current.private_access_level, "value", current.private_access_level)
        # At ENDPOINT level the settings name the REST API registration, which is replaced when its endpoint is.
        endpoints_differ = "allowed_vpc_endpoint_ids" in wanted and list(current.allowed_vpc_endpoint_ids or []) != wanted["allowed_vpc_endpoint_ids"]
        if current.public_access_enabled != wanted["public_access_enabled"] or level != wanted["private_access_level"].value or endpoints_differ:
            replacement = Settings(**{k: v for k, v in wanted.items()})
            ctx.call(
                lambda: dbx.account(ctx).private_access.replace(
                    private_access_settings_id=out["private_access_settings_id"], customer_facing_private_access_settings=replacement
                ),
                f"{self.id} update",
            )
        return out
