"""Objects inside a new workspace, reached through its own REST API."""

from __future__ import annotations

from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import is_not_found as aws_not_found
from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.errors import is_not_found as dbx_not_found
from provision.errors import OwnershipConflict
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Ref, Step

TOKEN_ID_TAG = "provision:token-id"
TOKEN_LIFETIME_SECONDS = 90 * 24 * 3600


class WorkspaceToken(Step):
    """A personal access token of the workspace for follow-on automation. Its value goes straight into
    AWS Secrets Manager: the state file, logs and outputs only ever hold the secret's ARN."""

    kind = "databricks.workspace_token"
    produces = ("secret_arn", "token_id")

    def __init__(self, step_id: str, *, workspace: str):
        super().__init__(step_id, needs=(workspace,))
        self.deployment_name, self.workspace_url = Ref(workspace, "deployment_name"), Ref(workspace, "workspace_url")

    def secret_name(self, ctx: Context) -> str:
        return ctx.name_of(self.id, f"{ctx.deployment}/{self.id}")

    def comment(self, ctx: Context) -> str:
        return f"provision {ctx.deployment} {self.id}"

    def _secrets(self, ctx: Context) -> Any:
        return aws.client(ctx, "secretsmanager")

    def find(self, ctx: Context) -> Outputs | None:
        try:
            secret = self._secrets(ctx).describe_secret(SecretId=self.secret_name(ctx))
        except Exception as exc:
            if aws_not_found(exc):
                return None
            raise
        if secret.get("DeletedDate"):
            return None
        tags = {t["Key"]: t["Value"] for t in secret.get("Tags", [])}
        if tags.get(TAG_DEPLOYMENT) != ctx.deployment:
            raise OwnershipConflict(f"secret {self.secret_name(ctx)} exists but is not tagged as this deployment's")
        return {"secret_arn": secret["ARN"], "token_id": tags.get(TOKEN_ID_TAG)}

    def create(self, ctx: Context) -> Outputs:
        workspace = dbx.workspace(ctx, ctx.out(self.deployment_name))
        # A token made by an earlier attempt that died before storing it can never be read again: revoke it.
        for info in workspace.tokens.list():
            if info.comment == self.comment(ctx):
                workspace.tokens.delete(token_id=info.token_id)
        token = workspace.tokens.create(comment=self.comment(ctx), lifetime_seconds=TOKEN_LIFETIME_SECONDS)
        token_id = token.token_info.token_id
        secret = self._secrets(ctx).create_secret(
            Name=self.secret_name(ctx), SecretString=token.token_value,
            Description=f"Databricks token for workspace {ctx.out(self.workspace_url)}",
            Tags=aws.tags(ctx, self.id) + [{"Key": TOKEN_ID_TAG, "Value": token_id}],
        )
        return {"secret_arn": secret["ARN"], "token_id": token_id}

    def delete(self, ctx: Context, out: Outputs) -> None:
        # The workspace's step may be gone already (it then took its tokens with it).
        deployment_name = ctx.out_if_known(self.deployment_name)
        if out.get("token_id") and deployment_name is not None:
            try:
                dbx.workspace(ctx, deployment_name).tokens.delete(token_id=out["token_id"])
            except Exception as exc:
                # Best effort: the workspace deletes its tokens with it, and a broken or unreachable
                # workspace must not block the teardown of everything else.
                if not dbx_not_found(exc):
                    ctx.log.warning("could not revoke the workspace token; it goes with the workspace", error=type(exc).__name__)
        self._secrets(ctx).delete_secret(SecretId=out["secret_arn"], ForceDeleteWithoutRecovery=True)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        def read() -> Any:
            secret = self._secrets(ctx).describe_secret(SecretId=out["secret_arn"])
            return None if secret.get("DeletedDate") else secret

        ctx.wait_gone(read, what=f"secret {out['secret_arn']}")
