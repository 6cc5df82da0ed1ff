"""Workspace permission assignments through the account API: a principal of the spec USER or ADMIN on the
workspace, and the deploying principal made workspace ADMIN (so no one has to log in by hand). Databricks serves
these only once a metastore is assigned to the workspace (identity federation), so both wait for that step, and their
`find` asks nothing until its output is known (the plan of a workspace without one); the short window right after
the assignment is a classified retry."""

from __future__ import annotations

from typing import Any

from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.steps.identity import (
    ADMIN,
    USER,
    _adopted,
    _assignment,
    _missing,
    _principal_id,
    _unreachable,
)
from provision.orchestrator.step import Context, Outputs, Ref, Step


def _permissions(assignment: Any) -> list[str]:
    return sorted(getattr(p, "value", None) or str(p) for p in assignment.permissions or ())


def _needs(*steps: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for s in steps if s))


def _served(ctx: Context, assignment: Ref | None) -> bool:
    """Not before the metastore assignment step (`assignment`) is done: till then (`plan` of a live deployment that
    just gained [unity_catalog]) the API only refuses, as transient, until the retries give up."""
    return assignment is None or ctx.out_if_known(assignment) is not None


def _satisfies(permissions: list[str], wanted: str) -> bool:
    """ADMIN includes USER; USER alone is USER."""
    return wanted in permissions if wanted == ADMIN else set(permissions) == {USER}


def _unassign(ctx: Context, workspace_id: int, principal_id: Any, what: str) -> None:
    try:
        dbx.account(ctx).workspace_assignment.delete(workspace_id=workspace_id, principal_id=_principal_id(principal_id))
    except Exception as exc:  # noqa: BLE001  (best effort: the workspace's deletion removes it anyway)
        # A transient failure is retried (the engine's delete call): swallowed, the assignment would outlive this step
        # and keep its principal "in use" for the principal's own teardown. The workspace may be gone (its assignments
        # with it); anything else must not block the rest of teardown.
        if ctx.retry.errors.classify(exc) is not None:
            raise
        if not _missing(exc):
            ctx.log.warning(f"could not remove {what}; it goes with the workspace", error=type(exc).__name__)


class PermissionAssignment(Step):
    """A principal's permission (USER or ADMIN) on the workspace; a different permission found converges in place."""

    kind = "databricks.permission_assignment"
    produces = ("workspace_id", "principal_id", "permissions")

    def __init__(self, step_id: str, *, principal: str, workspace: str, permission: str, after: tuple[str, ...] = (),
                 assignment: str | None = None):
        if permission not in (USER, ADMIN):
            raise ValueError(f"permission must be USER or ADMIN, got {permission!r}")
        super().__init__(step_id, needs=_needs(principal, workspace, *after, assignment))
        self.principal_id = Ref(principal, "principal_id")
        self.workspace_id = Ref(workspace, "workspace_id")
        self.assignment = Ref(assignment, "workspace_id") if assignment else None
        self.permission = permission

    def find(self, ctx: Context) -> Outputs | None:
        workspace_id, principal_id = ctx.out_if_known(self.workspace_id), ctx.out_if_known(self.principal_id)
        if workspace_id is None or principal_id is None or not _served(ctx, self.assignment):
            return None
        found = _assignment(ctx, workspace_id, principal_id)
        if found is None:
            return None
        return {"workspace_id": workspace_id, "principal_id": principal_id, "permissions": _permissions(found)}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return not _satisfies(list(found.get("permissions") or ()), self.permission)

    def create(self, ctx: Context) -> Outputs:
        return self._assign(ctx)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        return out if _satisfies(list(out.get("permissions") or ()), self.permission) else self._assign(ctx)

    def _assign(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.iam import WorkspacePermission

        workspace_id, principal_id = ctx.out(self.workspace_id), ctx.out(self.principal_id)
        # A PUT of the whole permission set: the same call creates and converges, and is safe to retry.
        ctx.call(lambda: dbx.account(ctx).workspace_assignment.update(
            workspace_id=workspace_id, principal_id=_principal_id(principal_id), permissions=[WorkspacePermission(self.permission)],
        ), f"{self.id} assign")
        return {"workspace_id": workspace_id, "principal_id": principal_id, "permissions": [self.permission]}

    def delete(self, ctx: Context, out: Outputs) -> None:
        _unassign(ctx, out["workspace_id"], out["principal_id"], "the permission assignment")


class DeployerAdmin(Step):
    """The deploying principal (the workspace's `current_user.me()`) made ADMIN of the workspace, so workspace-level
    steps and people need no manual login. Adopted when it was ADMIN before this step assigned anything."""

    kind = "databricks.deployer_admin"
    produces = ("workspace_id", "principal_id", "user_name", "adopted")

    def __init__(self, step_id: str, *, workspace: str, after: tuple[str, ...] = (), assignment: str | None = None):
        super().__init__(step_id, needs=_needs(workspace, *after, assignment))
        self.workspace_id, self.deployment_name = Ref(workspace, "workspace_id"), Ref(workspace, "deployment_name")
        self.assignment = Ref(assignment, "workspace_id") if assignment else None

    def _me(self, ctx: Context, deployment: str) -> Any:
        return dbx.workspace(ctx, deployment).current_user.me()

    def find(self, ctx: Context) -> Outputs | None:
        workspace_id, deployment = ctx.out_if_known(self.workspace_id), ctx.out_if_known(self.deployment_name)
        if workspace_id is None or deployment is None or not _served(ctx, self.assignment):
            return None
        try:
            me = self._me(ctx, deployment)
        except Exception as exc:
            if _unreachable(exc):
                return None
            raise
        found = _assignment(ctx, workspace_id, me.id)
        # Not ADMIN yet is not there yet: `create` assigns it.
        if found is None or ADMIN not in _permissions(found):
            return None
        return {"workspace_id": workspace_id, "principal_id": me.id, "user_name": me.user_name, "adopted": self.id not in ctx.claimed}

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.iam import WorkspacePermission

        workspace_id = ctx.out(self.workspace_id)
        me = ctx.call(lambda: self._me(ctx, ctx.out(self.deployment_name)), f"{self.id} current user")
        dbx.account(ctx).workspace_assignment.update(workspace_id=workspace_id, principal_id=_principal_id(me.id), permissions=[WorkspacePermission(ADMIN)])
        return {"workspace_id": workspace_id, "principal_id": me.id, "user_name": me.user_name, "adopted": False}

    def delete(self, ctx: Context, out: Outputs) -> None:
        if _adopted(self, ctx, out):
            ctx.log.info("leaving the deployer's admin assignment (it was admin before this deployment)", principal_id=out["principal_id"])
            return
        _unassign(ctx, out["workspace_id"], out["principal_id"], "the deployer's admin assignment")
