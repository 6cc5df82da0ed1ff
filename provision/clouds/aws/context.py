"""What an AWS step needs from its context: clients, ownership tags in EC2's shape, and zones.

The engine's Context is cloud-neutral; these helpers read it the AWS way, so a step still reads like the
API call it wraps: `ec2(ctx).create_vpc(CidrBlock=..., TagSpecifications=tag_spec(ctx, "vpc", self.id))`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provision.errors import ResourceFailed
from provision.orchestrator.step import TAG_DEPLOYMENT, TAG_STEP, Context


def client(ctx: Context, service: str) -> Any:
    """A boto3 client of the run's AWS target (real or the sandbox), retries off, calls counted."""
    return ctx.clients["aws"].client(service)


def ec2(ctx: Context) -> Any:
    return client(ctx, "ec2")


def tags(ctx: Context, step_id: str) -> list[dict[str, str]]:
    """Every AWS resource carries Name, the deployment and the step id, plus the spec's tags."""
    wanted = {**ctx.spec.tags, "Name": ctx.name_for(step_id), TAG_DEPLOYMENT: ctx.spec.name, TAG_STEP: step_id}
    return [{"Key": k, "Value": v} for k, v in wanted.items()]


def tag_spec(ctx: Context, resource_type: str, step_id: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": tags(ctx, step_id)}]


def owner_filters(ctx: Context, step_id: str) -> list[dict[str, Any]]:
    return [
        {"Name": f"tag:{TAG_DEPLOYMENT}", "Values": [ctx.spec.name]},
        {"Name": f"tag:{TAG_STEP}", "Values": [step_id]},
    ]


def find_owned(ctx: Context, step_id: str, operation: str, key: str, filters: list[dict[str, Any]] | None = None,
               filter_param: str = "Filters") -> list[dict[str, Any]]:
    """The EC2 resources tagged as this step's (`operation`: a describe call, `key`: its list in the answer,
    `filters`: e.g. live states). A run's first find of the step reads one listing shared by every step of
    the kind (listing.py); later finds ask for the step alone."""
    from provision.clouds.aws.listing import listings_for

    return listings_for(ctx.clients["aws"]).find(ec2(ctx), ctx.spec.name, step_id, operation, key, list(filters or []), filter_param)


def account_id(ctx: Context) -> str:
    """The AWS account the run's credentials belong to (STS), resolved once and kept in the state file:
    scoped IAM and KMS policies name it in their ARNs."""
    return str(ctx.fact("aws_account_id", lambda: ctx.call(lambda: client(ctx, "sts").get_caller_identity()["Account"], "aws account id")))


def tag_value(resource: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in resource.get("Tags", []) if t["Key"] == key), None)


@dataclass(frozen=True)
class Zones:
    """Which availability zones a VPC's subnets go in: the spec's own, or the region's first `count`."""

    count: int
    explicit: tuple[str, ...] = ()


def zones(ctx: Context, wanted: Zones) -> tuple[str, ...]:
    """The spec's zones, or the region's first `count` available zones, resolved once and kept in the
    state file so a later run never moves a subnet."""
    if wanted.explicit:
        return wanted.explicit

    def resolve() -> list[str]:
        found = ctx.call(
            lambda: ec2(ctx).describe_availability_zones(
                Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}]
            )["AvailabilityZones"],
            "availability zones",
        )
        names = sorted(z["ZoneName"] for z in found if z.get("OptInStatus", "opt-in-not-required") == "opt-in-not-required")
        if len(names) < wanted.count:
            raise ResourceFailed(f"region {ctx.spec.region}", "short of zones", f"needs {wanted.count} availability zones, has {len(names)}")
        return names[: wanted.count]

    return tuple(ctx.fact("availability_zones", resolve))
