"""The AWS half of a Unity Catalog managed location: the catalog bucket, the IAM role Unity Catalog assumes
(trusting Databricks' UC master role with the storage credential's own external id, and itself), and the role's
policy.

The order is Databricks' documented one: the storage credential first (it names the role's ARN, which is
deterministic, before the role exists), then the role with the credential's external id in its trust, then the
role's policy, then validation (the external location's step). The self-assume statement names the account's
root principal with an `ArnLike aws:PrincipalArn` condition on the role's own ARN: IAM refuses a trust that
names a role which does not exist yet, the role itself included at its creation.
"""

from __future__ import annotations

import json
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.steps.iam import (
    InlineRolePolicy,
    delete_role,
    document,
    find_role,
    wait_role_gone,
)
from provision.clouds.aws.steps.storage import (
    RootBucket,
    _bucket_policy,
    _deny_insecure_transport,
    _digest,
)
from provision.orchestrator.step import Context, Outputs, Ref, Step

UC_MASTER_ROLE = "arn:aws:iam::414351767826:role/unity-catalog-prod-UCMasterRole-14S5ZJVKOTYTL"


def uc_role_name(deployment: str) -> str:
    return f"{deployment}-uc-catalog"


def uc_role_arn(account_id: str, deployment: str) -> str:
    """The role's ARN, known before the role exists (the storage credential names it first)."""
    return f"arn:aws:iam::{account_id}:role/{uc_role_name(deployment)}"


def uc_policy_name(deployment: str) -> str:
    return f"{deployment}-uc-catalog-policy"


def catalog_bucket_policy(bucket: str) -> dict[str, Any]:
    """Nothing over plain HTTP, and no grant to anyone: the UC role reaches the bucket through its own policy."""
    return {"Version": "2012-10-17", "Statement": [_deny_insecure_transport([f"arn:aws:s3:::{bucket}/*", f"arn:aws:s3:::{bucket}"])]}


def uc_trust_policy(account_id: str, deployment: str, external_id: str) -> dict[str, Any]:
    """Databricks' UC master role with the credential's external id, and the role itself (Unity Catalog requires
    the role to be self-assuming), through the account root and a condition on the caller's ARN."""
    own = uc_role_arn(account_id, deployment)
    external = {"sts:ExternalId": external_id}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "UnityCatalogMasterRole", "Effect": "Allow", "Principal": {"AWS": UC_MASTER_ROLE}, "Action": "sts:AssumeRole",
             "Condition": {"StringEquals": external}},
            {"Sid": "SelfAssume", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"}, "Action": "sts:AssumeRole",
             "Condition": {"StringEquals": external, "ArnLike": {"aws:PrincipalArn": own}}},
        ],
    }


def _trusted_external_id(trust: Any) -> str | None:
    """The external id the UC master role statement requires, or None."""
    for statement in (trust or {}).get("Statement", []):
        if (statement.get("Principal") or {}).get("AWS") == UC_MASTER_ROLE:
            value = ((statement.get("Condition") or {}).get("StringEquals") or {}).get("sts:ExternalId")
            return value if isinstance(value, str) else None
    return None


def uc_role_policy(*, bucket_arn: str, role_arn: str, key_arn: str | None) -> dict[str, Any]:
    """What Unity Catalog does with the catalog bucket (Databricks' documented policy for a storage credential's
    role): objects read, written and deleted, the bucket listed and its lifecycle managed, the role assuming
    itself, and the bucket's KMS key used when it has one."""
    statements: list[dict[str, Any]] = [
        {"Sid": "CatalogObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
         "Resource": f"{bucket_arn}/*"},
        {"Sid": "CatalogBucket", "Effect": "Allow",
         "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads", "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"],
         "Resource": bucket_arn},
        {"Sid": "AssumeSelf", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn},
    ]
    if key_arn:
        statements.append({"Sid": "CatalogKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"], "Resource": key_arn})
    return {"Version": "2012-10-17", "Statement": statements}


class CatalogBucket(RootBucket):
    """RootBucket's guarantees (owner-enforced, public access blocked, versioned, encrypted; emptied, every version,
    on teardown), without the grant to Databricks' account: only the UC role reaches it. Its policy only denies
    plain HTTP, and is put again whenever it is not exactly that."""

    def _settings_digest(self, ctx: Context) -> str:
        # The policy is part of what the digest stands for, so a bucket of another version converges.
        return _digest({"settings": super()._settings_digest(ctx), "policy": catalog_bucket_policy(self.bucket_name)})

    def _initial_policy(self, ctx: Context, s3: Any, bucket: str) -> None:
        wanted = catalog_bucket_policy(bucket)
        if _bucket_policy(s3, bucket) != wanted:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(wanted))


class UnityCatalogRole(Step):
    """The role a storage credential names. Its trust carries the credential's external id (read from the
    credential, never assumed to be the account id), so it is converged in place when that changes."""

    kind = "iam.role"
    produces = ("role_name", "role_arn", "external_id")

    def __init__(self, step_id: str, *, credential: str):
        super().__init__(step_id, needs=(credential,))
        self.external_id = Ref(credential, "external_id")

    def role_name(self, ctx: Context) -> str:
        return uc_role_name(ctx.deployment)

    def _outputs(self, ctx: Context, role: dict[str, Any]) -> Outputs:
        trust = document(role.get("AssumeRolePolicyDocument"))
        external_id = _trusted_external_id(trust)
        # The external id counts only with the whole trust as wanted (the self-assume statement too).
        if external_id is None or trust != uc_trust_policy(aws.account_id(ctx), ctx.deployment, external_id):
            external_id = None
        return {"role_name": role["RoleName"], "role_arn": role["Arn"], "external_id": external_id}

    def find(self, ctx: Context) -> Outputs | None:
        role = find_role(ctx, self.role_name(ctx))
        return self._outputs(ctx, role) if role else None

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        wanted = ctx.out_if_known(self.external_id)
        return wanted is not None and found.get("external_id") != wanted

    def create(self, ctx: Context) -> Outputs:
        trust = uc_trust_policy(aws.account_id(ctx), ctx.deployment, ctx.out(self.external_id))
        role = aws.client(ctx, "iam").create_role(
            RoleName=self.role_name(ctx), AssumeRolePolicyDocument=json.dumps(trust),
            Description=f"Unity Catalog storage credential role of deployment {ctx.deployment}",
            Tags=aws.tags(ctx, self.id),
        )["Role"]
        return {"role_name": role["RoleName"], "role_arn": role["Arn"], "external_id": ctx.out(self.external_id)}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        iam, name = aws.client(ctx, "iam"), out["role_name"]
        external_id = ctx.out(self.external_id)
        role = ctx.call(lambda: iam.get_role(RoleName=name)["Role"], f"{self.id} read")
        wanted = uc_trust_policy(aws.account_id(ctx), ctx.deployment, external_id)
        if document(role.get("AssumeRolePolicyDocument")) != wanted:
            ctx.call(lambda: iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(wanted)), f"{self.id} trust policy")
        # Propagation is the external location's to wait out (it validates the credential in a retry loop).
        return {"role_name": role["RoleName"], "role_arn": role["Arn"], "external_id": external_id}

    def delete(self, ctx: Context, out: Outputs) -> None:
        delete_role(ctx, out["role_name"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        wait_role_gone(ctx, out["role_name"])


class UnityCatalogRolePolicy(InlineRolePolicy):
    """The UC role's inline policy (`uc_role_policy`): the catalog bucket, its own AssumeRole, the KMS key."""

    def __init__(self, step_id: str, *, role: str, bucket: str, kms_key: str | None = None):
        super().__init__(step_id, role=role, needs=(bucket, *((kms_key,) if kms_key else ())))
        self.bucket_arn = Ref(bucket, "arn")
        self.key_arn = Ref(kms_key, "key_arn") if kms_key else None

    def policy_name(self, ctx: Context) -> str:
        return uc_policy_name(ctx.deployment)

    def document(self, ctx: Context) -> dict[str, Any]:
        return uc_role_policy(
            bucket_arn=ctx.out(self.bucket_arn), role_arn=ctx.out(self.role_arn),
            key_arn=ctx.out(self.key_arn) if self.key_arn else None,
        )

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        if ctx.out_if_known(self.bucket_arn) is None or ctx.out_if_known(self.role_arn) is None:
            return False
        if self.key_arn is not None and ctx.out_if_known(self.key_arn) is None:
            return False
        return super().needs_converge(ctx, found)
