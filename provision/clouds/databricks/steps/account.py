"""Databricks Account API objects: credentials, storage configuration, network, workspace.

Each has a deterministic name (`<deployment>-<kind>`; the workspace has its own, from the spec) and is
adopted when an object of that name already exists, so a create whose response was lost is not repeated.
"""

from __future__ import annotations

from typing import Any

from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.clients import workspace_url
from provision.clouds.databricks.steps.account_base import (
    _AccountObject,
    _by_name,
    _check_references,
    _current,
)
from provision.clouds.databricks.steps.account_privatelink import (
    PrivateAccessSettings,
    VpcEndpointRegistration,
)
from provision.errors import ResourceFailed
from provision.orchestrator.step import Context, Outputs, Ref, Step

__all__ = ["Credentials", "Network", "PrivateAccessSettings", "StorageConfiguration", "VpcEndpointRegistration", "Workspace"]


class Credentials(_AccountObject):
    typical_seconds = 10.0  # IAM propagation
    kind = "databricks.credentials"
    api, name_field, id_field, suffix, what = "credentials", "credentials_name", "credentials_id", "credentials", "credential"
    produces = ("credentials_id", "name")

    def __init__(self, step_id: str, *, role: str, suffix: str | None = None):
        super().__init__(step_id, needs=(role,))
        self.role_arn = Ref(role, "role_arn")
        self.suffix = suffix or self.suffix

    def references(self, ctx: Context, obj: Any) -> list[tuple[str, Any, Any]]:
        role = getattr(getattr(obj.aws_credentials, "sts_role", None), "role_arn", None) if obj.aws_credentials else None
        return [("role_arn", role, ctx.out_if_known(self.role_arn))]

    def _create(self, ctx: Context) -> Any:
        from databricks.sdk.service.provisioning import (
            CreateCredentialAwsCredentials,
            CreateCredentialStsRole,
        )

        # Right after the role is created, Databricks answers MALFORMED_REQUEST "Failed credentials
        # validation checks": the retry policy classifies that as IAM propagation and backs off.
        role = CreateCredentialStsRole(role_arn=ctx.out(self.role_arn))
        return dbx.account(ctx).credentials.create(
            credentials_name=self.name(ctx), aws_credentials=CreateCredentialAwsCredentials(sts_role=role)
        )


class StorageConfiguration(_AccountObject):
    kind = "databricks.storage_configuration"
    api, name_field, id_field, suffix, what = (
        "storage", "storage_configuration_name", "storage_configuration_id", "storage", "storage configuration",
    )
    produces = ("storage_configuration_id", "name")

    def __init__(self, step_id: str, *, bucket: str, suffix: str | None = None):
        super().__init__(step_id, needs=(bucket,))
        self.bucket = Ref(bucket, "bucket")
        self.suffix = suffix or self.suffix

    def references(self, ctx: Context, obj: Any) -> list[tuple[str, Any, Any]]:
        bucket = obj.root_bucket_info.bucket_name if obj.root_bucket_info else None
        return [("root bucket", bucket, ctx.out_if_known(self.bucket))]

    def _create(self, ctx: Context) -> Any:
        from databricks.sdk.service.provisioning import RootBucketInfo

        return dbx.account(ctx).storage.create(
            storage_configuration_name=self.name(ctx), root_bucket_info=RootBucketInfo(bucket_name=ctx.out(self.bucket))
        )


class Network(_AccountObject):
    kind = "databricks.network"
    api, name_field, id_field, suffix, what = "networks", "network_name", "network_id", "network", "network"
    produces = ("network_id", "name")

    def __init__(
        self, step_id: str, *, vpc: str, subnets: list[str], security_group: str,
        vpc_endpoints: tuple[str, str] | None = None, after: tuple[str, ...] = (), suffix: str | None = None,
    ):
        """vpc_endpoints: (REST API registration step, relay registration step) for back-end PrivateLink.
        `after`: steps that must be complete first although the network does not reference them (what
        Databricks validates with it, such as the subnets' network ACL)."""
        super().__init__(step_id, needs=(vpc, *subnets, security_group, *(vpc_endpoints or ()), *after))
        self.vpc_id, self.subnet_ids, self.group_id = Ref(vpc, "vpc_id"), [Ref(s, "subnet_id") for s in subnets], Ref(security_group, "group_id")
        self.endpoint_ids = tuple(Ref(r, "vpc_endpoint_id") for r in vpc_endpoints) if vpc_endpoints else None
        self.suffix = suffix or self.suffix

    def references(self, ctx: Context, obj: Any) -> list[tuple[str, Any, Any]]:
        return [("vpc_id", obj.vpc_id, ctx.out_if_known(self.vpc_id))]

    def find(self, ctx: Context) -> Outputs | None:
        """A network cannot be changed: one whose PrivateLink registrations were replaced is retired (deleted once
        the workspace uses its successor) and a new one created under the same name."""
        if not self.endpoint_ids:
            return super().find(ctx)
        wanted = tuple(ctx.out_if_known(ref) for ref in self.endpoint_ids)
        found = _current(self, ctx, _network_endpoints, None if None in wanted else wanted, "vpc_endpoints")
        if found is None:
            return None
        _check_references(self.what, self.name(ctx), self.references(ctx, found))
        return self._outputs(found)

    def _create(self, ctx: Context) -> Any:
        from databricks.sdk.service.provisioning import NetworkVpcEndpoints

        endpoints = None
        if self.endpoint_ids:
            rest, relay = self.endpoint_ids
            endpoints = NetworkVpcEndpoints(rest_api=[ctx.out(rest)], dataplane_relay=[ctx.out(relay)])
        return dbx.account(ctx).networks.create(
            network_name=self.name(ctx),
            vpc_id=ctx.out(self.vpc_id),
            subnet_ids=[ctx.out(s) for s in self.subnet_ids],
            security_group_ids=[ctx.out(self.group_id)],
            vpc_endpoints=endpoints,
        )


def _network_endpoints(network: Any) -> tuple[Any, ...]:
    """A network's (REST API, relay) registration ids, as the step's `endpoint_ids` name them."""
    endpoints = network.vpc_endpoints
    rest, relay = (getattr(endpoints, f, None) or [] for f in ("rest_api", "dataplane_relay")) if endpoints else ([], [])
    return (rest[0] if rest else None, relay[0] if relay else None)


def _status(value: Any) -> str:
    return getattr(value, "value", None) or str(value or "UNKNOWN")


class Workspace(Step):
    typical_seconds = 360.0  # PROVISIONING -> RUNNING
    kind = "databricks.workspace"
    produces = ("workspace_id", "private_access_settings_id", "workspace_name", "deployment_name", "workspace_url", "workspace_status", "network_id")
    FAILURE = {"FAILED", "BANNED", "CANCELLING"}

    def __init__(
        self, step_id: str, *, workspace_name: str, pricing_tier: str, credentials: str | None = None, storage: str | None = None,
        network: str | None = None, private_access: str | None = None, managed_services_key: str | None = None,
        storage_key: str | None = None, compute_mode: str | None = None, after: tuple[str, ...] = (),
    ):
        """managed_services_key / storage_key: Databricks key configuration steps (customer-managed keys,
        set on create only: Databricks encrypts with them from the workspace's first write).
        compute_mode SERVERLESS: a workspace with serverless compute only, which names no credentials, storage
        configuration or network (Databricks runs its compute and keeps its default storage); otherwise all three.
        `after`: steps that must outlive the workspace although it does not reference them (a network connectivity
        configuration, which cannot be unbound from it)."""
        if compute_mode == "SERVERLESS":
            if credentials or storage or network or private_access:
                raise ValueError("a serverless workspace takes no credentials, storage, network or private access settings")
        elif not (credentials and storage and network):
            raise ValueError("a classic workspace needs credentials, storage and network steps")
        keys = tuple(dict.fromkeys(k for k in (managed_services_key, storage_key) if k))
        own = tuple(s for s in (credentials, storage, network, private_access) if s)
        super().__init__(step_id, needs=(*own, *keys, *after))
        self.workspace_name, self.pricing_tier, self.compute_mode = workspace_name, pricing_tier, compute_mode
        self.credentials_id = Ref(credentials, "credentials_id") if credentials else None
        self.storage_id = Ref(storage, "storage_configuration_id") if storage else None
        self.network_id = Ref(network, "network_id") if network else None
        self.private_access_id = Ref(private_access, "private_access_settings_id") if private_access else None
        self.managed_services_key_id = Ref(managed_services_key, "customer_managed_key_id") if managed_services_key else None
        self.storage_key_id = Ref(storage_key, "customer_managed_key_id") if storage_key else None

    def _known(self, ctx: Context, ref: Ref | None) -> Any:
        return ctx.out_if_known(ref) if ref is not None else None

    def _given(self, ctx: Context, ref: Ref | None) -> Any:
        return ctx.out(ref) if ref is not None else None

    def find(self, ctx: Context) -> Outputs | None:
        name = ctx.name_of(self.id, self.workspace_name)
        found = _by_name(list(dbx.account(ctx).workspaces.list()), "workspace_name", name, "workspace")
        if found is None:
            return None
        _check_references("workspace", name, [
            ("credentials_id", found.credentials_id, self._known(ctx, self.credentials_id)),
            ("storage_configuration_id", found.storage_configuration_id, self._known(ctx, self.storage_id)),
            # A network our network step replaced is still ours: wait_ready moves the workspace to its successor.
            ("network_id", found.network_id if found.network_id not in self._retired_networks(ctx) else self._known(ctx, self.network_id),
             self._known(ctx, self.network_id)),
            *([("private_access_settings_id", found.private_access_settings_id, ctx.out_if_known(self.private_access_id))] if self.private_access_id else []),
            *self._key_references(ctx, found),
            # A classic workspace of our name is not our serverless one, nor the other way round.
            ("compute_mode", _status(found.compute_mode) if found.compute_mode else None, self.compute_mode),
        ])
        return self._outputs(found)

    def _retired_networks(self, ctx: Context) -> set[str]:
        return {out["network_id"] for out in ctx.retired(self.network_id.step)} if self.network_id is not None else set()

    def _key_references(self, ctx: Context, found: Any) -> list[tuple[str, Any, Any]]:
        """A workspace of our name encrypted with other keys (or none) is not this deployment's."""
        return [
            (name, getattr(found, name), ctx.out_if_known(ref))
            for name, ref in (
                ("managed_services_customer_managed_key_id", self.managed_services_key_id),
                ("storage_customer_managed_key_id", self.storage_key_id),
            )
            if ref is not None
        ]

    @staticmethod
    def _outputs(ws: Any) -> Outputs:
        return {
            "workspace_id": ws.workspace_id,
            "private_access_settings_id": ws.private_access_settings_id,
            "workspace_name": ws.workspace_name,
            "deployment_name": ws.deployment_name,
            "workspace_url": workspace_url(ws.deployment_name) if ws.deployment_name else None,
            "workspace_status": _status(ws.workspace_status),
            "network_id": ws.network_id,
        }

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        """On a network our network step replaced: a run that stopped before moving the workspace moves it now."""
        wanted = self._known(ctx, self.network_id)
        return wanted is not None and found.get("network_id") not in (None, wanted)

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.provisioning import (
            CustomerFacingComputeMode,
            PricingTier,
        )

        waiter = dbx.account(ctx).workspaces.create(
            workspace_name=self.workspace_name,
            aws_region=ctx.spec.region,
            credentials_id=self._given(ctx, self.credentials_id),
            storage_configuration_id=self._given(ctx, self.storage_id),
            network_id=self._given(ctx, self.network_id),
            compute_mode=CustomerFacingComputeMode(self.compute_mode) if self.compute_mode else None,
            pricing_tier=PricingTier(self.pricing_tier),
            private_access_settings_id=ctx.out(self.private_access_id) if self.private_access_id else None,
            managed_services_customer_managed_key_id=ctx.out(self.managed_services_key_id) if self.managed_services_key_id else None,
            storage_customer_managed_key_id=ctx.out(self.storage_key_id) if self.storage_key_id else None,
        )
        return self._outputs(waiter.response)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        workspace_id = out["workspace_id"]
        if out.get("workspace_status") == "FAILED":
            # Adopting a workspace that failed in an earlier run: Databricks retries the deployment when the
            # workspace is updated, so `resume` after fixing the cause needs no manual step.
            from databricks.sdk.service.provisioning import Workspace as WorkspaceConfig

            config = WorkspaceConfig(
                credentials_id=self._given(ctx, self.credentials_id),
                storage_configuration_id=self._given(ctx, self.storage_id),
                network_id=self._given(ctx, self.network_id),
                private_access_settings_id=ctx.out(self.private_access_id) if self.private_access_id else None,
            )
            fields = [f for f, ref in (("credentials_id", self.credentials_id), ("storage_configuration_id", self.storage_id),
                                       ("network_id", self.network_id), ("private_access_settings_id", self.private_access_id)) if ref is not None]
            ctx.log.warning("workspace failed in an earlier run; asking Databricks to deploy it again")
            ctx.call(
                lambda: dbx.account(ctx).workspaces.update(workspace_id, config, update_mask=",".join(fields) or "workspace_name"),
                f"{self.id} retry deployment",
            )

        elif self.network_id is not None:
            self._repoint_network(ctx, workspace_id)

        try:
            ws = ctx.wait(
                lambda: dbx.account(ctx).workspaces.get(workspace_id=workspace_id), status_of=lambda w: _status(w.workspace_status), target={"RUNNING"}, failure=self.FAILURE,
                detail_of=lambda w: w.workspace_status_message or "", what=f"workspace {workspace_id}",
                timeout_seconds=ctx.spec.timeouts.workspace_seconds,
            )
        except ResourceFailed as failed:
            # Keep the failed workspace for inspection; explain with the network's own diagnosis.
            raise ResourceFailed(f"workspace {workspace_id}", failed.status, self._diagnosis(ctx, failed.detail)) from None
        return self._outputs(ws)

    def _repoint_network(self, ctx: Context, workspace_id: int) -> None:
        """A workspace on a network our network step replaced (its PrivateLink endpoint was recreated) is moved to the
        new one: Databricks updates a running workspace's network in place."""
        from databricks.sdk.service.provisioning import Workspace as WorkspaceConfig

        wanted = ctx.out(self.network_id)
        current = ctx.call(lambda: dbx.account(ctx).workspaces.get(workspace_id=workspace_id), f"{self.id} read")
        if current.network_id == wanted or current.network_id is None:
            return
        ctx.log.warning("workspace uses a replaced network; moving it to the new one", old=current.network_id, new=wanted)
        ctx.call(
            lambda: dbx.account(ctx).workspaces.update(workspace_id, WorkspaceConfig(network_id=wanted), update_mask="network_id"),
            f"{self.id} network",
        )
        # The update is asynchronous: the old network is deleted (retired) only once the workspace names the new one.
        ctx.wait(
            lambda: dbx.account(ctx).workspaces.get(workspace_id=workspace_id),
            status_of=lambda w: "moved" if w.network_id == wanted else _status(w.workspace_status),
            target={"moved"}, failure=self.FAILURE, detail_of=lambda w: w.workspace_status_message or "",
            what=f"workspace {workspace_id} network update", timeout_seconds=ctx.spec.timeouts.workspace_seconds,
        )

    def _diagnosis(self, ctx: Context, status_message: str) -> str:
        lines = [status_message or "no status message"]
        if self.network_id is None:
            return lines[0]
        try:
            network = dbx.account(ctx).networks.get(network_id=ctx.out(self.network_id))
        except Exception as exc:  # the diagnosis must not hide the failure itself
            return f"{lines[0]} (network unreadable: {exc})"
        for error in network.error_messages or []:
            lines.append(f"network {_status(error.error_type)}: {error.error_message}")
        if network.vpc_status:
            lines.append(f"network vpc_status: {_status(network.vpc_status)}")
        return "; ".join(lines)

    def delete(self, ctx: Context, out: Outputs) -> None:
        dbx.account(ctx).workspaces.delete(workspace_id=out["workspace_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: dbx.account(ctx).workspaces.get(workspace_id=out["workspace_id"]), what=f"workspace {out['workspace_id']}")
