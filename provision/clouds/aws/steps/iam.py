"""The cross-account IAM role Databricks assumes to launch clusters in the customer-managed VPC."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import is_not_found
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.errors import OwnershipConflict
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Step

# "Customer-managed VPC with default restrictions" policy from the Databricks docs (the provider's
# databricks_aws_crossaccount_policy with policy_type = "customer"): no VPC, subnet, NAT or gateway
# management, since we own those.
CUSTOMER_VPC_EC2_ACTIONS = [
    "ec2:AssignPrivateIpAddresses",
    "ec2:AssociateIamInstanceProfile",
    "ec2:AttachVolume",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CancelSpotInstanceRequests",
    "ec2:CreateFleet",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateLaunchTemplateVersion",
    "ec2:CreateTags",
    "ec2:CreateVolume",
    "ec2:DeleteFleets",
    "ec2:DeleteLaunchTemplate",
    "ec2:DeleteLaunchTemplateVersions",
    "ec2:DeleteTags",
    "ec2:DeleteVolume",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeFleetHistory",
    "ec2:DescribeFleetInstances",
    "ec2:DescribeFleets",
    "ec2:DescribeIamInstanceProfileAssociations",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstances",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeNatGateways",
    "ec2:DescribeNetworkAcls",
    "ec2:DescribePrefixLists",
    "ec2:DescribeReservedInstancesOfferings",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSpotInstanceRequests",
    "ec2:DescribeSpotPriceHistory",
    "ec2:DescribeSubnets",
    "ec2:DescribeVolumes",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcs",
    "ec2:DetachVolume",
    "ec2:DisassociateIamInstanceProfile",
    "ec2:GetLaunchTemplateData",
    "ec2:GetSpotPlacementScores",
    "ec2:ModifyFleet",
    "ec2:ModifyLaunchTemplate",
    "ec2:ReplaceIamInstanceProfileAssociation",
    "ec2:RequestSpotInstances",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:RunInstances",
    "ec2:TerminateInstances",
]


def trust_policy(databricks_account_id: str) -> dict[str, Any]:
    """Only Databricks' AWS account may assume the role, and only for this Databricks account."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": databricks_account_id}},
            }
        ],
    }


def cross_account_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Stmt1403287045000", "Effect": "Allow", "Action": CUSTOMER_VPC_EC2_ACTIONS, "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": ["iam:CreateServiceLinkedRole", "iam:PutRolePolicy"],
                "Resource": "arn:aws:iam::*:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot",
                "Condition": {"StringLike": {"iam:AWSServiceName": "spot.amazonaws.com"}},
            },
        ],
    }


def _document(value: Any) -> Any:
    """IAM returns policy documents URL-encoded (boto3 decodes most; some endpoints don't)."""
    if isinstance(value, str):
        return json.loads(unquote(value))
    return value


class CrossAccountRole(Step):
    kind = "iam.role"
    produces = ("role_name", "role_arn")

    def role_name(self, ctx: Context) -> str:
        return f"{ctx.deployment}-crossaccount"

    def policy_name(self, ctx: Context) -> str:
        return f"{ctx.deployment}-crossaccount-policy"

    def find(self, ctx: Context) -> Outputs | None:
        iam = aws.client(ctx, "iam")
        try:
            role = iam.get_role(RoleName=self.role_name(ctx))["Role"]
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
        if tags.get(TAG_DEPLOYMENT) != ctx.deployment:
            raise OwnershipConflict(
                f"IAM role {role['RoleName']} exists but is not tagged {TAG_DEPLOYMENT}={ctx.deployment}; "
                "rename the deployment or remove the role"
            )
        return {"role_name": role["RoleName"], "role_arn": role["Arn"]}

    def create(self, ctx: Context) -> Outputs:
        # Tags go in the create call, so ownership is recorded atomically with the role.
        role = aws.client(ctx, "iam").create_role(
            RoleName=self.role_name(ctx),
            AssumeRolePolicyDocument=json.dumps(trust_policy(ctx.spec.databricks.account_id)),
            Description=f"Databricks cross-account role of deployment {ctx.deployment}",
            Tags=aws.tags(ctx, self.id),
        )["Role"]
        return {"role_name": role["RoleName"], "role_arn": role["Arn"]}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        iam, name = aws.client(ctx, "iam"), out["role_name"]
        # IAM is eventually consistent: the engine runs this in its converging phase, where a NotFound
        # for the new role is retried with backoff rather than failing.
        role = ctx.call(lambda: iam.get_role(RoleName=name)["Role"], f"{self.id} read")
        wanted = trust_policy(ctx.spec.databricks.account_id)
        if _document(role.get("AssumeRolePolicyDocument")) != wanted:
            ctx.call(lambda: iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(wanted)), f"{self.id} trust policy")
        # put_role_policy is idempotent; the inline policy is what Databricks needs to launch clusters.
        ctx.call(
            lambda: iam.put_role_policy(RoleName=name, PolicyName=self.policy_name(ctx), PolicyDocument=json.dumps(cross_account_policy())),
            f"{self.id} inline policy",
        )
        # Propagation is not waited for here: the credentials step retries until Databricks can assume it.
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        iam, name = aws.client(ctx, "iam"), out["role_name"]
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        iam.delete_role(RoleName=name)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        iam = aws.client(ctx, "iam")
        ctx.wait_gone(lambda: iam.get_role(RoleName=out["role_name"]), what=f"IAM role {out['role_name']}")
