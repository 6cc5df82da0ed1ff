"""Customer-managed KMS keys for a workspace ([encryption]): new keys with the key policy Databricks
documents, or the user's existing keys (read, never modified, never deleted).

A new key is found by its alias (`alias/<deployment>-<use>`) and is ours only if it carries our ownership
tags, which KMS takes in the create call. The alias comes in a second call, so a create that crashed in
between leaves a tagged key without an alias: a step that attempted a create (`ctx.claimed`) also looks
for its tagged key and adopts it, instead of leaking it and making another. Teardown deletes the alias and
schedules the key's deletion (KMS never deletes a key at once); a key pending deletion counts as gone, and
the state file records until when (`pending_deletion:<step id>` among its facts).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code, is_not_found
from provision.clouds.aws.steps.flowlogs import log_group_name
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.errors import OwnershipConflict, ResourceFailed
from provision.orchestrator.step import (
    TAG_DEPLOYMENT,
    TAG_STEP,
    Context,
    Outputs,
    Ref,
    Step,
    single,
)

MANAGED_SERVICES, STORAGE = "MANAGED_SERVICES", "STORAGE"
_DATABRICKS = f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"
# Key states in which a key cannot serve a workspace; `up` says so rather than re-enabling a key someone
# disabled or scheduled for deletion on purpose (revoking the key is how a customer cuts Databricks off).
_UNUSABLE = {"Disabled", "PendingDeletion", "PendingReplicaDeletion", "Unavailable", "PendingImport"}
# Read errors on a key of the account that only mean "not a key we can own" while searching by tag.
_SKIPPED = {"AccessDeniedException", "NotFoundException", "KMSInvalidStateException", "InvalidArnException"}


def _databricks_condition(databricks_account_id: str) -> dict[str, Any]:
    """Databricks' principals carry their Databricks account id as a principal tag."""
    return {"StringEquals": {"aws:PrincipalTag/DatabricksAccountId": [databricks_account_id]}}


def managed_services_statements(databricks_account_id: str) -> list[dict[str, Any]]:
    """Databricks docs, "Configure customer-managed keys for encryption" (AWS): the managed-services key."""
    return [
        {
            "Sid": "Allow Databricks to use KMS key for managed services in the control plane",
            "Effect": "Allow",
            "Principal": {"AWS": _DATABRICKS},
            "Action": ["kms:Encrypt", "kms:Decrypt"],
            "Resource": "*",
            "Condition": _databricks_condition(databricks_account_id),
        }
    ]


# What the cross-account role may do with the storage key, through EC2 only (the clusters' EBS volumes).
EBS_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey")


def storage_statements(databricks_account_id: str, role_arn: str) -> list[dict[str, Any]]:
    """The same page's workspace-storage key: the root bucket (DBFS), grants for AWS resources only, and
    the clusters' EBS volumes through the cross-account role (via EC2 only)."""
    return [
        {
            "Sid": "Allow Databricks to use KMS key for DBFS",
            "Effect": "Allow",
            "Principal": {"AWS": _DATABRICKS},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": _databricks_condition(databricks_account_id),
        },
        {
            "Sid": "Allow Databricks to use KMS key for DBFS (Grants)",
            "Effect": "Allow",
            "Principal": {"AWS": _DATABRICKS},
            "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
            "Resource": "*",
            "Condition": {**_databricks_condition(databricks_account_id), "Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
        {
            "Sid": "Allow Databricks to use KMS key for EBS",
            "Effect": "Allow",
            "Principal": {"AWS": role_arn},
            "Action": list(EBS_ACTIONS),
            "Resource": "*",
            "Condition": {"ForAnyValue:StringLike": {"kms:ViaService": "ec2.*.amazonaws.com"}},
        },
    ]


def logs_use_case(use_cases: tuple[str, ...]) -> str:
    """Which key encrypts the flow-log group, of the keys for `use_cases` (those that are on): the storage
    key, else the managed-services key (the only one there is)."""
    return STORAGE if STORAGE in use_cases else MANAGED_SERVICES


def flow_log_group_arn(region: str, account: str, deployment: str) -> str:
    """The ARN of the deployment's flow-log group, as CloudWatch Logs puts it in the encryption context."""
    return f"arn:aws:logs:{region}:{account}:log-group:{log_group_name(deployment)}"


LOGS_ACTIONS = ("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*")


def logs_statement(region: str, account: str, deployment: str) -> dict[str, Any]:
    """CloudWatch Logs of this account and region may encrypt the deployment's flow-log group with the key:
    the statement of the CloudWatch Logs guide, limited to that one group's ARN in the encryption context
    (any other log group of the account is refused the key)."""
    return {
        "Sid": "Allow CloudWatch Logs of this account to use the key",
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.amazonaws.com"},
        "Action": list(LOGS_ACTIONS),
        "Resource": "*",
        "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": flow_log_group_arn(region, account, deployment)}},
    }


def key_policy(
    *, account: str, region: str, databricks_account_id: str, use_cases: tuple[str, ...], role_arn: str | None,
    logs_for: str | None = None,
) -> dict[str, Any]:
    """The whole key policy: the account administers the key (so IAM policies apply), Databricks uses it
    for each use case, and CloudWatch Logs if the key also encrypts the flow-log group of deployment
    `logs_for` (None: no log group uses the key, so the statement is left out)."""
    statements: list[dict[str, Any]] = [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"}
    ]
    if MANAGED_SERVICES in use_cases:
        statements += managed_services_statements(databricks_account_id)
    if STORAGE in use_cases:
        assert role_arn, "a workspace-storage key names the cross-account role (EBS)"
        statements += storage_statements(databricks_account_id, role_arn)
    if logs_for is not None:
        statements.append(logs_statement(region, account, logs_for))
    return {"Version": "2012-10-17", "Id": "databricks-workspace-key", "Statement": statements}


def policy_digest(policy: Any) -> str:
    return hashlib.sha256(json.dumps(policy, sort_keys=True).encode()).hexdigest()[:16]


def kms_tags(ctx: Context, step_id: str) -> list[dict[str, str]]:
    """Our ownership tags in KMS's shape (TagKey/TagValue)."""
    return [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in aws.tags(ctx, step_id)]


def _owned(tags: list[dict[str, str]], ctx: Context, step_id: str) -> bool:
    found = {t["TagKey"]: t["TagValue"] for t in tags}
    return found.get(TAG_DEPLOYMENT) == ctx.deployment and found.get(TAG_STEP) == step_id


def _describe(kms: Any, key: str) -> dict[str, Any] | None:
    try:
        return kms.describe_key(KeyId=key)["KeyMetadata"]
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def _unusable(meta: dict[str, Any]) -> str:
    if meta.get("KeyState") == "PendingDeletion":
        when = f" on {meta['DeletionDate']}" if meta.get("DeletionDate") else ""
        return f"it is scheduled for deletion{when}; cancel that (aws kms cancel-key-deletion, then enable-key) to keep the workspace's data readable"
    return "enable it (aws kms enable-key) if that was not deliberate: Databricks cannot read what it encrypts while it is not enabled"


class KmsKey(Step):
    """A symmetric encryption key for the use cases `use_cases` (MANAGED_SERVICES, STORAGE), with rotation
    on, alias `alias/<deployment>-<use>` and the documented key policy, converged on every rerun."""

    kind = "kms.key"
    typical_seconds = 2.0
    produces = ("key_id", "key_arn", "alias", "key_state", "rotation_enabled", "policy_sha256")

    def __init__(
        self, step_id: str, *, use: str, use_cases: tuple[str, ...], role: str | None = None, logs: bool = False,
        deletion_window_days: int = 7,
    ):
        """use: the alias suffix ("workspace", "managed-services", "storage"). role: the cross-account role's
        step, which a storage key's EBS statement names. logs: the deployment's flow-log group is encrypted
        with the key, so CloudWatch Logs may use it for that group (and only then)."""
        if STORAGE in use_cases and role is None:
            raise ValueError("a workspace-storage key needs the cross-account role (its EBS statement names it)")
        super().__init__(step_id, needs=(role,) if role else ())
        self.use, self.use_cases, self.logs, self.deletion_window_days = use, tuple(use_cases), logs, deletion_window_days
        self.role_arn = Ref(role, "role_arn") if role else None

    def alias(self, ctx: Context) -> str:
        return f"alias/{ctx.deployment}-{self.use}"

    def policy(self, ctx: Context, role_arn: str | None) -> dict[str, Any]:
        return key_policy(
            account=aws.account_id(ctx), region=ctx.spec.region, databricks_account_id=ctx.spec.databricks.account_id,
            use_cases=self.use_cases, role_arn=role_arn, logs_for=ctx.deployment if self.logs else None,
        )

    def _outputs(self, kms: Any, meta: dict[str, Any], alias: str | None) -> Outputs:
        key_id, state = meta["KeyId"], meta["KeyState"]
        rotation, digest = None, None
        if state != "PendingDeletion":  # nothing of a doomed key is converged; it is only reported
            rotation = kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]
            digest = policy_digest(json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]))
        return {"key_id": key_id, "key_arn": meta["Arn"], "alias": alias, "key_state": state, "rotation_enabled": rotation, "policy_sha256": digest}

    # find ------------------------------------------------------------------------------------------
    def find(self, ctx: Context) -> Outputs | None:
        kms, alias = aws.client(ctx, "kms"), self.alias(ctx)
        meta = _describe(kms, alias)
        if meta is not None:
            if not _owned(kms.list_resource_tags(KeyId=meta["KeyId"])["Tags"], ctx, self.id):
                raise OwnershipConflict(
                    f"KMS alias {alias} names key {meta['KeyId']}, which is not tagged {TAG_DEPLOYMENT}={ctx.deployment} "
                    f"({TAG_STEP}={self.id}); rename the deployment or delete that alias"
                )
            return self._outputs(kms, meta, alias)
        if self.id in ctx.claimed:
            # A create that crashed before its alias: our tagged key is there, unnamed.
            meta = self._tagged(ctx, kms)
            if meta is not None:
                return self._outputs(kms, meta, None)
        return None

    def _tagged(self, ctx: Context, kms: Any) -> dict[str, Any] | None:
        found = []
        for page in kms.get_paginator("list_keys").paginate():
            for listed in page["Keys"]:
                try:
                    tags = kms.list_resource_tags(KeyId=listed["KeyId"])["Tags"]
                except Exception as exc:
                    if error_code(exc) in _SKIPPED:  # AWS-managed keys, keys going away
                        continue
                    raise
                if _owned(tags, ctx, self.id):
                    meta = kms.describe_key(KeyId=listed["KeyId"])["KeyMetadata"]
                    # A key pending deletion belongs to an earlier life of this deployment: history.
                    if meta["KeyState"] != "PendingDeletion":
                        found.append(meta)
        return single(found, "KMS key", self.id)

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        role_arn = ctx.out_if_known(self.role_arn) if self.role_arn else None
        if self.role_arn and role_arn is None:
            return False  # judged on the next run, once the role is known
        return (
            found.get("alias") is None or found.get("key_state") != "Enabled" or not found.get("rotation_enabled")
            or found.get("policy_sha256") != policy_digest(self.policy(ctx, role_arn))
        )

    # create ----------------------------------------------------------------------------------------
    def create(self, ctx: Context) -> Outputs:
        kms = aws.client(ctx, "kms")
        policy = self.policy(ctx, ctx.out(self.role_arn) if self.role_arn else None)
        # Tags in the create call: the key is recognisably ours from its first instant. A role created
        # seconds ago can be refused as an invalid principal until IAM has propagated (retried).
        meta = kms.create_key(
            Policy=json.dumps(policy), Description=f"Databricks {self.use} key of deployment {ctx.deployment}",
            KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT", Tags=kms_tags(ctx, self.id),
        )["KeyMetadata"]
        kms.create_alias(AliasName=self.alias(ctx), TargetKeyId=meta["KeyId"])
        return {
            "key_id": meta["KeyId"], "key_arn": meta["Arn"], "alias": self.alias(ctx), "key_state": meta["KeyState"],
            "rotation_enabled": False, "policy_sha256": policy_digest(policy),
        }

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        kms, key_id = aws.client(ctx, "kms"), out["key_id"]
        if out["key_state"] != "Enabled":
            ctx.wait(
                lambda: kms.describe_key(KeyId=key_id)["KeyMetadata"], status_of=lambda m: m["KeyState"], target={"Enabled"},
                failure=_UNUSABLE, detail_of=_unusable, what=f"KMS key {key_id}",
            )
        if out.get("alias") is None:
            self._name(ctx, kms, key_id)
        policy = self.policy(ctx, ctx.out(self.role_arn) if self.role_arn else None)
        if out.get("policy_sha256") != policy_digest(policy):
            ctx.call(lambda: kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy)), f"{self.id} key policy")
        if not out.get("rotation_enabled"):
            ctx.call(lambda: kms.enable_key_rotation(KeyId=key_id), f"{self.id} rotation")
        return {**out, "alias": self.alias(ctx), "key_state": "Enabled", "rotation_enabled": True, "policy_sha256": policy_digest(policy)}

    def _name(self, ctx: Context, kms: Any, key_id: str) -> None:
        alias = self.alias(ctx)
        try:
            ctx.call(lambda: kms.create_alias(AliasName=alias, TargetKeyId=key_id), f"{self.id} alias")
        except Exception as exc:
            if error_code(exc) != "AlreadyExistsException":
                raise
            target = _describe(kms, alias)
            if target is None or target["KeyId"] != key_id:
                raise OwnershipConflict(f"KMS alias {alias} names another key than this deployment's {key_id}; delete that alias") from None

    # teardown --------------------------------------------------------------------------------------
    def delete(self, ctx: Context, out: Outputs) -> None:
        kms, key_id, alias = aws.client(ctx, "kms"), out["key_id"], self.alias(ctx)
        # The alias only if it still names our key (a key gone for good is NotFound: done).
        names = [a["AliasName"] for a in kms.list_aliases(KeyId=key_id).get("Aliases", [])]
        if alias in names:
            try:
                kms.delete_alias(AliasName=alias)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
        try:
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=self.deletion_window_days)
        except Exception as exc:
            # Already scheduled (a retried teardown, or a lost response): that is what we wanted.
            if error_code(exc) != "KMSInvalidStateException" or (_describe(kms, key_id) or {}).get("KeyState") != "PendingDeletion":
                raise

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        kms, key_id = aws.client(ctx, "kms"), out["key_id"]
        seen: dict[str, Any] = {}

        def read() -> dict[str, Any]:
            seen.update(kms.describe_key(KeyId=key_id)["KeyMetadata"])
            return seen

        # KMS deletes a key only after its waiting period: pending deletion is as gone as a key gets.
        ctx.wait_gone(read, what=f"KMS key {key_id}", status_of=lambda m: m["KeyState"], gone_states={"PendingDeletion"})
        if seen.get("KeyState") == "PendingDeletion":
            record_pending_deletion(ctx, self.id, seen, self.deletion_window_days)


def record_pending_deletion(ctx: Context, step_id: str, meta: dict[str, Any], window_days: int) -> None:
    """Say in the state file (its facts) which key is pending deletion, and until when."""
    date = meta.get("DeletionDate")
    ctx.remember(f"pending_deletion:{step_id}", {
        "kind": "kms.key", "key_id": meta["KeyId"], "key_arn": meta["Arn"], "key_state": "PendingDeletion",
        "deletion_date": date.isoformat() if hasattr(date, "isoformat") else date, "window_days": window_days,
    })


class ExistingKey(Step):
    """The user's key ([encryption.existing]): read by ARN, never modified, never deleted."""

    kind = "kms.key"
    external = True
    produces = ("key_id", "key_arn", "alias", "key_state")

    def __init__(self, step_id: str, key_arn: str):
        super().__init__(step_id)
        self.key_arn = key_arn

    def find(self, ctx: Context) -> Outputs | None:
        kms = aws.client(ctx, "kms")
        meta = _describe(kms, self.key_arn)
        if meta is None:
            return None
        try:
            aliases = [a["AliasName"] for a in kms.list_aliases(KeyId=meta["KeyId"]).get("Aliases", [])]
        except Exception as exc:  # a key of another account: its aliases are not ours to list
            if error_code(exc) not in _SKIPPED:
                raise
            aliases = []
        alias = next((a for a in aliases if not a.startswith("alias/aws/")), None)
        return {"key_id": meta["KeyId"], "key_arn": meta["Arn"], "alias": alias, "key_state": meta["KeyState"]}

    def create(self, ctx: Context) -> Outputs:
        # Preflight checked it before the run; reaching here means it vanished since.
        raise ResourceFailed(f"existing KMS key {self.key_arn}", "missing", "it no longer exists; provision never creates what the spec names as existing")

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        if out["key_state"] != "Enabled":
            raise ResourceFailed(f"existing KMS key {self.key_arn}", out["key_state"], _unusable(out | {"KeyState": out["key_state"]}))
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        raise AssertionError("the engine never deletes external resources")
