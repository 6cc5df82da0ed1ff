"""The catalog bucket's storage credential and external location, in the workspace's metastore (see unity.py)."""

from __future__ import annotations

from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.steps.uc_storage import uc_role_arn
from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.steps.uc_common import (
    WorkspaceObject,
    check_commented,
    ownership_comment,
    read,
    value,
)
from provision.errors import NotYetPropagated, ResourceFailed
from provision.orchestrator.retry import IAM_PROPAGATION, PROPAGATING, phase
from provision.orchestrator.step import Context, Outputs, Ref


class StorageCredential(WorkspaceObject):
    """The credential names the UC role by its deterministic ARN before the role exists (skip_validation): its
    answer carries the external id the role's trust must require. Validation is the external location's."""

    kind = "databricks.storage_credential"
    produces = ("name", "credential_id", "external_id", "role_arn", "deployment_name")

    def __init__(self, step_id: str, *, name: str, assignment: str, after: tuple[str, ...] = ()):
        super().__init__(step_id, needs=(assignment, *after))
        self.name = name
        self.deployment_name = Ref(assignment, "deployment_name")

    def role_arn(self, ctx: Context) -> str:
        return uc_role_arn(aws.account_id(ctx), ctx.deployment)

    def _outputs(self, ctx: Context, info: Any) -> Outputs:
        role = info.aws_iam_role
        if role is None or not role.external_id:
            raise ResourceFailed(f"storage credential {self.name}", "incomplete", "Databricks returned no aws_iam_role.external_id")
        return {
            "name": info.name, "credential_id": info.id, "external_id": role.external_id, "role_arn": role.role_arn,
            "deployment_name": ctx.out_if_known(self.deployment_name),
        }

    def find(self, ctx: Context) -> Outputs | None:
        ws = self._workspace(ctx)
        if ws is None:  # plan, before the metastore is assigned
            return None
        info = read(lambda: ws.storage_credentials.get(name=self.name))
        if info is None:
            return None
        check_commented(f"storage credential {self.name!r}", info.comment, ctx.deployment)
        return self._outputs(ctx, info)

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found.get("role_arn") != self.role_arn(ctx)

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.catalog import AwsIamRoleRequest

        ws = dbx.workspace(ctx, ctx.out(self.deployment_name))
        role = AwsIamRoleRequest(role_arn=self.role_arn(ctx))
        return self._create_or_adopt(ctx, lambda: self._outputs(ctx, ws.storage_credentials.create(
            name=self.name, aws_iam_role=role, comment=ownership_comment(ctx.deployment), skip_validation=True,
        )))

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        from databricks.sdk.service.catalog import AwsIamRoleRequest

        wanted = self.role_arn(ctx)
        if out.get("role_arn") == wanted:
            return out
        ws = dbx.workspace(ctx, ctx.out(self.deployment_name))
        updated = ctx.call(
            lambda: ws.storage_credentials.update(name=self.name, aws_iam_role=AwsIamRoleRequest(role_arn=wanted), skip_validation=True),
            f"{self.id} update",
        )
        return self._outputs(ctx, updated)

    def delete(self, ctx: Context, out: Outputs) -> None:
        ws = self._teardown_client(ctx, f"storage credential {out['name']}", out)
        if ws is not None:
            ws.storage_credentials.delete(name=out["name"])  # its external location went first (it needs this)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ws = self._workspace(ctx, out)
        if ws is not None:
            ctx.wait_gone(lambda: ws.storage_credentials.get(name=out["name"]), what=f"storage credential {out['name']}")


class ExternalLocation(WorkspaceObject):
    """The catalog bucket as an external location. Unity Catalog checks the credential's role when the location is
    created, so the create first validates the credential until every check passes: a FAIL while the role's trust
    and policy propagate is retried (NotYetPropagated), as are PERMISSION_DENIED and "not self-assuming", each retry
    logged with its reason, until the retry deadline; then the last answer is reported."""

    kind = "databricks.external_location"
    produces = ("name", "url", "credential_name", "deployment_name")

    def __init__(self, step_id: str, *, name: str, credential: str, bucket: str, role_policy: str):
        super().__init__(step_id, needs=(credential, bucket, role_policy))
        self.name = name
        self.credential_name, self.deployment_name = Ref(credential, "name"), Ref(credential, "deployment_name")
        self.bucket = Ref(bucket, "bucket")

    def _outputs(self, ctx: Context, info: Any) -> Outputs:
        return {"name": info.name, "url": info.url, "credential_name": info.credential_name, "deployment_name": ctx.out_if_known(self.deployment_name)}

    def url(self, ctx: Context) -> str:
        return f"s3://{ctx.out(self.bucket)}/"

    @staticmethod
    def _same_url(found: Any, wanted: str) -> bool:
        """Unity Catalog may answer the URL without its trailing slash: s3://b/ and s3://b are one location."""
        return isinstance(found, str) and found.rstrip("/") == wanted.rstrip("/")

    def find(self, ctx: Context) -> Outputs | None:
        ws = self._workspace(ctx)
        if ws is None:
            return None
        info = read(lambda: ws.external_locations.get(name=self.name))
        if info is None:
            return None
        check_commented(f"external location {self.name!r} ({info.url})", info.comment, ctx.deployment)
        return self._outputs(ctx, info)

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        bucket, credential = ctx.out_if_known(self.bucket), ctx.out_if_known(self.credential_name)
        return (bucket is not None and not self._same_url(found.get("url"), f"s3://{bucket}/")) or (
            credential is not None and found.get("credential_name") != credential
        )

    def validate(self, ctx: Context, ws: Any, credential: str, url: str) -> None:
        """One validation of the credential on the URL; a failed check raises NotYetPropagated with its message."""
        answer = ws.storage_credentials.validate(storage_credential_name=credential, url=url)
        failed = [r for r in answer.results or [] if value(r.result) == "FAIL"]
        if failed:
            detail = "; ".join(f"{value(r.operation)}: {r.message}" for r in failed)
            raise NotYetPropagated(f"validation of storage credential {credential} on {url}", IAM_PROPAGATION, detail)

    def create(self, ctx: Context) -> Outputs:
        ws = dbx.workspace(ctx, ctx.out(self.deployment_name))
        credential, url = ctx.out(self.credential_name), self.url(ctx)
        with phase(PROPAGATING):
            ctx.call(lambda: self.validate(ctx, ws, credential, url), f"{self.id} validate")
            return self._create_or_adopt(ctx, lambda: self._outputs(ctx, ctx.call(
                lambda: ws.external_locations.create(name=self.name, url=url, credential_name=credential, comment=ownership_comment(ctx.deployment)),
                f"{self.id} create",
            )))

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        credential, url = ctx.out(self.credential_name), self.url(ctx)
        if self._same_url(out.get("url"), url) and out.get("credential_name") == credential:
            return out
        ws = dbx.workspace(ctx, ctx.out(self.deployment_name))
        with phase(PROPAGATING):
            ctx.call(lambda: self.validate(ctx, ws, credential, url), f"{self.id} validate")
            updated = ctx.call(lambda: ws.external_locations.update(name=self.name, url=url, credential_name=credential), f"{self.id} update")
        return self._outputs(ctx, updated)

    def delete(self, ctx: Context, out: Outputs) -> None:
        ws = self._teardown_client(ctx, f"external location {out['name']}", out)
        if ws is not None:
            ws.external_locations.delete(name=out["name"])  # the catalog on it went first (it needs this)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ws = self._workspace(ctx, out)
        if ws is not None:
            ctx.wait_gone(lambda: ws.external_locations.get(name=out["name"]), what=f"external location {out['name']}")
