"""The workspace root bucket: private, versioned, encrypted (SSE-S3, or SSE-KMS with a customer-managed
key), owner-enforced, TLS only; readable and writable by Databricks until the workspace exists, then
narrowed to SRA's restrictive policy (writes only under the workspace's own prefixes)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code, is_not_found
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.errors import OwnershipConflict, ResourceFailed
from provision.orchestrator.drift import Drift, fields
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Ref, Step

# The name Databricks gives each region in root bucket paths (`<name>-prod/<workspace id>/...`): SRA's
# region_name_config (terraform-databricks-sra aws/tf/variables.tf), the regions Databricks supports.
ROOT_BUCKET_REGION_NAMES: dict[str, str] = {
    "ap-northeast-1": "tokyo", "ap-northeast-2": "seoul", "ap-south-1": "mumbai", "ap-southeast-1": "singapore",
    "ap-southeast-2": "sydney", "ap-southeast-3": "jakarta", "ca-central-1": "canada", "eu-central-1": "frankfurt",
    "eu-west-1": "ireland", "eu-west-2": "london", "eu-west-3": "paris", "sa-east-1": "saopaulo",
    "us-east-1": "nvirginia", "us-east-2": "ohio", "us-west-1": "oregon", "us-west-2": "oregon",
}
# The digest of the settings RootBucket last applied, kept in a bucket tag so a rerun converges a bucket of an
# earlier version (no versioning, another encryption) at no extra call.
DIGEST_TAG = "provision:digest"

S3_DATA_ACTIONS = [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    "s3:GetBucketLocation",
]


def _deny_insecure_transport(resources: list[str]) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resources,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def _databricks_grant(sid: str, actions: list[str], resources: list[str], databricks_account_id: str) -> dict[str, Any]:
    return {
        "Sid": sid, "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"},
        "Action": actions, "Resource": resources,
        "Condition": {"StringEquals": {"aws:PrincipalTag/DatabricksAccountId": databricks_account_id}},
    }


def root_bucket_policy(bucket: str, databricks_account_id: str) -> dict[str, Any]:
    """Equivalent of the provider's databricks_aws_bucket_policy (with databricks_e2_account_id), plus a
    deny of any request not made over TLS: what Databricks needs before the workspace exists."""
    resources = [f"arn:aws:s3:::{bucket}/*", f"arn:aws:s3:::{bucket}"]
    return {
        "Version": "2012-10-17",
        "Statement": [_databricks_grant("GrantDatabricksAccess", S3_DATA_ACTIONS, resources, databricks_account_id), _deny_insecure_transport(resources)],
    }


def workspace_prefixes(bucket: str, region: str, workspace_id: int | str) -> list[str]:
    """Where a workspace writes in its root bucket (SRA's restrictive_root_bucket)."""
    name = ROOT_BUCKET_REGION_NAMES[region]
    return [
        f"arn:aws:s3:::{bucket}/{name}-prod/0_databricks_dev",
        f"arn:aws:s3:::{bucket}/ephemeral/{name}-prod/{workspace_id}/*",
        f"arn:aws:s3:::{bucket}/{name}-prod/{workspace_id}.*/*",
        f"arn:aws:s3:::{bucket}/{name}-prod/{workspace_id}/*",
    ]


def restrictive_root_bucket_policy(bucket: str, databricks_account_id: str, region: str, workspace_id: int | str) -> dict[str, Any]:
    """SRA's policy once the workspace exists: Databricks reads the bucket, writes and deletes only under the
    workspace's own prefixes, and nothing goes over plain HTTP."""
    resources = [f"arn:aws:s3:::{bucket}/*", f"arn:aws:s3:::{bucket}"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            _databricks_grant("GrantDatabricksReadAccess", ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketLocation"], resources, databricks_account_id),
            _databricks_grant("GrantDatabricksWriteAccess", ["s3:PutObject", "s3:DeleteObject"], workspace_prefixes(bucket, region, workspace_id), databricks_account_id),
            _deny_insecure_transport(resources),
        ],
    }


def _bucket_policy(s3: Any, bucket: str) -> dict[str, Any] | None:
    try:
        return json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except Exception as exc:
        if error_code(exc) == "NoSuchBucketPolicy":
            return None
        raise


def _digest(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def _absent_as_none(read: Any, *codes: str) -> Any:
    """A read whose "not configured" error means: no such setting."""
    try:
        return read()
    except Exception as exc:
        if error_code(exc) in codes:
            return None
        raise


def live_settings(s3: Any, bucket: str) -> dict[str, Any]:
    """What the bucket has of the settings RootBucket applies, in the terms `bucket_drift` compares (four reads)."""
    block = _absent_as_none(lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"], "NoSuchPublicAccessBlockConfiguration")
    ownership = _absent_as_none(lambda: s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"], "OwnershipControlsNotFoundError")
    encryption = _absent_as_none(
        lambda: s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"], "ServerSideEncryptionConfigurationNotFoundError",
    )
    return {
        "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status") or "Disabled",
        "encryption": _encryption_of(encryption),
        "public_access_block": "all" if block and all(block.get(k) for k in _BLOCKS) else ",".join(k for k in _BLOCKS if (block or {}).get(k)) or "none",
        "ownership": (ownership or [{}])[0].get("ObjectOwnership"),
    }


_BLOCKS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def _encryption_of(rules: list[dict[str, Any]] | None) -> str | None:
    """A bucket's default encryption as one short string: the algorithm, its key, and whether the bucket key is on."""
    if not rules:
        return None
    default = rules[0].get("ApplyServerSideEncryptionByDefault") or {}
    key = f" {default['KMSMasterKeyID']}" if default.get("KMSMasterKeyID") else ""
    return f"{default.get('SSEAlgorithm')}{key}, bucket key {'on' if rules[0].get('BucketKeyEnabled') else 'off'}"


def create_bucket(ctx: Context, bucket: str) -> None:
    """An owner-enforced bucket in the deployment's region. Already ours (a retried create whose first response
    was lost) is a success: the caller's wait_ready converges it."""
    args: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
    if ctx.spec.region != "us-east-1":
        args["CreateBucketConfiguration"] = {"LocationConstraint": ctx.spec.region}
    try:
        aws.client(ctx, "s3").create_bucket(**args)
    except Exception as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise


class RootBucket(Step):
    """The bucket name is deterministic, so it is found by name. S3 cannot tag a bucket in the create call,
    so an untagged bucket of that name is adopted only if this deployment attempted to create it (a crash
    between create and tagging); anyone else's bucket is refused, never modified, never deleted."""

    kind = "s3.bucket"
    produces = ("bucket", "arn", "digest")

    def __init__(self, step_id: str, bucket_name: str, kms_key: str | None = None):
        """kms_key: a step producing `key_arn`, for SSE-KMS with that key (else SSE-S3)."""
        super().__init__(step_id, needs=(kms_key,) if kms_key else ())
        self.bucket_name = bucket_name
        self.key_arn = Ref(kms_key, "key_arn") if kms_key else None

    def _encryption(self, ctx: Context) -> dict[str, Any]:
        if self.key_arn is None:
            default: dict[str, str] = {"SSEAlgorithm": "AES256"}
        else:
            default = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": ctx.out(self.key_arn)}
        # The bucket key cuts KMS requests (and their cost) by caching a bucket-level data key.
        return {"Rules": [{"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": True}]}

    def _settings_digest(self, ctx: Context) -> str:
        return _digest({"versioning": "Enabled", "encryption": self._encryption(ctx), "public_access_block": "all", "ownership": "BucketOwnerEnforced"})

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found.get("digest") != self._settings_digest(ctx)

    # The digest tag says what provision last applied, not what the bucket has now: drift reads the settings (and
    # the region, which cannot change), so `up` checks it before changing anything.
    drift_before_up = True

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        s3, bucket = aws.client(ctx, "s3"), found["bucket"]
        region = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
        wanted = {"region": ctx.spec.region, "versioning": "Enabled", "encryption": _encryption_of(self._encryption(ctx)["Rules"]),
                  "public_access_block": "all", "ownership": "BucketOwnerEnforced"}
        drifts = fields(wanted, {"region": region, **live_settings(s3, bucket)}, replaced=("region",))
        if not drifts and self.needs_converge(ctx, found):
            drifts.append(Drift("settings digest", self._settings_digest(ctx), found.get("digest")))
        return drifts

    def find(self, ctx: Context) -> Outputs | None:
        s3 = aws.client(ctx, "s3")
        bucket = ctx.name_of(self.id, self.bucket_name)  # an imported bucket keeps its name (fact `names`)
        # One call in the steady state: the tags say "it exists", "it is ours" and what was last applied.
        try:
            tags = self._tags(s3, bucket)
            owner = tags.get(TAG_DEPLOYMENT)
        except Exception as exc:
            if is_not_found(exc):
                return None
            if error_code(exc) in ("403", "AccessDenied"):
                raise OwnershipConflict(f"bucket {bucket} exists and belongs to another AWS account; set storage.bucket_name") from None
            raise
        if owner != ctx.deployment and not (owner is None and self.id in ctx.claimed):
            whose = f"deployment {owner!r}" if owner else "no provision deployment (it is not tagged)"
            raise OwnershipConflict(f"bucket {bucket} already exists and belongs to {whose}; choose another storage.bucket_name")
        if owner is None:  # adopting our own untagged create: it must at least be in the deployment's region
            region = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
            if region != ctx.spec.region:
                raise OwnershipConflict(f"bucket {bucket} is in {region}, not {ctx.spec.region}; a workspace's root bucket must be in its region")
        return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "digest": tags.get(DIGEST_TAG)}

    @staticmethod
    def _tags(s3: Any, bucket: str) -> dict[str, str]:
        try:
            tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
        except Exception as exc:
            if error_code(exc) == "NoSuchTagSet":
                return {}
            raise
        return {t["Key"]: t["Value"] for t in tags}

    def create(self, ctx: Context) -> Outputs:
        bucket = ctx.name_of(self.id, self.bucket_name)
        create_bucket(ctx, bucket)
        return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        s3, bucket = aws.client(ctx, "s3"), out["bucket"]
        digest = self._settings_digest(ctx)
        # Tags first: from here on the bucket is recognisably ours. Each put is idempotent, so
        # re-applying them converges a bucket someone changed by hand. The digest tag comes last, once
        # everything it stands for is applied.
        settings = [
            ("tags", lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": aws.tags(ctx, self.id)})),
            ("public access block", lambda: s3.put_public_access_block(
                Bucket=bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True, "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
                },
            )),
            ("ownership", lambda: s3.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            )),
            # Versioned, so an overwritten or deleted object can be recovered (teardown removes every version).
            ("versioning", lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})),
            ("encryption", lambda: s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=self._encryption(ctx))),
            ("policy", lambda: self._initial_policy(ctx, s3, bucket)),
            ("digest", lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [*aws.tags(ctx, self.id), {"Key": DIGEST_TAG, "Value": digest}]})),
        ]
        for what, apply in settings:
            ctx.call(apply, f"{self.id} {what}")
        return {**out, "digest": digest}

    def _initial_policy(self, ctx: Context, s3: Any, bucket: str) -> None:
        """Databricks' access until the workspace exists, put only on a bucket with no policy: once the
        workspace exists RootBucketPolicy narrows it, and re-putting this one would widen it again."""
        if _bucket_policy(s3, bucket) is None:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(root_bucket_policy(bucket, ctx.spec.databricks.account_id)))

    def delete(self, ctx: Context, out: Outputs) -> None:
        s3, bucket = aws.client(ctx, "s3"), out["bucket"]
        # The root bucket belongs to the deployment (Databricks writes workspace data to it): teardown
        # empties every version before deleting.
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if objects:
                result = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                errors = result.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise ResourceFailed(
                        f"emptying bucket {bucket}", "refused",
                        f"{len(errors)} objects not deleted, e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                    )
        s3.delete_bucket(Bucket=bucket)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        s3 = aws.client(ctx, "s3")
        ctx.wait_gone(lambda: s3.head_bucket(Bucket=out["bucket"]), what=f"bucket {out['bucket']}")


class RootBucketPolicy(Step):
    """The root bucket's restrictive policy (SRA's), once the workspace id is known, converged in place: a
    rerun compares the live policy with it. Teardown leaves the policy to the bucket step, which deletes
    the bucket with it."""

    kind = "s3.bucket_policy"
    produces = ("bucket", "workspace_id", "digest")

    def __init__(self, step_id: str, *, bucket: str, workspace: str):
        super().__init__(step_id, needs=(bucket, workspace))
        self.bucket, self.workspace_id = Ref(bucket, "bucket"), Ref(workspace, "workspace_id")

    def document(self, ctx: Context) -> dict[str, Any]:
        return restrictive_root_bucket_policy(ctx.out(self.bucket), ctx.spec.databricks.account_id, ctx.spec.region, ctx.out(self.workspace_id))

    def find(self, ctx: Context) -> Outputs | None:
        bucket, workspace_id = ctx.out_if_known(self.bucket), ctx.out_if_known(self.workspace_id)
        if bucket is None or workspace_id is None:  # plan, before the bucket or the workspace exists
            return None
        live = _bucket_policy(aws.client(ctx, "s3"), bucket)
        # No policy, or the bucket's first one (broad, until the workspace exists), is not this step's resource yet:
        # `create` puts it. Any other policy is ours, drifted if its digest differs (a rerun converges it).
        if live is None or _digest(live) == _digest(root_bucket_policy(bucket, ctx.spec.databricks.account_id)):
            return None
        return {"bucket": bucket, "workspace_id": workspace_id, "digest": _digest(live)}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found.get("digest") != _digest(self.document(ctx))

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        wanted = _digest(self.document(ctx))
        return [] if found.get("digest") == wanted else [Drift("policy (digest)", wanted, found.get("digest"))]

    def create(self, ctx: Context) -> Outputs:
        return self._put(ctx)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        return out if out.get("digest") == _digest(self.document(ctx)) else self._put(ctx)

    def _put(self, ctx: Context) -> Outputs:
        bucket, document = ctx.out(self.bucket), self.document(ctx)
        ctx.call(lambda: aws.client(ctx, "s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(document)), f"{self.id} put")
        return {"bucket": bucket, "workspace_id": ctx.out(self.workspace_id), "digest": _digest(document)}

    def delete(self, ctx: Context, out: Outputs) -> None:
        return None
