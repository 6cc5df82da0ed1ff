"""Infrastructure the user already has: read by id, recorded as external, never modified destructively,
never deleted. The step ids and outputs are those of the steps that would have created them, so the
rest of a topology does not care whether a VPC was made here or brought along."""

from __future__ import annotations

from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import is_not_found
from provision.errors import ResourceFailed
from provision.orchestrator.step import Context, Outputs, Step


class _Existing(Step):
    external = True

    def __init__(self, step_id: str, resource_id: str, needs: tuple[str, ...] = ()):
        super().__init__(step_id, needs=needs)
        self.existing_id = resource_id

    def find(self, ctx: Context) -> Outputs | None:
        try:
            return self.read(ctx)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    def read(self, ctx: Context) -> Outputs | None:
        raise NotImplementedError

    def create(self, ctx: Context) -> Outputs:
        # Preflight checked it before the run; reaching here means it vanished since.
        raise ResourceFailed(f"existing {self.kind} {self.existing_id}", "missing", "it no longer exists; provision never creates what the spec names as existing")

    def delete(self, ctx: Context, out: Outputs) -> None:
        raise AssertionError("the engine never deletes external resources")


class ExistingVpc(_Existing):
    kind = "ec2.vpc"
    produces = ("vpc_id", "cidr")

    def read(self, ctx: Context) -> Outputs | None:
        vpcs = aws.ec2(ctx).describe_vpcs(VpcIds=[self.existing_id])["Vpcs"]
        return {"vpc_id": vpcs[0]["VpcId"], "cidr": vpcs[0]["CidrBlock"]} if vpcs else None


class ExistingSubnet(_Existing):
    kind = "ec2.subnet"
    produces = ("subnet_id", "cidr", "zone")

    def read(self, ctx: Context) -> Outputs | None:
        subnets = aws.ec2(ctx).describe_subnets(SubnetIds=[self.existing_id])["Subnets"]
        if not subnets:
            return None
        subnet = subnets[0]
        return {"subnet_id": subnet["SubnetId"], "cidr": subnet["CidrBlock"], "zone": subnet["AvailabilityZone"]}


class ExistingSecurityGroup(_Existing):
    kind = "ec2.security_group"
    produces = ("group_id", "vpc_id")

    def read(self, ctx: Context) -> Outputs | None:
        groups = aws.ec2(ctx).describe_security_groups(GroupIds=[self.existing_id])["SecurityGroups"]
        return {"group_id": groups[0]["GroupId"], "vpc_id": groups[0]["VpcId"]} if groups else None


class ExistingBucket(_Existing):
    kind = "s3.bucket"
    produces = ("bucket", "arn")

    def read(self, ctx: Context) -> Outputs | None:
        aws.client(ctx, "s3").head_bucket(Bucket=self.existing_id)
        return {"bucket": self.existing_id, "arn": f"arn:aws:s3:::{self.existing_id}"}


class ExistingRole(_Existing):
    kind = "iam.role"
    produces = ("role_name", "role_arn")

    @staticmethod
    def role_name(arn: str) -> str:
        return arn.rsplit("/", 1)[-1]

    def read(self, ctx: Context) -> Outputs | None:
        role: dict[str, Any] = aws.client(ctx, "iam").get_role(RoleName=self.role_name(self.existing_id))["Role"]
        return {"role_name": role["RoleName"], "role_arn": role["Arn"]}
