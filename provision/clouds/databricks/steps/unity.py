"""Unity Catalog: the region's metastore and its assignment (Account API), the storage credential, external
location, catalog, schemas, grants and default namespace (the workspace's own API).

Every object is found by its name. Ownership is written in the create call itself, so it is atomic with the
object: catalogs and schemas carry `properties` {"provision:deployment": <name>}; storage credentials and external
locations, which have no properties, carry it in their `comment` ("provision:deployment=<name>"). A same-named
object without that mark is someone else's: OwnershipConflict, never adopted, never deleted. A metastore has
neither (and there is one per region per account): like a key configuration, it is adopted when found before this
step attempted a create, and an adopted one is never deleted.

The workspace-level steps reach the workspace through the metastore assignment's outputs, so in `plan` before the
assignment exists they find nothing and make no call (a workspace without a metastore answers
METASTORE_DOES_NOT_EXIST, retried as propagation).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.errors import is_not_found
from provision.clouds.databricks.spec_unity import Grant
from provision.clouds.databricks.steps.uc_account import Metastore, MetastoreAssignment
from provision.clouds.databricks.steps.uc_common import CATALOG, SCHEMA, WorkspaceObject, owner_properties, read, value
from provision.clouds.databricks.steps.uc_location import ExternalLocation, StorageCredential
from provision.errors import OwnershipConflict
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Ref

__all__ = [
    "Catalog", "DefaultNamespace", "ExternalLocation", "Grants", "Metastore", "MetastoreAssignment", "Schema", "StorageCredential",
]


def _owned(kind: str, name: str, properties: dict[str, str] | None, deployment: str) -> None:
    owner = (properties or {}).get(TAG_DEPLOYMENT)
    if owner != deployment:
        whose = f"deployment {owner!r}" if owner else "no provision deployment (its properties carry no provision:deployment)"
        raise OwnershipConflict(f"{kind} {name!r} exists in the metastore and belongs to {whose}; choose another unity_catalog name")


class Catalog(WorkspaceObject):
    """The deployment's catalog: managed storage in the catalog bucket (`s3://<bucket>/catalogs/<name>`, under the
    external location), or the workspace's default storage with no bucket (serverless). Teardown deletes it with
    force, its schemas and tables with it: the deployment's data goes, as its buckets are emptied."""

    kind = "databricks.catalog"
    produces = ("name", "storage_root", "deployment_name")

    def __init__(
        self, step_id: str, *, name: str, assignment: str, bucket: str | None = None, location: str | None = None,
        after: tuple[str, ...] = (),
    ):
        super().__init__(step_id, needs=(assignment, *((bucket,) if bucket else ()), *((location,) if location else ()), *after))
        self.name = name
        self.deployment_name = Ref(assignment, "deployment_name")
        self.bucket = Ref(bucket, "bucket") if bucket else None

    def storage_root(self, ctx: Context) -> str | None:
        return f"s3://{ctx.out(self.bucket)}/catalogs/{self.name}" if self.bucket else None

    def _outputs(self, ctx: Context, info: Any) -> Outputs:
        return {"name": info.name, "storage_root": info.storage_root, "deployment_name": ctx.out_if_known(self.deployment_name)}

    def find(self, ctx: Context) -> Outputs | None:
        ws = self._workspace(ctx)
        if ws is None:
            return None
        info = read(lambda: ws.catalogs.get(name=self.name))
        if info is None:
            return None
        _owned("catalog", self.name, info.properties, ctx.deployment)
        return self._outputs(ctx, info)

    def create(self, ctx: Context) -> Outputs:
        ws = dbx.workspace(ctx, ctx.out(self.deployment_name))
        return self._create_or_adopt(ctx, lambda: self._outputs(ctx, ws.catalogs.create(
            name=self.name, comment=f"Catalog of provision deployment {ctx.deployment}",
            properties=owner_properties(ctx.deployment), storage_root=self.storage_root(ctx),
        )))

    def delete(self, ctx: Context, out: Outputs) -> None:
        ws = self._teardown_client(ctx, f"catalog {out['name']}", out)
        if ws is not None:
            ws.catalogs.delete(name=out["name"], force=True)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ws = self._workspace(ctx, out)
        if ws is not None:
            ctx.wait_gone(lambda: ws.catalogs.get(name=out["name"]), what=f"catalog {out['name']}")


class Schema(WorkspaceObject):
    kind = "databricks.schema"
    produces = ("full_name", "deployment_name")

    def __init__(self, step_id: str, *, name: str, catalog: str):
        super().__init__(step_id, needs=(catalog,))
        self.name = name
        self.catalog, self.deployment_name = Ref(catalog, "name"), Ref(catalog, "deployment_name")

    def find(self, ctx: Context) -> Outputs | None:
        ws, catalog = self._workspace(ctx), ctx.out_if_known(self.catalog)
        if ws is None or catalog is None:
            return None
        full_name = f"{catalog}.{self.name}"
        info = read(lambda: ws.schemas.get(full_name=full_name))
        if info is None:
            return None
        _owned("schema", full_name, info.properties, ctx.deployment)
        return {"full_name": info.full_name or full_name, "deployment_name": ctx.out_if_known(self.deployment_name)}

    def create(self, ctx: Context) -> Outputs:
        ws, catalog = dbx.workspace(ctx, ctx.out(self.deployment_name)), ctx.out(self.catalog)
        return self._create_or_adopt(ctx, lambda: {"full_name": ws.schemas.create(
            name=self.name, catalog_name=catalog, comment=f"Schema of provision deployment {ctx.deployment}",
            properties=owner_properties(ctx.deployment),
        ).full_name or f"{catalog}.{self.name}", "deployment_name": ctx.out(self.deployment_name)})

    def delete(self, ctx: Context, out: Outputs) -> None:
        ws = self._teardown_client(ctx, f"schema {out['full_name']}", out)
        if ws is not None:
            ws.schemas.delete(full_name=out["full_name"], force=True)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ws = self._workspace(ctx, out)
        if ws is not None:
            ctx.wait_gone(lambda: ws.schemas.get(full_name=out["full_name"]), what=f"schema {out['full_name']}")


class Grants(WorkspaceObject):
    """The spec's grants, added (never removed: a privilege granted by hand stays). `find` returns None until every
    wanted privilege is there, so a grant dropped by hand is added again on the next run, and while a securable it
    grants on does not exist yet (or any more).

    Unity Catalog names a group by its display name and a user by its user name, but a service principal by its
    application id (what `grants.get` reports): `service_principals` maps each spec principal that is one of the
    deployment's service principals to its step, whose `application_id` is sent and compared instead of the name."""

    kind = "databricks.grants"
    produces = ("catalog", "digest")

    def __init__(
        self, step_id: str, *, catalog: str, grants: tuple[Grant, ...], after: tuple[str, ...] = (),
        service_principals: dict[str, str] | None = None,
    ):
        sp_steps = tuple(dict.fromkeys((service_principals or {}).values()))
        super().__init__(step_id, needs=tuple(dict.fromkeys((catalog, *after, *sp_steps))))
        self.grants = tuple(grants)
        self.catalog, self.deployment_name = Ref(catalog, "name"), Ref(catalog, "deployment_name")
        self.application_ids = {name: Ref(step, "application_id") for name, step in (service_principals or {}).items()}

    def _principals(self, ctx: Context) -> dict[str, str] | None:
        """Spec principal -> the name Unity Catalog knows it by; None while a service principal's id is unknown."""
        resolved: dict[str, str] = {}
        for grant in self.grants:
            ref = self.application_ids.get(grant.principal)
            if ref is None:
                resolved[grant.principal] = grant.principal
                continue
            application_id = ctx.out_if_known(ref)
            if application_id is None:
                return None
            resolved[grant.principal] = str(application_id)
        return resolved

    def wanted(self, catalog: str, principals: dict[str, str] | None = None) -> dict[tuple[str, str], dict[str, list[str]]]:
        """(securable type, full name) -> principal (as Unity Catalog names it) -> privileges."""
        out: dict[tuple[str, str], dict[str, list[str]]] = {}
        for grant in self.grants:
            securable = (SCHEMA, f"{catalog}.{grant.schema}") if grant.schema else (CATALOG, catalog)
            principal = (principals or {}).get(grant.principal, grant.principal)
            have = out.setdefault(securable, {}).setdefault(principal, [])
            have.extend(p for p in grant.privileges if p not in have)
        return out

    def digest(self, catalog: str, principals: dict[str, str] | None = None) -> str:
        wanted = {f"{t}/{n}": {p: sorted(v) for p, v in by.items()} for (t, n), by in self.wanted(catalog, principals).items()}
        return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]

    @staticmethod
    def _granted(ws: Any, securable_type: str, full_name: str) -> dict[str, set[str]] | None:
        """Principal -> privileges granted on the securable, or None if the securable does not exist."""
        granted: dict[str, set[str]] = {}
        token: str | None = None
        while True:
            page = read(lambda t=token: ws.grants.get(securable_type=securable_type, full_name=full_name, page_token=t))  # type: ignore[misc]
            if page is None:
                return None
            for assignment in page.privilege_assignments or []:
                granted.setdefault(assignment.principal, set()).update(value(p) for p in assignment.privileges or [])
            token = page.next_page_token
            if not token:
                return granted

    def _missing(self, ws: Any, catalog: str, principals: dict[str, str]) -> dict[tuple[str, str], dict[str, list[str]]]:
        """What is not granted yet; a securable that does not exist lacks all its grants."""
        missing: dict[tuple[str, str], dict[str, list[str]]] = {}
        for (securable_type, full_name), by_principal in self.wanted(catalog, principals).items():
            granted = self._granted(ws, securable_type, full_name) or {}
            for principal, privileges in by_principal.items():
                lacking = [p for p in privileges if p not in granted.get(principal, set())]
                if lacking:
                    missing.setdefault((securable_type, full_name), {})[principal] = lacking
        return missing

    def find(self, ctx: Context) -> Outputs | None:
        ws, catalog, principals = self._workspace(ctx), ctx.out_if_known(self.catalog), self._principals(ctx)
        if ws is None or catalog is None or principals is None:
            return None
        if self._missing(ws, catalog, principals):
            return None
        return {"catalog": catalog, "digest": self.digest(catalog, principals)}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        catalog, principals = ctx.out_if_known(self.catalog), self._principals(ctx)
        return catalog is not None and principals is not None and found.get("digest") != self.digest(catalog, principals)

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.catalog import PermissionsChange, Privilege

        ws, catalog = dbx.workspace(ctx, ctx.out(self.deployment_name)), ctx.out(self.catalog)
        principals = {g.principal: g.principal for g in self.grants} | {n: str(ctx.out(r)) for n, r in self.application_ids.items()}
        for (securable_type, full_name), by_principal in self._missing(ws, catalog, principals).items():
            changes = [PermissionsChange(principal=p, add=[Privilege(x) for x in privileges]) for p, privileges in by_principal.items()]
            # Adding a privilege already there changes nothing, so a retried update is harmless.
            ctx.call(
                lambda t=securable_type, n=full_name, c=changes: ws.grants.update(securable_type=t, full_name=n, changes=c),  # type: ignore[misc]
                f"{self.id} {full_name}",
            )
        return {"catalog": catalog, "digest": self.digest(catalog, principals)}

    def delete(self, ctx: Context, out: Outputs) -> None:
        return None  # the grants go with the catalog and its schemas


def _etag_in(exc: BaseException) -> str | None:
    """The etag a settings refusal carries (404 of an unset setting, 409 of a stale etag), as the SDK documents."""
    for detail in getattr(exc, "get_error_info", lambda: [])() or []:
        etag = (detail.metadata or {}).get("etag")
        if etag:
            return str(etag)
    return None


class DefaultNamespace(WorkspaceObject):
    """The workspace's default catalog (the Default Namespace setting), set to the deployment's catalog. An unset
    setting answers 404 with the etag to write with; a stale etag 409 with the fresh one: both are written with."""

    kind = "databricks.default_namespace"
    produces = ("deployment_name", "namespace")

    def __init__(self, step_id: str, *, catalog: str):
        super().__init__(step_id, needs=(catalog,))
        self.catalog, self.deployment_name = Ref(catalog, "name"), Ref(catalog, "deployment_name")

    @staticmethod
    def _current(ws: Any) -> tuple[str | None, str | None]:
        """(the namespace, its etag); the namespace is None when unset."""
        try:
            setting = ws.settings.default_namespace.get()
        except Exception as exc:
            if is_not_found(exc):
                return None, _etag_in(exc)
            raise
        return (setting.namespace.value if setting.namespace else None), setting.etag

    def find(self, ctx: Context) -> Outputs | None:
        ws, catalog = self._workspace(ctx), ctx.out_if_known(self.catalog)
        if ws is None or catalog is None:
            return None
        value, _ = self._current(ws)
        if value != catalog:  # not set, or set to another catalog: `create` sets it
            return None
        return {"deployment_name": ctx.out_if_known(self.deployment_name), "namespace": value}

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.settings import DefaultNamespaceSetting, StringMessage

        ws, catalog = dbx.workspace(ctx, ctx.out(self.deployment_name)), ctx.out(self.catalog)
        _, etag = ctx.call(lambda: self._current(ws), f"{self.id} read")

        def update(etag: str | None) -> Any:
            setting = DefaultNamespaceSetting(namespace=StringMessage(value=catalog), etag=etag, setting_name="default")
            return ws.settings.default_namespace.update(allow_missing=True, setting=setting, field_mask="namespace.value")

        try:
            updated = update(etag)
        except Exception as exc:
            fresh = _etag_in(exc)  # changed since the read (409), or the etag was not accepted: once more with its own
            if fresh is None or fresh == etag:
                raise
            updated = update(fresh)
        value = updated.namespace.value if updated.namespace else catalog
        return {"deployment_name": ctx.out(self.deployment_name), "namespace": value}

    def delete(self, ctx: Context, out: Outputs) -> None:
        ws = self._workspace(ctx, out)
        if ws is None:
            return  # the setting goes with the workspace
        try:
            value, etag = self._current(ws)
            if value is not None:
                ws.settings.default_namespace.delete(etag=etag)
        except Exception as exc:
            # Best effort: the catalog it names is deleted next, and the setting goes with the workspace.
            if not is_not_found(exc):
                ctx.log.warning("could not reset the workspace's default namespace", error=type(exc).__name__)
