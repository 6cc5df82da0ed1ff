"""Restrictive VPC endpoint policies: the S3 gateway endpoint and the STS / Kinesis interface endpoints.

The statements follow Databricks' security reference architecture (terraform-databricks-sra,
`aws/tf/privatelink.tf`: `s3_vpc_endpoint_policy`, `sts_vpc_endpoint_policy`, `kinesis_vpc_endpoint_policy`):
- S3: the workspace root bucket and Databricks' regional artifact, system-tables, sample-data and log buckets
  (`buckets.py`), each only for the principal (or resource) account SRA names; SRA's Unity Catalog catalog
  bucket is a bucket this tool does not make, so it is one of the spec's `s3_buckets` if the user has one.
  A gateway endpoint policy applies to every S3 call from the subnets, so the user's own data buckets
  (`network_security.s3_buckets`) get a statement of their own, for principals and buckets of this AWS account.
- STS: sessions for principals of this account, and for Databricks' account and its datasets reader.
- Kinesis: Databricks' account may put records to its own streams in the region (cluster telemetry).

Pure documents here; the `S3GatewayPolicy` / `StsPolicy` callables resolve them when a step runs (the
root bucket's name is another step's output, the account id a fact of the run).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from provision.clouds.aws import context as aws
from provision.clouds.aws.buckets import regional_buckets
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.orchestrator.step import Ref

if TYPE_CHECKING:
    from provision.orchestrator.step import Context

Policy = dict[str, Any]

# AWS's limit for a VPC endpoint policy, whitespace included (VPC endpoint quotas).
MAX_POLICY_CHARS = 20480

# What an endpoint has when it is created without a policy (and after ResetPolicy).
FULL_ACCESS: Policy = {"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}

_READ = ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketLocation"]
_READ_WRITE = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:GetBucketLocation"]
_LOG_WRITE = ["s3:PutObject", "s3:ListBucket", "s3:GetBucketLocation"]
# The user's data buckets: read-write plus multipart uploads (what a Unity Catalog storage credential needs).
_USER = [*_READ_WRITE, "s3:ListBucketMultipartUploads", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"]


def compact(policy: Policy) -> str:
    """The document as sent: compact JSON, so the 20,480-character limit goes as far as it can."""
    return json.dumps(policy, separators=(",", ":"))


def same(a: Any, b: Any) -> bool:
    """Whether two policy documents (dicts or JSON text) say the same thing, whatever their formatting."""
    return _parsed(a) == _parsed(b)


def digest(policy: Any) -> str:
    """A short fingerprint of what a policy document says (formatting aside), kept in a step's outputs."""
    canonical = json.dumps(_parsed(policy), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _parsed(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _arns(buckets: tuple[str, ...] | list[str]) -> list[str]:
    return [arn for bucket in buckets for arn in (f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*")]


def _s3(sid: str, actions: list[str], buckets: tuple[str, ...] | list[str], *keys: str, account: str) -> dict[str, Any]:
    """One statement on `buckets`, for calls where each condition key of `keys` is `account`."""
    return {
        "Sid": sid, "Effect": "Allow", "Principal": "*", "Action": actions, "Resource": _arns(buckets),
        "Condition": {"StringEquals": {key: account for key in keys}},
    }


def s3_gateway_policy(region: str, root_bucket: str, user_buckets: tuple[str, ...], account_id: str) -> Policy:
    """The S3 gateway endpoint's policy. The spec refuses a region without known Databricks buckets."""
    known = regional_buckets(region)
    if known is None:
        raise ValueError(f"no Databricks S3 buckets are known for region {region}")
    statements = [
        _s3("WorkspaceRootBucket", _READ_WRITE, [root_bucket], "aws:PrincipalAccount", account=DATABRICKS_AWS_ACCOUNT_ID),
        _s3("DatabricksArtifacts", _READ, known.artifacts, "aws:ResourceAccount", account=DATABRICKS_AWS_ACCOUNT_ID),
        _s3("DatabricksSystemTables", _READ, [known.system_tables], "aws:PrincipalAccount", account=DATABRICKS_AWS_ACCOUNT_ID),
        _s3("DatabricksSampleData", _READ, [known.sample_data], "aws:PrincipalAccount", account=DATABRICKS_AWS_ACCOUNT_ID),
        _s3("DatabricksLogs", _LOG_WRITE, [known.logs], "aws:PrincipalAccount", account=DATABRICKS_AWS_ACCOUNT_ID),
    ]
    if user_buckets:
        # Principals and buckets of this account only (SRA's catalog bucket statement): a listed name that
        # someone re-creates in another account is not reachable through the endpoint.
        statements.append(_s3("UserBuckets", _USER, user_buckets, "aws:PrincipalAccount", "aws:ResourceAccount", account=account_id))
    return {"Version": "2012-10-17", "Statement": statements}


def sts_policy(account_id: str) -> Policy:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountSessions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": ["sts:AssumeRole", "sts:GetAccessKeyInfo", "sts:GetSessionToken", "sts:DecodeAuthorizationMessage", "sts:TagSession"],
                "Resource": "*",
            },
            {
                "Sid": "DatabricksSessions", "Effect": "Allow",
                "Principal": {"AWS": [
                    f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:user/databricks-datasets-readonly-user-prod",
                    f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root",
                ]},
                "Action": ["sts:AssumeRole", "sts:GetSessionToken", "sts:TagSession"],
                "Resource": "*",
            },
        ],
    }


def kinesis_policy(region: str) -> Policy:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DatabricksStreams", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"},
                "Action": ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStream"],
                "Resource": f"arn:aws:kinesis:{region}:{DATABRICKS_AWS_ACCOUNT_ID}:stream/*",
            }
        ],
    }


# Resolved when the endpoint step runs -----------------------------------------------------------------


@dataclass(frozen=True)
class S3GatewayPolicy:
    """The S3 policy for the root bucket of step `root_bucket` (a bucket step's "bucket" output). The step
    holding it declares the Ref (it is a dataclass field) and needs `needs`."""

    root_bucket: Ref
    user_buckets: tuple[str, ...] = ()

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.root_bucket.step,)

    def __call__(self, ctx: Context) -> Policy:
        return s3_gateway_policy(ctx.spec.region, ctx.out(self.root_bucket), self.user_buckets, aws.account_id(ctx))


@dataclass(frozen=True)
class StsPolicy:
    needs: ClassVar[tuple[str, ...]] = ()

    def __call__(self, ctx: Context) -> Policy:
        return sts_policy(aws.account_id(ctx))
