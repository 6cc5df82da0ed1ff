"""Unity Catalog at the account level: the region's metastore and its assignment to the workspace (see unity.py)."""

from __future__ import annotations

from typing import Any

from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.errors import is_already_exists, is_not_found, no_metastore
from provision.clouds.databricks.steps.uc_common import read
from provision.errors import OwnershipConflict, ResourceFailed
from provision.orchestrator.step import Context, Outputs, Ref, Step


class Metastore(Step):
    """The account's metastore in the deployment's region (Databricks allows one per region): adopted if it
    exists, else created without a storage root (each catalog brings its own managed location)."""

    kind = "databricks.metastore"
    produces = ("metastore_id", "name", "region", "adopted")

    def __init__(self, step_id: str, *, name: str):
        super().__init__(step_id)
        self.name = name

    @staticmethod
    def _outputs(info: Any, *, adopted: bool) -> Outputs:
        return {"metastore_id": info.metastore_id, "name": info.name, "region": info.region, "adopted": adopted}

    def find(self, ctx: Context) -> Outputs | None:
        region = ctx.spec.region
        matches = [m for m in dbx.account(ctx).metastores.list() if m.region == region]
        if len(matches) > 1:  # Databricks allows one; prefer ours by name
            named = [m for m in matches if m.name == self.name]
            if len(named) != 1:
                ids = ", ".join(f"{m.name} ({m.metastore_id})" for m in matches)
                raise OwnershipConflict(f"{len(matches)} Unity Catalog metastores serve region {region}: {ids}; expected one")
            matches = named
        if not matches:
            return None
        found = matches[0]
        return self._outputs(found, adopted=self._adopts(ctx, found))

    def _adopts(self, ctx: Context, found: Any) -> bool:
        """Whether the region's metastore is the account's (adopted) rather than this step's.

        Never ours unless this step attempted a create. A metastore this step saw created (its id kept as a state
        fact) stays ours: a rename of it (in the console) must not turn it into an adopted one that teardown leaves
        behind. Without that fact (a create whose answer was lost), it is ours only under the name this step creates."""
        if self.id not in ctx.claimed:
            return True
        if ctx.facts.get(self._created_fact()) == found.metastore_id:
            return False
        return found.name != self.name

    def _created_fact(self) -> str:
        return f"created:{self.id}"

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.catalog import CreateAccountsMetastore

        created = dbx.account(ctx).metastores.create(metastore_info=CreateAccountsMetastore(name=self.name, region=ctx.spec.region))
        if created.metastore_info is None or not created.metastore_info.metastore_id:
            raise ResourceFailed(f"metastore {self.name}", "not returned", "the create answer has no metastore_info")
        ctx.facts[self._created_fact()] = created.metastore_info.metastore_id
        ctx.remember(self._created_fact(), created.metastore_info.metastore_id)
        return self._outputs(created.metastore_info, adopted=False)

    def _adopted(self, ctx: Context, out: Outputs) -> bool:
        return bool(out.get("adopted", self.id not in ctx.claimed))

    def _assigned(self, ctx: Context, metastore_id: str) -> list[int]:
        return [int(w) for w in dbx.account(ctx).metastore_assignments.list(metastore_id=metastore_id) or []]

    def delete(self, ctx: Context, out: Outputs) -> None:
        metastore_id = out["metastore_id"]
        if self._adopted(ctx, out):
            ctx.log.info("leaving the metastore in place (adopted: this step did not create it)", metastore_id=metastore_id)
            return
        # This deployment's assignments are gone by now (they need this step); another workspace's may remain.
        assigned = self._assigned(ctx, metastore_id)
        if assigned:
            ctx.log.warning("metastore left in place: other workspaces are assigned to it", metastore_id=metastore_id, workspaces=assigned)
            return
        dbx.account(ctx).metastores.delete(metastore_id=metastore_id)  # never force: a metastore with data stays

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        metastore_id = out["metastore_id"]
        if self._adopted(ctx, out):
            return  # left in place by delete
        assigned = read(lambda: self._assigned(ctx, metastore_id))
        if assigned is None or assigned:
            return  # gone already, or left in place by delete
        ctx.wait_gone(lambda: dbx.account(ctx).metastores.get(metastore_id=metastore_id), what=f"metastore {metastore_id}")


class MetastoreAssignment(Step):
    kind = "databricks.metastore_assignment"
    produces = ("workspace_id", "metastore_id", "deployment_name")

    def __init__(self, step_id: str, *, metastore: str, workspace: str):
        super().__init__(step_id, needs=(metastore, workspace))
        self.metastore_id = Ref(metastore, "metastore_id")
        self.workspace_id, self.deployment_name = Ref(workspace, "workspace_id"), Ref(workspace, "deployment_name")

    def _current(self, ctx: Context, workspace_id: int) -> str | None:
        """The metastore the workspace is assigned to, or None."""
        try:
            found = dbx.account(ctx).metastore_assignments.get(workspace_id=workspace_id)
        except Exception as exc:
            if is_not_found(exc) or no_metastore(exc):
                return None
            raise
        return found.metastore_assignment.metastore_id if found.metastore_assignment else None

    def find(self, ctx: Context) -> Outputs | None:
        workspace_id, metastore_id = ctx.out_if_known(self.workspace_id), ctx.out_if_known(self.metastore_id)
        if workspace_id is None or metastore_id is None:  # plan, before the workspace or the metastore exists
            return None
        current = self._current(ctx, workspace_id)
        if current is None:
            return None
        if current != metastore_id:
            raise OwnershipConflict(
                f"workspace {workspace_id} is assigned to metastore {current}, not {metastore_id} (the region's that this "
                "deployment uses); unassign it or delete that metastore assignment"
            )
        return {"workspace_id": workspace_id, "metastore_id": metastore_id, "deployment_name": ctx.out(self.deployment_name)}

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.catalog import CreateMetastoreAssignment

        workspace_id, metastore_id = ctx.out(self.workspace_id), ctx.out(self.metastore_id)
        # The default catalog is the Default Namespace API's now (uc.default_namespace): none is named here.
        body = CreateMetastoreAssignment(workspace_id=workspace_id, metastore_id=metastore_id, default_catalog_name=None)  # type: ignore[arg-type]
        try:
            dbx.account(ctx).metastore_assignments.create(workspace_id=workspace_id, metastore_id=metastore_id, metastore_assignment=body)
        except Exception as exc:
            if not is_already_exists(exc):
                raise
            found = self.find(ctx)  # ours already (a lost response), or another metastore's: refused
            if found is None:
                raise
            return found
        return {"workspace_id": workspace_id, "metastore_id": metastore_id, "deployment_name": ctx.out(self.deployment_name)}

    def delete(self, ctx: Context, out: Outputs) -> None:
        dbx.account(ctx).metastore_assignments.delete(workspace_id=out["workspace_id"], metastore_id=out["metastore_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self._current(ctx, out["workspace_id"]), what=f"metastore assignment of workspace {out['workspace_id']}")
