"""VPC flow logs to CloudWatch Logs: the log group, the IAM role the flow-logs service delivers with, and the
flow log on the VPC.

- The log group is `/provision/<deployment>/vpc-flow-logs`, tagged, with the spec's retention and, when a KMS
  key step is given, encrypted with that key (its policy must let CloudWatch Logs of this account and region
  use it; [encryption] makes it so).
- The role trusts only `vpc-flow-logs.amazonaws.com`, and only for flow logs of this account
  (`aws:SourceAccount`, `aws:SourceArn`), as AWS's flow-logs guide recommends against the confused deputy; its
  inline policy allows the four Logs actions delivery needs, on this one group.
- A new role takes a few seconds to propagate: CreateFlowLogs then fails with InvalidParameter "Unable to
  assume given IAM role", which the classifier retries as IAM propagation.
"""

from __future__ import annotations

import json
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import is_not_found
from provision.clouds.aws.steps.iam import (
    delete_role,
    document,
    find_role,
    wait_role_gone,
)
from provision.errors import OwnershipConflict, ResourceFailed
from provision.orchestrator.drift import Drift, fields
from provision.orchestrator.step import (
    TAG_DEPLOYMENT,
    Context,
    Outputs,
    Ref,
    Step,
    single,
)

FLOW_LOGS_SERVICE = "vpc-flow-logs.amazonaws.com"
DELIVERY_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"]


def log_group_name(deployment: str) -> str:
    return f"/provision/{deployment}/vpc-flow-logs"


def trust_policy(account_id: str, region: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": FLOW_LOGS_SERVICE},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:{region}:{account_id}:vpc-flow-log/*"},
                },
            }
        ],
    }


def delivery_policy(log_group_arn: str) -> dict[str, Any]:
    # The group itself (DescribeLogGroups) and its streams (":*", CreateLogStream / PutLogEvents).
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": DELIVERY_ACTIONS, "Resource": [log_group_arn, f"{log_group_arn}:*"]}],
    }



class LogGroup(Step):
    kind = "logs.log_group"
    produces = ("log_group_name", "log_group_arn", "retention_days", "kms_key_arn")

    def __init__(self, step_id: str, *, retention_days: int, kms_key: str | None = None):
        """kms_key: the step id of a KMS key (its "key_arn") that encrypts the group, or None."""
        super().__init__(step_id, needs=(kms_key,) if kms_key else ())
        self.retention_days = retention_days
        self.kms_key = Ref(kms_key, "key_arn") if kms_key else None

    def _name(self, ctx: Context) -> str:
        return log_group_name(ctx.deployment)

    def _wanted_key(self, ctx: Context) -> str | None:
        return ctx.out(self.kms_key) if self.kms_key else None

    def _read(self, ctx: Context) -> dict[str, Any] | None:
        name = self._name(ctx)
        groups = aws.client(ctx, "logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        return next((g for g in groups if g["logGroupName"] == name), None)

    def find(self, ctx: Context) -> Outputs | None:
        group = self._read(ctx)
        if group is None:
            return None
        arn = group.get("logGroupArn") or group["arn"].removesuffix(":*")
        tags = aws.client(ctx, "logs").list_tags_for_resource(resourceArn=arn).get("tags", {})
        if tags.get(TAG_DEPLOYMENT) != ctx.deployment and self.id not in ctx.claimed:
            raise OwnershipConflict(
                f"log group {group['logGroupName']} exists but is not tagged {TAG_DEPLOYMENT}={ctx.deployment}; "
                "rename the deployment or remove the log group"
            )
        return {
            "log_group_name": group["logGroupName"], "log_group_arn": arn,
            "retention_days": group.get("retentionInDays"), "kms_key_arn": group.get("kmsKeyId"),
        }

    def create(self, ctx: Context) -> Outputs:
        name, key = self._name(ctx), self._wanted_key(ctx)
        # Tags and the key go in the create call: the group is never briefly unowned or unencrypted.
        tags = {t["Key"]: t["Value"] for t in aws.tags(ctx, self.id)}
        aws.client(ctx, "logs").create_log_group(logGroupName=name, tags=tags, **({"kmsKeyId": key} if key else {}))
        arn = f"arn:aws:logs:{ctx.spec.region}:{aws.account_id(ctx)}:log-group:{name}"
        return {"log_group_name": name, "log_group_arn": arn, "retention_days": None, "kms_key_arn": key}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found.get("retention_days") != self.retention_days or found.get("kms_key_arn") != self._wanted_key(ctx)

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        return fields({"retention_days": self.retention_days, "kms_key_arn": self._wanted_key(ctx)}, found)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        logs, name, key = aws.client(ctx, "logs"), out["log_group_name"], self._wanted_key(ctx)
        if out.get("retention_days") != self.retention_days:
            ctx.call(lambda: logs.put_retention_policy(logGroupName=name, retentionInDays=self.retention_days), f"{self.id} retention")
        if out.get("kms_key_arn") != key:
            if key:
                ctx.call(lambda: logs.associate_kms_key(logGroupName=name, kmsKeyId=key), f"{self.id} kms key")
            else:
                ctx.call(lambda: logs.disassociate_kms_key(logGroupName=name), f"{self.id} kms key")
        return {**out, "retention_days": self.retention_days, "kms_key_arn": key}

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.client(ctx, "logs").delete_log_group(logGroupName=out["log_group_name"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self._read(ctx), what=f"log group {out['log_group_name']}")


class FlowLogRole(Step):
    kind = "iam.role"
    produces = ("role_name", "role_arn")

    def __init__(self, step_id: str, *, log_group: str):
        super().__init__(step_id, needs=(log_group,))
        self.log_group_arn = Ref(log_group, "log_group_arn")

    def role_name(self, ctx: Context) -> str:
        return f"{ctx.deployment}-flowlogs"

    def policy_name(self, ctx: Context) -> str:
        return f"{ctx.deployment}-flowlogs-delivery"

    def find(self, ctx: Context) -> Outputs | None:
        role = find_role(ctx, self.role_name(ctx))
        return {"role_name": role["RoleName"], "role_arn": role["Arn"]} if role else None

    def create(self, ctx: Context) -> Outputs:
        role = aws.client(ctx, "iam").create_role(
            RoleName=self.role_name(ctx),
            AssumeRolePolicyDocument=json.dumps(trust_policy(aws.account_id(ctx), ctx.spec.region)),
            Description=f"VPC flow log delivery of deployment {ctx.deployment}",
            Tags=aws.tags(ctx, self.id),
        )["Role"]
        return {"role_name": role["RoleName"], "role_arn": role["Arn"]}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        iam, name = aws.client(ctx, "iam"), out["role_name"]
        # Converging: a NotFound right after create is IAM's eventual consistency, retried.
        role = ctx.call(lambda: iam.get_role(RoleName=name)["Role"], f"{self.id} read")
        wanted = trust_policy(aws.account_id(ctx), ctx.spec.region)
        if document(role.get("AssumeRolePolicyDocument")) != wanted:
            ctx.call(lambda: iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(wanted)), f"{self.id} trust policy")
        policy = json.dumps(delivery_policy(ctx.out(self.log_group_arn)))
        ctx.call(lambda: iam.put_role_policy(RoleName=name, PolicyName=self.policy_name(ctx), PolicyDocument=policy), f"{self.id} inline policy")
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        delete_role(ctx, out["role_name"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        wait_role_gone(ctx, out["role_name"])


class FlowLog(Step):
    kind = "ec2.flow_log"
    produces = ("flow_log_id", "vpc_id", "traffic_type", "log_group_name")

    def __init__(self, step_id: str, *, vpc: str, log_group: str, role: str, traffic_type: str):
        super().__init__(step_id, needs=(vpc, log_group, role))
        self.vpc_id, self.log_group = Ref(vpc, "vpc_id"), Ref(log_group, "log_group_name")
        self.role_arn, self.traffic_type = Ref(role, "role_arn"), traffic_type

    @staticmethod
    def _outputs(flow_log: dict[str, Any]) -> Outputs:
        return {
            "flow_log_id": flow_log["FlowLogId"], "vpc_id": flow_log["ResourceId"],
            "traffic_type": flow_log["TrafficType"], "log_group_name": flow_log.get("LogGroupName"),
        }

    def _read(self, ctx: Context, flow_log_id: str) -> dict[str, Any] | None:
        found = aws.ec2(ctx).describe_flow_logs(FlowLogIds=[flow_log_id])["FlowLogs"]
        return found[0] if found else None

    def find(self, ctx: Context) -> Outputs | None:
        found = single(aws.find_owned(ctx, self.id, "describe_flow_logs", "FlowLogs"), "flow log", self.id)
        return self._outputs(found) if found else None

    def create(self, ctx: Context) -> Outputs:
        vpc_id, group, role = ctx.out(self.vpc_id), ctx.out(self.log_group), ctx.out(self.role_arn)
        result = aws.ec2(ctx).create_flow_logs(
            ResourceType="VPC", ResourceIds=[vpc_id], TrafficType=self.traffic_type,
            LogDestinationType="cloud-watch-logs", LogGroupName=group, DeliverLogsPermissionArn=role,
            ClientToken=ctx.client_token(self.id, vpc_id, group, role, self.traffic_type),
            TagSpecifications=aws.tag_spec(ctx, "vpc-flow-log", self.id),
        )
        # Per-resource refusals come back in the response, not as an error.
        for failure in result.get("Unsuccessful", []):
            error = failure.get("Error", {})
            raise ResourceFailed(f"flow log on {vpc_id}", "refused", f"{error.get('Code')}: {error.get('Message')}")
        (flow_log_id,) = result["FlowLogIds"]
        return {"flow_log_id": flow_log_id, "vpc_id": vpc_id, "traffic_type": self.traffic_type, "log_group_name": group}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found.get("traffic_type") != self.traffic_type or found.get("log_group_name") != ctx.out(self.log_group)

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        # Neither can be modified, but a flow log is replaced at no cost (nothing depends on it): up does that itself.
        return fields({"traffic_type": self.traffic_type, "log_group_name": ctx.out(self.log_group)}, found)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        if out.get("traffic_type") != self.traffic_type or out.get("log_group_name") != ctx.out(self.log_group):
            # A flow log's traffic type and destination cannot be modified: replace it (old one first, so
            # at most one flow log ever carries this step's tags).
            ctx.call(lambda: self._delete(ctx, out["flow_log_id"]), f"{self.id} replace")
            ctx.wait_gone(lambda: self._read(ctx, out["flow_log_id"]), what=f"flow log {out['flow_log_id']}")
            out = ctx.call(lambda: self.create(ctx), f"{self.id} create")
        flow_log_id = out["flow_log_id"]
        ctx.wait(
            lambda: self._read(ctx, flow_log_id) or {"FlowLogStatus": "missing"},
            status_of=lambda f: f.get("FlowLogStatus", "ACTIVE"), target={"ACTIVE"}, failure={"missing"},
            what=f"flow log {flow_log_id}",
        )
        return out

    def _delete(self, ctx: Context, flow_log_id: str) -> None:
        try:
            result = aws.ec2(ctx).delete_flow_logs(FlowLogIds=[flow_log_id])
        except Exception as exc:
            if is_not_found(exc):
                return
            raise
        for failure in result.get("Unsuccessful", []):
            error = failure.get("Error", {})
            if "NotFound" not in str(error.get("Code", "")):
                raise ResourceFailed(f"flow log {flow_log_id}", "not deleted", f"{error.get('Code')}: {error.get('Message')}")

    def delete(self, ctx: Context, out: Outputs) -> None:
        self._delete(ctx, out["flow_log_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self._read(ctx, out["flow_log_id"]), what=f"flow log {out['flow_log_id']}")
