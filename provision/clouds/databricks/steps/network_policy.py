"""Serverless egress: an account network policy bound to the workspace (DRY_RUN first, then ENFORCED), and an
optional network connectivity configuration (NCC) with private endpoint rules.

- The network policy's id is chosen by the client (`<deployment>-egress`, shortened with a hash to Databricks'
  32 characters), so it is found by id. It carries no ownership mark, and its id is account-wide while a deployment
  name is unique only per region: one found before this step ever attempted a create (`ctx.claimed`, as keys.py
  does) is someone else's, and taking it over (rewriting its egress, deleting it on teardown) would be wrong, so it
  is an OwnershipConflict. Its restriction, destinations and enforcement converge in place
  (`update_network_policy_rpc`) when their digest differs from the spec's.
- The binding is the workspace's network option; teardown binds the workspace back to `default-policy`, after
  which the policy can be deleted (Databricks refuses to delete a policy a workspace uses).
- The NCC is found by name (at most 30 characters, shortened like the policy id) in the deployment's region. A
  workspace's NCC cannot be unset (Databricks' workspace update takes no empty NCC id), so the binding's teardown
  leaves it to go with the workspace, and the NCC's own teardown first waits until no workspace uses it.
- A private endpoint rule is found by its endpoint service among the NCC's active rules; its domain names
  converge with `update_private_endpoint_rule`. It waits until Databricks has created the endpoint (PENDING:
  the endpoint service's owner must still accept the connection; ESTABLISHED: accepted).
"""

from __future__ import annotations

import hashlib
from typing import Any

from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.errors import is_not_found
from provision.clouds.databricks.spec_serverless import (
    ENFORCED,
    NetworkPolicySpec,
    PrivateEndpointRuleSpec,
)
from provision.errors import OwnershipConflict
from provision.orchestrator.step import Context, Outputs, Ref, Step

DEFAULT_POLICY = "default-policy"
POLICY_ID_LIMIT, NCC_NAME_LIMIT = 32, 30  # ^[a-zA-Z0-9_.-]{1,32}$ and ^[0-9a-zA-Z-_]{3,30}$
RESTRICTED, FULL = "RESTRICTED_ACCESS", "FULL_ACCESS"


def fit(name: str, limit: int) -> str:
    """`name` if it fits, else its head and a short hash of the whole: deterministic and still unique."""
    if len(name) <= limit:
        return name
    return f"{name[: limit - 5]}-{hashlib.sha256(name.encode()).hexdigest()[:4]}"


def _value(enum: Any) -> str | None:
    return None if enum is None else getattr(enum, "value", None) or str(enum)


def egress_digest(restriction: str, enforcement: str, internet: list[str], storage: list[tuple[str, str]]) -> str:
    body = "|".join([restriction, enforcement, ",".join(sorted(internet)), ",".join(sorted(f"{b}@{r}" for b, r in storage))])
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _live(policy: Any) -> tuple[str, str, list[str], list[tuple[str, str]]]:
    """What a live policy allows, in egress_digest's terms."""
    access = policy.egress.network_access if policy.egress is not None else None
    if access is None:
        return FULL, ENFORCED, [], []
    enforcement = _value(access.policy_enforcement.enforcement_mode) if access.policy_enforcement is not None else None
    return (
        _value(access.restriction_mode) or FULL,
        enforcement or ENFORCED,  # Databricks: no policy_enforcement means every service enforced
        [d.destination for d in access.allowed_internet_destinations or () if d.destination],
        [(d.bucket_name, d.region or "") for d in access.allowed_storage_destinations or () if d.bucket_name],
    )


class NetworkPolicy(Step):
    kind = "databricks.network_policy"
    produces = ("network_policy_id", "enforcement", "digest", "adopted")

    def __init__(self, step_id: str, *, policy: NetworkPolicySpec):
        super().__init__(step_id)
        self.policy = policy

    def policy_id(self, ctx: Context) -> str:
        return fit(f"{ctx.deployment}-egress", POLICY_ID_LIMIT)

    def _wanted(self, ctx: Context) -> tuple[str, str, list[str], list[tuple[str, str]]]:
        p = self.policy
        if not p.restricted:
            return FULL, p.enforcement, [], []
        return RESTRICTED, p.enforcement, list(p.internet_destinations), [(b, ctx.spec.region) for b in p.storage_buckets]

    def _outputs(self, policy_id: str, live: tuple[str, str, list[str], list[tuple[str, str]]], *, adopted: bool = False) -> Outputs:
        return {"network_policy_id": policy_id, "enforcement": live[1], "digest": egress_digest(*live), "adopted": adopted}

    def _adopted(self, ctx: Context, out: Outputs) -> bool:
        # A record without the mark predates it: the same rule as find's.
        return bool(out.get("adopted", self.id not in ctx.claimed))

    def _refuse(self, policy_id: str) -> OwnershipConflict:
        return OwnershipConflict(
            f"network policy {policy_id!r} exists, and this deployment did not create it: its id is derived from the deployment "
            "name and account-wide (another deployment of that name, in another region, or someone else made it). Rename the "
            "deployment, or delete that policy if nothing uses it."
        )

    def _body(self, ctx: Context) -> Any:
        from databricks.sdk.service import settings as s

        restriction, enforcement, internet, storage = self._wanted(ctx)
        access = s.EgressNetworkPolicyNetworkAccessPolicy(
            restriction_mode=s.EgressNetworkPolicyNetworkAccessPolicyRestrictionMode(restriction),
            allowed_internet_destinations=[
                s.EgressNetworkPolicyNetworkAccessPolicyInternetDestination(
                    destination=d, internet_destination_type=s.EgressNetworkPolicyNetworkAccessPolicyInternetDestinationInternetDestinationType.DNS_NAME)
                for d in internet
            ] or None,
            allowed_storage_destinations=[
                s.EgressNetworkPolicyNetworkAccessPolicyStorageDestination(
                    bucket_name=b, region=r, storage_destination_type=s.EgressNetworkPolicyNetworkAccessPolicyStorageDestinationStorageDestinationType.AWS_S3)
                for b, r in storage
            ] or None,
            policy_enforcement=s.EgressNetworkPolicyNetworkAccessPolicyPolicyEnforcement(
                enforcement_mode=s.EgressNetworkPolicyNetworkAccessPolicyPolicyEnforcementEnforcementMode(enforcement)),
        )
        return s.AccountNetworkPolicy(network_policy_id=self.policy_id(ctx), egress=s.NetworkPolicyEgress(network_access=access))

    def find(self, ctx: Context) -> Outputs | None:
        try:
            policy = dbx.account(ctx).network_policies.get_network_policy_rpc(network_policy_id=self.policy_id(ctx))
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        # Ours only if this step has attempted a create (a lost response included); else someone else's.
        if self.id not in ctx.claimed:
            raise self._refuse(self.policy_id(ctx))
        return self._outputs(self.policy_id(ctx), _live(policy))

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found.get("digest") != egress_digest(*self._wanted(ctx))

    def create(self, ctx: Context) -> Outputs:
        created = dbx.account(ctx).network_policies.create_network_policy_rpc(network_policy=self._body(ctx))
        return self._outputs(created.network_policy_id or self.policy_id(ctx), _live(created))

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        if self._adopted(ctx, out):
            raise self._refuse(out["network_policy_id"])
        wanted = self._wanted(ctx)
        if out.get("digest") == egress_digest(*wanted):
            return out
        ctx.log.info("converging the network policy in place", network_policy_id=out["network_policy_id"], enforcement=wanted[1])
        # A PUT of the whole policy: safe to retry.
        updated = ctx.call(lambda: dbx.account(ctx).network_policies.update_network_policy_rpc(
            network_policy_id=out["network_policy_id"], network_policy=self._body(ctx)), f"{self.id} update")
        return self._outputs(out["network_policy_id"], _live(updated))

    def delete(self, ctx: Context, out: Outputs) -> None:
        if self._adopted(ctx, out):
            ctx.log.info("leaving the network policy in place (this step did not create it)", network_policy_id=out["network_policy_id"])
            return
        try:
            dbx.account(ctx).network_policies.delete_network_policy_rpc(network_policy_id=out["network_policy_id"])
        except Exception as exc:
            if not is_not_found(exc):
                raise

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        if self._adopted(ctx, out):
            return
        api = dbx.account(ctx).network_policies
        ctx.wait_gone(lambda: api.get_network_policy_rpc(network_policy_id=out["network_policy_id"]), what=f"network policy {out['network_policy_id']}")


class NetworkPolicyBinding(Step):
    kind = "databricks.network_policy_binding"
    produces = ("workspace_id", "network_policy_id")

    def __init__(self, step_id: str, *, policy: str, workspace: str):
        super().__init__(step_id, needs=(policy, workspace))
        self.network_policy_id = Ref(policy, "network_policy_id")
        self.workspace_id = Ref(workspace, "workspace_id")

    def _bind(self, ctx: Context, workspace_id: int, policy_id: str) -> Any:
        from databricks.sdk.service.settings import WorkspaceNetworkOption

        return dbx.account(ctx).workspace_network_configuration.update_workspace_network_option_rpc(
            workspace_id=workspace_id, workspace_network_option=WorkspaceNetworkOption(network_policy_id=policy_id, workspace_id=workspace_id),
        )

    def find(self, ctx: Context) -> Outputs | None:
        workspace_id, wanted = ctx.out_if_known(self.workspace_id), ctx.out_if_known(self.network_policy_id)
        if workspace_id is None or wanted is None:
            return None
        try:
            option = dbx.account(ctx).workspace_network_configuration.get_workspace_network_option_rpc(workspace_id=workspace_id)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        # Bound elsewhere (default-policy, to begin with) is not bound yet: `create` binds it.
        return {"workspace_id": workspace_id, "network_policy_id": wanted} if option.network_policy_id == wanted else None

    def create(self, ctx: Context) -> Outputs:
        workspace_id, policy_id = ctx.out(self.workspace_id), ctx.out(self.network_policy_id)
        self._bind(ctx, workspace_id, policy_id)
        return {"workspace_id": workspace_id, "network_policy_id": policy_id}

    def delete(self, ctx: Context, out: Outputs) -> None:
        # Back to the account's default, so the policy can go; a workspace already gone needs nothing.
        try:
            self._bind(ctx, out["workspace_id"], DEFAULT_POLICY)
        except Exception as exc:
            if not is_not_found(exc):
                raise


class NetworkConnectivityConfig(Step):
    kind = "databricks.network_connectivity_config"
    produces = ("network_connectivity_config_id", "name")
    typical_seconds = 2.0

    def __init__(self, step_id: str, *, name: str):
        super().__init__(step_id)
        self.name = fit(name, NCC_NAME_LIMIT)

    def _api(self, ctx: Context) -> Any:
        return dbx.account(ctx).network_connectivity

    def find(self, ctx: Context) -> Outputs | None:
        matches = [n for n in self._api(ctx).list_network_connectivity_configurations() if n.name == self.name]
        if len(matches) > 1:
            raise OwnershipConflict(f"{len(matches)} network connectivity configurations are named {self.name!r}; expected one. Delete the extras.")
        if not matches:
            return None
        ncc = matches[0]
        if ncc.region and ncc.region != ctx.spec.region:
            raise OwnershipConflict(
                f"network connectivity configuration {self.name!r} exists in {ncc.region}, not this deployment's region {ctx.spec.region}; "
                "rename the deployment or delete that configuration"
            )
        return {"network_connectivity_config_id": ncc.network_connectivity_config_id, "name": ncc.name}

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.settings import (
            CreateNetworkConnectivityConfiguration,
        )

        ncc = self._api(ctx).create_network_connectivity_configuration(
            network_connectivity_config=CreateNetworkConnectivityConfiguration(name=self.name, region=ctx.spec.region))
        return {"network_connectivity_config_id": ncc.network_connectivity_config_id, "name": ncc.name or self.name}

    def _users(self, ctx: Context, ncc_id: str) -> list[int]:
        return [ws.workspace_id for ws in dbx.account(ctx).workspaces.list() if ws.network_connectivity_config_id == ncc_id]

    def delete(self, ctx: Context, out: Outputs) -> None:
        ncc_id = out["network_connectivity_config_id"]
        # A workspace keeps its NCC until it is deleted (it cannot be unset): wait for the workspace's teardown.
        ctx.wait(lambda: self._users(ctx, ncc_id), status_of=lambda users: "in use" if users else "free", target={"free"},
                 what=f"workspaces to release network connectivity configuration {ncc_id}", detail_of=lambda users: f"used by {users}")
        try:
            self._api(ctx).delete_network_connectivity_configuration(network_connectivity_config_id=ncc_id)
        except Exception as exc:
            if not is_not_found(exc):
                raise

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ncc_id = out["network_connectivity_config_id"]
        ctx.wait_gone(lambda: self._api(ctx).get_network_connectivity_configuration(network_connectivity_config_id=ncc_id),
                      what=f"network connectivity configuration {ncc_id}")


_RULE_READY, _RULE_FAILED = {"PENDING", "ESTABLISHED", "DISCONNECTED"}, {"CREATE_FAILED", "REJECTED", "EXPIRED"}


class PrivateEndpointRule(Step):
    kind = "databricks.private_endpoint_rule"
    produces = ("rule_id", "connection_state", "endpoint_service", "domain_names")

    def __init__(self, step_id: str, *, ncc: str, rule: PrivateEndpointRuleSpec):
        super().__init__(step_id, needs=(ncc,))
        self.ncc_id = Ref(ncc, "network_connectivity_config_id")
        self.rule = rule

    def _api(self, ctx: Context) -> Any:
        return dbx.account(ctx).network_connectivity

    @staticmethod
    def _outputs(rule: Any) -> Outputs:
        return {
            "rule_id": rule.rule_id, "connection_state": _value(rule.connection_state) or "CREATING",
            "endpoint_service": rule.endpoint_service, "domain_names": sorted(rule.domain_names or ()),
        }

    def find(self, ctx: Context) -> Outputs | None:
        ncc_id = ctx.out_if_known(self.ncc_id)
        if ncc_id is None:
            return None
        try:
            rules = list(self._api(ctx).list_private_endpoint_rules(network_connectivity_config_id=ncc_id))
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        matches = [r for r in rules if r.endpoint_service == self.rule.endpoint_service and not r.deactivated]
        if len(matches) > 1:
            raise OwnershipConflict(f"{len(matches)} private endpoint rules of NCC {ncc_id} name {self.rule.endpoint_service}; expected one. Delete the extras.")
        return self._outputs(matches[0]) if matches else None

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return sorted(found.get("domain_names") or ()) != sorted(self.rule.domain_names)

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.settings import CreatePrivateEndpointRule

        rule = self._api(ctx).create_private_endpoint_rule(
            network_connectivity_config_id=ctx.out(self.ncc_id),
            private_endpoint_rule=CreatePrivateEndpointRule(endpoint_service=self.rule.endpoint_service, domain_names=list(self.rule.domain_names) or None),
        )
        return self._outputs(rule)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        from databricks.sdk.service.settings import UpdatePrivateEndpointRule

        ncc_id, api = ctx.out(self.ncc_id), self._api(ctx)
        if self.needs_converge(ctx, out):
            ctx.log.info("converging the private endpoint rule's domain names", rule_id=out["rule_id"])
            ctx.call(lambda: api.update_private_endpoint_rule(
                network_connectivity_config_id=ncc_id, private_endpoint_rule_id=out["rule_id"],
                private_endpoint_rule=UpdatePrivateEndpointRule(domain_names=list(self.rule.domain_names)), update_mask="domain_names",
            ), f"{self.id} update")
        rule = ctx.wait(lambda: api.get_private_endpoint_rule(network_connectivity_config_id=ncc_id, private_endpoint_rule_id=out["rule_id"]),
                        status_of=lambda r: _value(r.connection_state) or "CREATING", target=_RULE_READY, failure=_RULE_FAILED,
                        detail_of=lambda r: r.error_message or "", what=f"private endpoint rule {out['rule_id']}")
        state = _value(rule.connection_state)
        if state != "ESTABLISHED":
            ctx.log.warning("private endpoint not connected yet: the endpoint service's owner must accept the connection",
                            endpoint_service=self.rule.endpoint_service, connection_state=state)
        return self._outputs(rule)

    def delete(self, ctx: Context, out: Outputs) -> None:
        ncc_id = ctx.out_if_known(self.ncc_id)
        if ncc_id is None:
            return
        try:
            self._api(ctx).delete_private_endpoint_rule(network_connectivity_config_id=ncc_id, private_endpoint_rule_id=out["rule_id"])
        except Exception as exc:
            if not is_not_found(exc):
                raise

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ncc_id = ctx.out_if_known(self.ncc_id)
        if ncc_id is None:
            return
        # Databricks may keep a deleted rule listed as deactivated for a while: that is gone for us.
        ctx.wait_gone(lambda: self._api(ctx).get_private_endpoint_rule(network_connectivity_config_id=ncc_id, private_endpoint_rule_id=out["rule_id"]),
                      status_of=lambda r: "deactivated" if r.deactivated else "present", gone_states={"deactivated"},
                      what=f"private endpoint rule {out['rule_id']}")


class NccBinding(Step):
    """The workspace's NCC (account `workspaces.update`). Databricks cannot unset it: teardown leaves it to go with
    the workspace (NetworkConnectivityConfig's teardown waits for that)."""

    kind = "databricks.ncc_binding"
    produces = ("workspace_id", "network_connectivity_config_id")

    def __init__(self, step_id: str, *, ncc: str, workspace: str, after: tuple[str, ...] = ()):
        super().__init__(step_id, needs=(ncc, workspace, *after))
        self.ncc_id = Ref(ncc, "network_connectivity_config_id")
        self.workspace_id = Ref(workspace, "workspace_id")

    def find(self, ctx: Context) -> Outputs | None:
        workspace_id, wanted = ctx.out_if_known(self.workspace_id), ctx.out_if_known(self.ncc_id)
        if workspace_id is None or wanted is None:
            return None
        try:
            ws = dbx.account(ctx).workspaces.get(workspace_id=workspace_id)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return {"workspace_id": workspace_id, "network_connectivity_config_id": wanted} if ws.network_connectivity_config_id == wanted else None

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.provisioning import Workspace

        workspace_id, ncc_id = ctx.out(self.workspace_id), ctx.out(self.ncc_id)
        dbx.account(ctx).workspaces.update(workspace_id=workspace_id, customer_facing_workspace=Workspace(network_connectivity_config_id=ncc_id),
                                           update_mask="network_connectivity_config_id")
        return {"workspace_id": workspace_id, "network_connectivity_config_id": ncc_id}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        # An update may put the workspace through a short redeployment: the steps after this one need it RUNNING.
        ctx.wait(lambda: dbx.account(ctx).workspaces.get(workspace_id=out["workspace_id"]),
                 status_of=lambda w: _value(w.workspace_status) or "UNKNOWN", target={"RUNNING"}, failure={"FAILED", "BANNED", "CANCELLING"},
                 detail_of=lambda w: w.workspace_status_message or "", what=f"workspace {out['workspace_id']} after binding its NCC")
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        ctx.log.info("leaving the workspace's NCC: Databricks cannot unset it; it goes with the workspace",
                     network_connectivity_config_id=out.get("network_connectivity_config_id"))
