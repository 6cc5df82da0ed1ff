"""The cross-account IAM role Databricks assumes to launch clusters in the customer-managed VPC, and its
inline policy, scoped to the workspace VPCs and security groups.

The role comes first, with its trust policy only, so IAM propagates it while the network builds; the
policy is a step of its own, written once the VPCs and groups it names exist, and before Databricks
validates the role (the credentials configuration)."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import unquote

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import is_not_found
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.errors import OwnershipConflict, ResourceFailed
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Ref, Step

# Databricks' AMI account in the commercial partition (SRA's databricks_ec2_image_account_id): clusters may
# boot only images it owns.
DATABRICKS_AMI_OWNER = "601306020600"
SPOT_SERVICE_ROLE = "arn:aws:iam::*:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"
# IAM's quota on a role's inline policies, counted without whitespace; PutRolePolicy refuses more (LimitExceeded).
INLINE_POLICY_LIMIT = 10_240
TAG_VENDOR = "Databricks"  # Databricks tags every EC2 resource it creates Vendor=Databricks

# What Databricks does on the EC2 resources it creates, by action, as SRA's credential.tf grants it (plus
# ReplaceIamInstanceProfileAssociation, which the provider's restricted policy grants for instance pools).
_CREATE = ["ec2:CreateFleet", "ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:CreateVolume", "ec2:RequestSpotInstances", "ec2:RunInstances"]
_CREATE_ACTIONS = ["CreateFleet", "CreateLaunchTemplate", "CreateVolume", "RequestSpotInstances", "RunInstances"]
_MODIFY = [
    "ec2:AssignPrivateIpAddresses", "ec2:AssociateIamInstanceProfile", "ec2:AttachVolume", "ec2:CancelSpotInstanceRequests",
    "ec2:CreateLaunchTemplateVersion", "ec2:DetachVolume", "ec2:DisassociateIamInstanceProfile", "ec2:ModifyFleet",
    "ec2:ModifyLaunchTemplate", "ec2:ReplaceIamInstanceProfileAssociation", "ec2:RequestSpotInstances", "ec2:CreateFleet",
    "ec2:CreateLaunchTemplate", "ec2:CreateVolume", "ec2:RunInstances",
]
_DELETE = ["ec2:DeleteFleets", "ec2:DeleteLaunchTemplate", "ec2:DeleteLaunchTemplateVersions", "ec2:DeleteTags", "ec2:DeleteVolume", "ec2:TerminateInstances"]
# Reads only: the one statement on Resource "*" (EC2 has no resource-level permissions for these).
_DESCRIBE = [
    "ec2:DescribeAvailabilityZones", "ec2:DescribeFleetHistory", "ec2:DescribeFleetInstances", "ec2:DescribeVpcAttribute",
    "ec2:DescribeFleets", "ec2:DescribeIamInstanceProfileAssociations", "ec2:DescribeInstanceStatus", "ec2:DescribeInstances",
    "ec2:DescribeInternetGateways", "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeNatGateways",
    "ec2:DescribeNetworkAcls", "ec2:DescribePrefixLists", "ec2:DescribeReservedInstancesOfferings", "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups", "ec2:DescribeSpotInstanceRequests", "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets",
    "ec2:DescribeVolumes", "ec2:DescribeVpcs", "ec2:GetSpotPlacementScores",
]
_SG_RULES = ["ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"]
_AMI_ACTIONS = ["ec2:RunInstances", "ec2:CreateFleet", "ec2:RequestSpotInstances"]


def cross_account_policy(*, region: str, account_id: str, vpc_ids: list[str], security_group_ids: list[str],
                         deployment: str | None = None) -> dict[str, Any]:
    """SRA's scoped cross-account policy (terraform-databricks-sra aws/tf credential.tf) for the workspace VPCs
    and their security groups (several with hub-and-spoke, which shares one role): creation only with the
    Vendor=Databricks request tag, changes and deletion only of resources that carry it, RunInstances only in
    those VPCs and with Databricks' images, security group rule edits only on those groups.

    IAM caps a role's inline policies at 10,240 characters, which the lists of VPCs and groups pass at about twenty
    workspaces. Past that (with `deployment` given), the same two statements name the subnets and groups by this
    deployment's ownership tag instead of one by one: every subnet and group of a hub-and-spoke is ours and carries
    it, so the scope is the same set, at a size that no longer grows with the spokes."""
    listed = _cross_account_policy(region, account_id, vpc_ids, security_group_ids, None)
    if deployment is None or len(policy_json(listed)) <= INLINE_POLICY_LIMIT:
        return listed
    return _cross_account_policy(region, account_id, vpc_ids, security_group_ids, deployment)


def _cross_account_policy(region: str, account_id: str, vpc_ids: list[str], security_group_ids: list[str],
                          by_tag: str | None) -> dict[str, Any]:

    def arns(*kinds: str) -> list[str]:
        return [f"arn:aws:ec2:{region}:{account_id}:{kind}/*" for kind in kinds]

    vpcs = [f"arn:aws:ec2:{region}:{account_id}:vpc/{v}" for v in sorted(set(vpc_ids))]
    groups = [f"arn:aws:ec2:{region}:{account_id}:security-group/{g}" for g in sorted(set(security_group_ids))]
    tagged = arns("instance", "volume", "network-interface", "launch-template", "fleet", "spot-instance-request")
    request_tag = {"aws:RequestTag/Vendor": TAG_VENDOR}
    resource_tag = {"StringEquals": {"ec2:ResourceTag/Vendor": TAG_VENDOR}}
    statements: list[dict[str, Any]] = [
        {"Sid": "CreateEC2ResourcesWithRequestTag", "Effect": "Allow", "Action": _CREATE,
         "Resource": arns("volume", "instance", "fleet", "launch-template", "network-interface"), "Condition": {"StringEquals": request_tag}},
        {"Sid": "AllowDatabricksTagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": arns("volume", "instance", "launch-template", "fleet", "network-interface"),
         "Condition": {"StringEquals": {"ec2:CreateAction": _CREATE_ACTIONS, **request_tag}}},
        {"Sid": "ModifyEC2ResourcesByResourceTags", "Effect": "Allow", "Action": _MODIFY, "Resource": tagged, "Condition": resource_tag},
        {"Sid": "GetEC2LaunchTemplateDataByTag", "Effect": "Allow", "Action": "ec2:GetLaunchTemplateData",
         "Resource": arns("volume", "instance", "fleet"), "Condition": resource_tag},
        {"Sid": "DeleteEC2ResourcesByTag", "Effect": "Allow", "Action": _DELETE, "Resource": tagged, "Condition": resource_tag},
        {"Sid": "DescribeEC2Resources", "Effect": "Allow", "Action": _DESCRIBE, "Resource": "*"},
        {"Sid": "AllowEC2TaggingOnDatabricksResources", "Effect": "Allow", "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
         "Resource": tagged, "Condition": resource_tag},
        {"Sid": "RestrictAMIUsageToDatabricksDeny", "Effect": "Deny", "Action": _AMI_ACTIONS, "Resource": "arn:aws:ec2:*:*:image/*",
         "Condition": {"StringNotEquals": {"ec2:Owner": DATABRICKS_AMI_OWNER}}},
        {"Sid": "RestrictAMIUsageToDatabricksAllow", "Effect": "Allow", "Action": _AMI_ACTIONS, "Resource": "arn:aws:ec2:*:*:image/*",
         "Condition": {"StringEquals": {"ec2:Owner": DATABRICKS_AMI_OWNER}}},
        {"Sid": "AllowRunInstancesWithScopedResources", "Effect": "Allow", "Action": "ec2:RunInstances",
         "Resource": arns("subnet", "security-group"),
         "Condition": {"StringEquals": {f"ec2:ResourceTag/{TAG_DEPLOYMENT}": by_tag}} if by_tag else {"StringEqualsIfExists": {"ec2:vpc": vpcs}}},
        {"Sid": "IAMRoleForEC2Spot", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole", "Resource": SPOT_SERVICE_ROLE,
         "Condition": {"StringLike": {"iam:AWSServiceName": "spot.amazonaws.com"}}},
        # A group belongs to one VPC, so listing every group and every VPC grants exactly each pair.
        {"Sid": "VpcNonresourceSpecificActions", "Effect": "Allow", "Action": _SG_RULES, "Resource": arns("security-group") if by_tag else groups,
         "Condition": {"StringEquals": {f"ec2:ResourceTag/{TAG_DEPLOYMENT}": by_tag} if by_tag else {"ec2:vpc": vpcs}}},
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def policy_json(document: dict[str, Any]) -> str:
    """A policy as sent to IAM: without whitespace, which is how IAM counts its size."""
    return json.dumps(document, separators=(",", ":"))


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


def document(value: Any) -> Any:
    """IAM returns policy documents URL-encoded (boto3 decodes most; some endpoints don't)."""
    if isinstance(value, str):
        return json.loads(unquote(value))
    return value


def find_role(ctx: Context, name: str) -> dict[str, Any] | None:
    """The role of that name, or None; one that is not this deployment's is refused, never adopted."""
    try:
        role = aws.client(ctx, "iam").get_role(RoleName=name)["Role"]
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    if aws.tag_value(role, TAG_DEPLOYMENT) != ctx.deployment:
        raise OwnershipConflict(
            f"IAM role {role['RoleName']} exists but is not tagged {TAG_DEPLOYMENT}={ctx.deployment}; rename the deployment or remove the role"
        )
    return role


def delete_role(ctx: Context, name: str) -> None:
    """IAM deletes a role only without policies: inline ones deleted, attached ones detached first."""
    iam = aws.client(ctx, "iam")
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
    iam.delete_role(RoleName=name)


def wait_role_gone(ctx: Context, name: str) -> None:
    iam = aws.client(ctx, "iam")
    ctx.wait_gone(lambda: iam.get_role(RoleName=name), what=f"IAM role {name}")


def policy_name(deployment: str) -> str:
    """The role's one inline policy (the name earlier versions gave the generic one, so it is replaced in place)."""
    return f"{deployment}-crossaccount-policy"


class CrossAccountRole(Step):
    kind = "iam.role"
    produces = ("role_name", "role_arn")

    def role_name(self, ctx: Context) -> str:
        # An imported role keeps the name it had (fact `names`).
        return ctx.name_of(self.id, f"{ctx.deployment}-crossaccount")

    def find(self, ctx: Context) -> Outputs | None:
        role = find_role(ctx, self.role_name(ctx))
        return {"role_name": role["RoleName"], "role_arn": role["Arn"]} if role else None

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
        if document(role.get("AssumeRolePolicyDocument")) != wanted:
            ctx.call(lambda: iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(wanted)), f"{self.id} trust policy")
        # The permissions are CrossAccountPolicy's (they name the VPCs, which do not exist yet). Propagation is
        # not waited for here: the credentials step retries until Databricks can assume the role.
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        delete_role(ctx, out["role_name"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        wait_role_gone(ctx, out["role_name"])


class InlineRolePolicy(Step):
    """A role's one inline policy, converged in place by digest: put_role_policy replaces a document of the same
    name, so a document edited by hand (or an earlier version's) becomes the wanted one on the next run. It passes
    the role's name and ARN on, so a step that needs the role with its permissions names this step as its role.
    Subclasses say which document (`document`) under which name (`policy_name`)."""

    kind = "iam.role_policy"
    produces = ("role_name", "role_arn", "policy_name", "digest")

    def __init__(self, step_id: str, *, role: str, needs: tuple[str, ...] = ()):
        super().__init__(step_id, needs=(role, *needs))
        self.role_name, self.role_arn = Ref(role, "role_name"), Ref(role, "role_arn")

    def document(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def policy_name(self, ctx: Context) -> str:
        raise NotImplementedError

    def check(self, ctx: Context, body: str) -> None:
        """Refuse a document IAM would refuse, in our terms, before calling IAM."""

    def _outputs(self, ctx: Context, document: Any) -> Outputs:
        return {
            "policy_name": self.policy_name(ctx), "role_name": ctx.out_if_known(self.role_name),
            "role_arn": ctx.out_if_known(self.role_arn), "digest": _digest(document),
        }

    def find(self, ctx: Context) -> Outputs | None:
        role = ctx.out_if_known(self.role_name)
        if role is None:  # plan, before the role exists
            return None
        try:
            found = aws.client(ctx, "iam").get_role_policy(RoleName=role, PolicyName=self.policy_name(ctx))
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return self._outputs(ctx, document(found["PolicyDocument"]))

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found.get("digest") != _digest(self.document(ctx))

    def create(self, ctx: Context) -> Outputs:
        return self._put(ctx)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        # Adopted (an earlier version's document, one edited by hand): replace it.
        return out if out.get("digest") == _digest(self.document(ctx)) else self._put(ctx)

    def _put(self, ctx: Context) -> Outputs:
        wanted = self.document(ctx)
        body = policy_json(wanted)
        self.check(ctx, body)
        # put_role_policy is idempotent: a retry after a lost response writes the same document.
        ctx.call(
            lambda: aws.client(ctx, "iam").put_role_policy(RoleName=ctx.out(self.role_name), PolicyName=self.policy_name(ctx), PolicyDocument=body),
            f"{self.id} put",
        )
        return self._outputs(ctx, wanted)

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.client(ctx, "iam").delete_role_policy(RoleName=out["role_name"], PolicyName=out["policy_name"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        iam = aws.client(ctx, "iam")
        ctx.wait_gone(
            lambda: iam.get_role_policy(RoleName=out["role_name"], PolicyName=out["policy_name"]),
            what=f"inline policy {out['policy_name']} of role {out['role_name']}",
        )


class CrossAccountPolicy(InlineRolePolicy):
    """The cross-account role's scoped policy (`cross_account_policy`), once the VPCs and groups it names exist; an
    earlier version's generic policy (same name) becomes the scoped one in place. The credentials configuration,
    which Databricks validates, names this step as its role."""

    def __init__(self, step_id: str, *, role: str, vpcs: list[str], security_groups: list[str]):
        """vpcs: steps producing `vpc_id`; security_groups: steps producing `group_id` (one per workspace)."""
        super().__init__(step_id, role=role, needs=(*vpcs, *security_groups))
        self.vpc_ids = [Ref(v, "vpc_id") for v in vpcs]
        self.group_ids = [Ref(g, "group_id") for g in security_groups]

    def policy_name(self, ctx: Context) -> str:
        # An imported role's inline policy keeps its name (fact `names`): converged in place, not duplicated.
        return ctx.name_of(self.id, policy_name(ctx.deployment))

    def document(self, ctx: Context) -> dict[str, Any]:
        return cross_account_policy(
            region=ctx.spec.region, account_id=aws.account_id(ctx),
            vpc_ids=[ctx.out(v) for v in self.vpc_ids], security_group_ids=[ctx.out(g) for g in self.group_ids],
            deployment=ctx.deployment,
        )

    def check(self, ctx: Context, body: str) -> None:
        if len(body) > INLINE_POLICY_LIMIT:  # IAM would answer LimitExceeded; say why in our terms
            raise ResourceFailed(
                f"cross-account policy of role {ctx.out(self.role_name)}", "too large",
                f"{len(body)} characters for {len(set(map(ctx.out, self.vpc_ids)))} VPCs; IAM allows {INLINE_POLICY_LIMIT}",
            )


def _digest(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]
