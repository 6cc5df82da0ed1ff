"""[network_security]: VPC flow logs, NACLs on the Databricks subnets, restrictive VPC endpoint policies.

    [network_security]
    flow_logs = true                  # VPC flow logs to a CloudWatch Logs group, with their own IAM role
    flow_log_retention_days = 30      # one of CloudWatch Logs' retention values
    flow_log_traffic = "ALL"          # ALL | ACCEPT | REJECT
    nacls = true                      # a custom network ACL on the Databricks (private) subnets
    endpoint_policies = true          # restrictive S3 / STS / Kinesis endpoint policies
    s3_buckets = ["my-data-bucket"]   # the user's buckets clusters may reach through the S3 gateway endpoint

With an existing VPC (`existing.vpc_id`) the subnets and endpoints are not this tool's: `nacls` and
`endpoint_policies` default to false there and are refused if asked for. Flow logs are new resources on
the VPC (and deleted on teardown), so they are allowed on an existing VPC too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provision.clouds.aws.buckets import regional_buckets
from provision.clouds.aws.endpoint_policies import (
    MAX_POLICY_CHARS,
    compact,
    s3_gateway_policy,
)
from provision.clouds.aws.spec import bucket_problem
from provision.spec import Checker, Section

# The values CloudWatch Logs' PutRetentionPolicy accepts (there is no "never expire" here: logs expire).
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
TRAFFIC_TYPES = ("ALL", "ACCEPT", "REJECT")
_KEYS = {"flow_logs", "flow_log_retention_days", "flow_log_traffic", "nacls", "endpoint_policies", "s3_buckets"}
_ACCOUNT_PLACEHOLDER = "0" * 12  # an AWS account id is always 12 digits: the policy's length is exact


@dataclass(frozen=True)
class NetworkSecuritySpec:
    flow_logs: bool = True
    flow_log_retention_days: int = 30
    flow_log_traffic: str = "ALL"
    nacls: bool = True
    endpoint_policies: bool = True
    s3_buckets: tuple[str, ...] = ()


def _flag(check: Checker, table: dict[str, Any], key: str, default: bool) -> bool | None:
    value = table.get(key, default)
    if not isinstance(value, bool):
        check.fail(f"network_security.{key}", f"must be true or false, got {type(value).__name__}")
        return None
    return value


def _network_security(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> NetworkSecuritySpec | None:
    if "network_security" not in data:
        return None
    before = len(check.problems)
    table = check.table(data, "network_security", _KEYS)
    existing = parsed.get("existing")
    existing_vpc = existing is not None and existing.vpc_id is not None
    region = parsed.get("region")

    flow_logs = _flag(check, table, "flow_logs", True)
    retention = check.integer(table, "flow_log_retention_days", "network_security.flow_log_retention_days", default=30)
    if retention is not None and retention not in RETENTION_DAYS:
        check.fail(
            "network_security.flow_log_retention_days",
            f"{retention} is not a CloudWatch Logs retention period (one of {', '.join(map(str, RETENTION_DAYS))} days)",
        )
    traffic = check.string(table, "flow_log_traffic", "network_security.flow_log_traffic", required=False, default="ALL")
    if traffic is not None and traffic not in TRAFFIC_TYPES:
        check.fail("network_security.flow_log_traffic", f"must be one of {', '.join(TRAFFIC_TYPES)}, got {traffic!r}")

    nacls = _flag(check, table, "nacls", not existing_vpc)
    policies = _flag(check, table, "endpoint_policies", not existing_vpc)
    buckets = check.string_list(table, "s3_buckets", "network_security.s3_buckets")
    if existing_vpc:
        # The existing VPC's subnets and endpoints are the user's: never modified by this tool.
        why = "cannot be combined with existing.vpc_id: the subnets and VPC endpoints there are not this tool's to change"
        if nacls:
            check.fail("network_security.nacls", why)
        if policies:
            check.fail("network_security.endpoint_policies", why)
        if buckets:
            check.fail("network_security.s3_buckets", why)
    for i, bucket in enumerate(buckets or []):
        if (problem := bucket_problem(bucket)) is not None:
            check.fail(f"network_security.s3_buckets[{i}]", f"{bucket!r} {problem}")
    if buckets is not None and len(set(buckets)) != len(buckets):
        check.fail("network_security.s3_buckets", "buckets must be distinct")
    if buckets and policies is False:
        check.fail("network_security.s3_buckets", "has no effect with endpoint_policies = false (the S3 endpoint then allows every bucket)")
    if policies and region and regional_buckets(region) is None:
        check.fail(
            "network_security.endpoint_policies",
            f"Databricks' regional S3 buckets are not known for region {region}, so the S3 endpoint policy would cut "
            "clusters off from them; set endpoint_policies = false in this region",
        )
    if len(check.problems) > before:
        return None
    assert flow_logs is not None and retention is not None and traffic is not None and nacls is not None and policies is not None
    spec = NetworkSecuritySpec(flow_logs, retention, traffic, nacls, policies, tuple(buckets or ()))
    storage = parsed.get("storage")
    if policies and region and storage is not None:
        size = len(compact(s3_gateway_policy(region, storage.bucket_name, spec.s3_buckets, _ACCOUNT_PLACEHOLDER)))
        if size > MAX_POLICY_CHARS:
            check.fail(
                "network_security.s3_buckets",
                f"the S3 endpoint policy would be {size} characters; AWS allows {MAX_POLICY_CHARS}: list fewer buckets",
            )
            return None
    return spec


NETWORK_SECURITY = Section("network_security", ("network_security",), _network_security)


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """A live deployment keeps the flow logs and the NACL it made: turning one off would drop its steps from the
    graph and leave the resources (and state records teardown could no longer match). Tear down to remove them."""
    old, new = before.get("network_security") or {}, after.get("network_security") or {}
    return [f"network_security.{key} (turning it off)" for key in ("flow_logs", "nacls") if old.get(key) and not new.get(key)]
