"""The workspace root bucket: private, encrypted, owner-enforced, readable by Databricks, TLS only."""

from __future__ import annotations

import json
from typing import Any

from provision.orchestrator.errors import OwnershipConflict
from provision.sandbox.settings import DATABRICKS_AWS_ACCOUNT_ID
from provision.steps.base import TAG_DEPLOYMENT, Context, Outputs, Step

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
    kind = "s3.bucket"

    def bucket(self, ctx: Context) -> str:
        return ctx.spec.storage.bucket_name

    def find(self, ctx: Context) -> Outputs | None:
        s3 = ctx.aws("s3")
        bucket = self.bucket(ctx)
        try:
            s3.head_bucket(Bucket=bucket)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("404", "NoSuchBucket", "NotFound"):
                return None
            if code in ("403", "AccessDenied"):
                raise OwnershipConflict(f"bucket {bucket} exists and belongs to another AWS account; set storage.bucket_name") from None
            raise
        # The name is deterministic, but a bucket tagged for another deployment is not ours to adopt.
        owner = self._owner_tag(s3, bucket)
        if owner not in (None, ctx.deployment):
            raise OwnershipConflict(f"bucket {bucket} belongs to deployment {owner!r}, not {ctx.deployment!r}")
        return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}

    @staticmethod
    def _owner_tag(s3: Any, bucket: str) -> str | None:
        try:
            tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "NoSuchTagSet":
                return None
            raise
        return next((t["Value"] for t in tags if t["Key"] == TAG_DEPLOYMENT), None)

    def create(self, ctx: Context) -> Outputs:
        bucket = self.bucket(ctx)
        args: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
        if ctx.spec.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": ctx.spec.region}
        try:
            ctx.aws("s3").create_bucket(**args)
        except Exception as exc:
            # Already ours (a retried create): re-read rather than fail.
            if getattr(exc, "response", {}).get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
        return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        s3, bucket = ctx.aws("s3"), out["bucket"]
        ctx.call(lambda: s3.get_waiter("bucket_exists").wait(Bucket=bucket, WaiterConfig={"Delay": 1, "MaxAttempts": 60}), f"{self.id} exists")
        settings = [
            ("tags", lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": ctx.tags(self.id)})),
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
        # Each put is idempotent, so re-applying them converges a bucket someone changed by hand.
        for what, apply in settings:
            ctx.call(apply, f"{self.id} {what}")
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        s3, bucket = ctx.aws("s3"), out["bucket"]
        # The root bucket belongs to the deployment: teardown empties it (every version) before deleting.
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket):
            objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if objects:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        s3 = ctx.aws("s3")
        ctx.wait_gone(lambda: s3.head_bucket(Bucket=out["bucket"]), what=f"bucket {out['bucket']}")
