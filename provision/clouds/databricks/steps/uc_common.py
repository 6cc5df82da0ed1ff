"""What the Unity Catalog steps share: ownership marks, reads that tolerate absence, and the base of the objects
reached through a workspace's own API (see unity.py)."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.errors import is_already_exists, is_not_found
from provision.errors import OwnershipConflict
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Ref, Step

T = TypeVar("T")
# The path segment of GrantsAPI's securable_type (REST: /permissions/catalog/<name>, /permissions/schema/<c.s>).
CATALOG, SCHEMA = "catalog", "schema"


def ownership_comment(deployment: str) -> str:
    return f"{TAG_DEPLOYMENT}={deployment}"


def commented_by(comment: str | None, deployment: str) -> bool:
    return ownership_comment(deployment) in (comment or "").split()


def check_commented(what: str, comment: str | None, deployment: str) -> None:
    """An object marked ours only by its comment (credentials and locations have no properties): anyone else's is refused."""
    if not commented_by(comment, deployment):
        raise OwnershipConflict(
            f"{what} exists in the metastore but is not this deployment's (its comment lacks "
            f"{ownership_comment(deployment)!r}); delete or rename it"
        )


def owner_properties(deployment: str) -> dict[str, str]:
    return {TAG_DEPLOYMENT: deployment}


def read(fn: Callable[[], T]) -> T | None:
    """The object, or None if it does not exist."""
    try:
        return fn()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def value(enum: Any) -> str:
    return str(getattr(enum, "value", enum))


class WorkspaceObject(Step):
    """A Unity Catalog object reached through the workspace's API (`deployment_name` Ref set by the subclass)."""

    deployment_name: Ref

    def _workspace(self, ctx: Context, out: Outputs | None = None) -> Any | None:
        """The workspace client, through the assignment's outputs; in teardown (`out`: this step's recorded outputs)
        also through the deployment name the step recorded, as the assignment's may be unknown by then (its record
        FAILED in a later run) while the object is still there."""
        deployment = ctx.out_if_known(self.deployment_name)
        if deployment is None and out is not None:
            deployment = out.get("deployment_name")
        return None if deployment is None else dbx.workspace(ctx, deployment)

    def _create_or_adopt(self, ctx: Context, create: Callable[[], Outputs]) -> Outputs:
        """A create that meets an object of our name (a concurrent run, a lost response) re-reads it: `find`
        adopts it if it carries our mark and refuses it if not."""
        try:
            return create()
        except Exception as exc:
            if not is_already_exists(exc):
                raise
            found = self.find(ctx)
            if found is None:
                raise
            return found

    def _teardown_client(self, ctx: Context, what: str, out: Outputs) -> Any | None:
        ws = self._workspace(ctx, out)
        if ws is None:
            ctx.log.warning(f"{what} left in place: the workspace that reaches its metastore is not known any more")
        return ws
