"""The workspace root bucket: private, encrypted, owner-enforced, readable by Databricks, TLS only."""

from __future__ import annotations

import json
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code, is_not_found
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.errors import OwnershipConflict, ResourceFailed
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Step

S3_DATA_ACTIONS = [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    "s3:GetBucketLocation",
]


def root_bucket_policy(bucket: str, databricks_account_id: str) -> dict[str, Any]:
    """Equivalent of the provider's databricks_aws_bucket_policy (with databricks_e2_account_id), plus a
    deny of any request not made over TLS."""
    resources = [f"arn:aws:s3:::{bucket}/*", f"arn:aws:s3:::{bucket}"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GrantDatabricksAccess",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"},
                "Action": S3_DATA_ACTIONS,
                "Resource": resources,
                "Condition": {"StringEquals": {"aws:PrincipalTag/DatabricksAccountId": databricks_account_id}},
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": resources,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


class RootBucket(Step):
    """The bucket name is deterministic, so it is found by name. S3 cannot tag a bucket in the create call,
    so an untagged bucket of that name is adopted only if this deployment attempted to create it (a crash
    between create and tagging); anyone else's bucket is refused, never modified, never deleted."""

    kind = "s3.bucket"
    produces = ("bucket", "arn")

    def __init__(self, step_id: str, bucket_name: str):
        super().__init__(step_id)
        self.bucket_name = bucket_name

    def find(self, ctx: Context) -> Outputs | None:
        s3 = aws.client(ctx, "s3")
        bucket = self.bucket_name
        # One call in the steady state: the tags say both "it exists" and "it is ours".
        try:
            owner = self._owner_tag(s3, bucket)
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
        return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}

    @staticmethod
    def _owner_tag(s3: Any, bucket: str) -> str | None:
        try:
            tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
        except Exception as exc:
            if error_code(exc) == "NoSuchTagSet":
                return None
            raise
        return next((t["Value"] for t in tags if t["Key"] == TAG_DEPLOYMENT), None)

    def create(self, ctx: Context) -> Outputs:
        bucket = self.bucket_name
        args: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
        if ctx.spec.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": ctx.spec.region}
        try:
            aws.client(ctx, "s3").create_bucket(**args)
        except Exception as exc:
            # Already ours (a retried create whose first response was lost): carry on and converge.
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise
        return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        s3, bucket = aws.client(ctx, "s3"), out["bucket"]
        # Tags first: from here on the bucket is recognisably ours. Each put is idempotent, so
        # re-applying them converges a bucket someone changed by hand.
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
            ("encryption", lambda: s3.put_bucket_encryption(
                Bucket=bucket,
                ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]},
            )),
            ("policy", lambda: s3.put_bucket_policy(
                Bucket=bucket, Policy=json.dumps(root_bucket_policy(bucket, ctx.spec.databricks.account_id)),
            )),
        ]
        for what, apply in settings:
            ctx.call(apply, f"{self.id} {what}")
        return out

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
