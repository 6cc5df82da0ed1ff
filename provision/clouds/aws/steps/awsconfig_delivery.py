"""What this deployment's own AWS Config recorder needs: its delivery bucket and its IAM role.

Both are made only when the region has no recorder of someone else's (awsconfig.py): with an adopted
recorder, `find` reports them as `adopted` (nothing made, nothing deleted), and the adopted recorder
keeps its own role and channel.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code, is_not_found
from provision.clouds.aws.steps.awsconfig import foreign_recorder
from provision.clouds.aws.steps.iam import (
    delete_role,
    document,
    find_role,
    wait_role_gone,
)
from provision.clouds.aws.steps.storage import create_bucket
from provision.errors import OwnershipConflict, ResourceFailed
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Ref, Step

CONFIG_MANAGED_POLICY = "arn:aws:iam::aws:policy/service-role/AWS_ConfigRole"
_ADOPTED_BUCKET = {"bucket": "", "arn": "", "adopted": True}
_ADOPTED_ROLE = {"role_name": "", "role_arn": "", "adopted": True}


def config_bucket_name(name: str, account_id: str, region: str) -> str:
    """Deterministic and globally unlikely to collide, like the root bucket's derived name."""
    digest = hashlib.sha256(f"{account_id}/{region}/{name}/config".encode()).hexdigest()[:8]
    return f"{name}-config-{digest}"


def delivery_prefix(bucket: str, account_id: str) -> str:
    """Where Config writes (no key prefix): AWSLogs/<account>/Config/..."""
    return f"arn:aws:s3:::{bucket}/AWSLogs/{account_id}/Config/*"


def config_bucket_policy(bucket: str, account_id: str) -> dict[str, Any]:
    """The policy AWS documents for a Config delivery bucket ("Permissions for the Amazon S3 Bucket for the
    AWS Config Delivery Channel"), each grant held to this account by aws:SourceAccount, plus a deny of any
    request not made over TLS."""
    arn = f"arn:aws:s3:::{bucket}"
    source = {"AWS:SourceAccount": account_id}
    config = {"Service": "config.amazonaws.com"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AWSConfigBucketPermissionsCheck", "Effect": "Allow", "Principal": config, "Action": "s3:GetBucketAcl",
             "Resource": arn, "Condition": {"StringEquals": source}},
            {"Sid": "AWSConfigBucketExistenceCheck", "Effect": "Allow", "Principal": config, "Action": "s3:ListBucket",
             "Resource": arn, "Condition": {"StringEquals": source}},
            {"Sid": "AWSConfigBucketDelivery", "Effect": "Allow", "Principal": config, "Action": "s3:PutObject",
             "Resource": delivery_prefix(bucket, account_id),
             "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", **source}}},
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    }


def config_trust_policy(account_id: str) -> dict[str, Any]:
    """Only AWS Config may assume the role, and only on behalf of this account (confused deputy)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "config.amazonaws.com"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"AWS:SourceAccount": account_id}},
        }],
    }


def config_delivery_policy(bucket: str, account_id: str) -> dict[str, Any]:
    """Write access to our delivery bucket only, as AWS documents the role's S3 policy."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:PutObjectAcl"], "Resource": delivery_prefix(bucket, account_id),
             "Condition": {"StringLike": {"s3:x-amz-acl": "bucket-owner-full-control"}}},
            {"Effect": "Allow", "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{bucket}"},
        ],
    }



class ConfigBucket(Step):
    """Private, owner-enforced, encrypted, versioned, TLS only. Found by its deterministic name; S3 cannot tag in the
    create call, so an untagged bucket of that name is adopted only after our own create attempt."""

    kind = "s3.bucket"
    produces = ("bucket", "arn", "adopted")

    def bucket_name(self, ctx: Context) -> str:
        return config_bucket_name(ctx.deployment, aws.account_id(ctx), ctx.spec.region)

    def find(self, ctx: Context) -> Outputs | None:
        s3, bucket = aws.client(ctx, "s3"), self.bucket_name(ctx)
        try:
            tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
        except Exception as exc:
            code = error_code(exc)
            if code in ("403", "AccessDenied"):
                raise OwnershipConflict(f"bucket {bucket} exists and belongs to another AWS account") from None
            if code == "NoSuchTagSet":
                tags = []
            elif is_not_found(exc):
                return dict(_ADOPTED_BUCKET) if foreign_recorder(ctx) else None
            else:
                raise
        owner = next((t["Value"] for t in tags if t["Key"] == TAG_DEPLOYMENT), None)
        if owner != ctx.deployment and not (owner is None and self.id in ctx.claimed):
            raise OwnershipConflict(f"bucket {bucket} already exists and belongs to {owner or 'no provision deployment (it is not tagged)'}")
        return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "adopted": False}

    def create(self, ctx: Context) -> Outputs:
        bucket = self.bucket_name(ctx)
        create_bucket(ctx, bucket)
        return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "adopted": False}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        if out["adopted"]:
            return out
        s3, bucket, account = aws.client(ctx, "s3"), out["bucket"], aws.account_id(ctx)
        # Tags first, so the bucket is recognisably ours from here on; each put converges.
        settings = [
            ("tags", lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": aws.tags(ctx, self.id)})),
            ("public access block", lambda: s3.put_public_access_block(
                Bucket=bucket,
                PublicAccessBlockConfiguration={"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
            )),
            ("ownership", lambda: s3.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            )),
            ("encryption", lambda: s3.put_bucket_encryption(
                Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            )),
            # Versioned, as the s3-bucket-versioning-enabled rule asks of every bucket (this one too).
            ("versioning", lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})),
            ("policy", lambda: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(config_bucket_policy(bucket, account)))),
        ]
        for what, apply in settings:
            ctx.call(apply, f"{self.id} {what}")
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        if out.get("adopted") or not out.get("bucket"):
            return
        s3, bucket = aws.client(ctx, "s3"), out["bucket"]
        # Config's snapshots and history are the deployment's own: emptied with the bucket.
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if objects:
                errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True}).get("Errors", [])
                if errors:
                    raise ResourceFailed(f"emptying bucket {bucket}", "refused", f"{len(errors)} objects not deleted, e.g. {errors[0].get('Key')}: {errors[0].get('Code')}")
        s3.delete_bucket(Bucket=bucket)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        if out.get("adopted") or not out.get("bucket"):
            return
        s3 = aws.client(ctx, "s3")
        ctx.wait_gone(lambda: s3.head_bucket(Bucket=out["bucket"]), what=f"bucket {out['bucket']}")


class ConfigRole(Step):
    """The role our recorder delivers and reads with: AWS's managed AWS_ConfigRole policy for the reads,
    an inline policy for writes to our delivery bucket only."""

    kind = "iam.role"
    produces = ("role_name", "role_arn", "adopted")

    def __init__(self, step_id: str, bucket: str):
        super().__init__(step_id, needs=(bucket,))
        self.bucket = Ref(bucket, "bucket")

    def role_name(self, ctx: Context) -> str:
        return f"{ctx.deployment}-config"

    def find(self, ctx: Context) -> Outputs | None:
        role = find_role(ctx, self.role_name(ctx))
        if role is None:
            return dict(_ADOPTED_ROLE) if foreign_recorder(ctx) else None
        return {"role_name": role["RoleName"], "role_arn": role["Arn"], "adopted": False}

    def create(self, ctx: Context) -> Outputs:
        role = aws.client(ctx, "iam").create_role(
            RoleName=self.role_name(ctx),
            AssumeRolePolicyDocument=json.dumps(config_trust_policy(aws.account_id(ctx))),
            Description=f"AWS Config recorder of deployment {ctx.deployment}",
            Tags=aws.tags(ctx, self.id),
        )["Role"]
        return {"role_name": role["RoleName"], "role_arn": role["Arn"], "adopted": False}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        if out["adopted"]:
            return out
        iam, name, account = aws.client(ctx, "iam"), out["role_name"], aws.account_id(ctx)
        bucket = ctx.out(self.bucket)
        if not bucket:  # the bucket step adopted (another recorder existed) while we made a role
            raise ResourceFailed(f"IAM role {name}", "without a delivery bucket", "the region's AWS Config recorder changed during the run; run `up` again")
        # Converging phase: a NotFound for the new role is IAM propagating, retried with backoff.
        role = ctx.call(lambda: iam.get_role(RoleName=name)["Role"], f"{self.id} read")
        trust = config_trust_policy(account)
        if document(role.get("AssumeRolePolicyDocument")) != trust:
            ctx.call(lambda: iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust)), f"{self.id} trust policy")
        ctx.call(lambda: iam.attach_role_policy(RoleName=name, PolicyArn=CONFIG_MANAGED_POLICY), f"{self.id} managed policy")
        ctx.call(
            lambda: iam.put_role_policy(RoleName=name, PolicyName=f"{name}-delivery", PolicyDocument=json.dumps(config_delivery_policy(bucket, account))),
            f"{self.id} delivery policy",
        )
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        if out.get("adopted") or not out.get("role_name"):
            return
        delete_role(ctx, out["role_name"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        if out.get("adopted") or not out.get("role_name"):
            return
        wait_role_gone(ctx, out["role_name"])
