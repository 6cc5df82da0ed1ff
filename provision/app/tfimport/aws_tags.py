"""Check that a mapped AWS resource still exists, and put our ownership tags on it (the tags our steps find
their resources by: `provision:deployment` and `provision:step`, plus the spec's tags).

A resource's `Name` is kept: it is what the user knows it by (and the Terraform code still sets it). Only a
resource with no Name gets ours. A resource that another provision deployment owns is refused, never retagged.
Every call is a read or an idempotent tag write (no resource is created, changed or deleted here). What each
`adopt` added is remembered, so `untag` can take exactly those tags off again when the step's own `find` does not
see the resource (a resource left with our tags but not in our state would make `up` create a second one and
then refuse both)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provision.clouds.aws.errors import error_code, is_not_found
from provision.errors import OwnershipConflict
from provision.orchestrator.step import TAG_DEPLOYMENT, TAG_STEP

# EC2 kinds: (describe operation, its id parameter, the list in its answer, states that mean "gone").
EC2_KINDS: dict[str, tuple[str, str, str, frozenset[str]]] = {
    "ec2.vpc": ("describe_vpcs", "VpcIds", "Vpcs", frozenset()),
    "ec2.subnet": ("describe_subnets", "SubnetIds", "Subnets", frozenset()),
    "ec2.internet_gateway": ("describe_internet_gateways", "InternetGatewayIds", "InternetGateways", frozenset()),
    "ec2.elastic_ip": ("describe_addresses", "AllocationIds", "Addresses", frozenset()),
    "ec2.nat_gateway": ("describe_nat_gateways", "NatGatewayIds", "NatGateways", frozenset({"failed", "deleting", "deleted"})),
    "ec2.route_table": ("describe_route_tables", "RouteTableIds", "RouteTables", frozenset()),
    "ec2.security_group": ("describe_security_groups", "GroupIds", "SecurityGroups", frozenset()),
    "ec2.vpc_endpoint": ("describe_vpc_endpoints", "VpcEndpointIds", "VpcEndpoints", frozenset({"deleting", "deleted", "failed", "rejected"})),
    "ec2.transit_gateway": ("describe_transit_gateways", "TransitGatewayIds", "TransitGateways", frozenset({"deleting", "deleted"})),
    "ec2.transit_gateway_vpc_attachment": ("describe_transit_gateway_vpc_attachments", "TransitGatewayAttachmentIds",
                                           "TransitGatewayVpcAttachments", frozenset({"deleting", "deleted", "failed", "rejected"})),
    "ec2.transit_gateway_route_table": ("describe_transit_gateway_route_tables", "TransitGatewayRouteTableIds",
                                        "TransitGatewayRouteTables", frozenset({"deleting", "deleted"})),
}
# Network Firewall kinds, by ARN: (describe operation, its ARN parameter, the part of its answer that holds Tags).
# Their name is their identity (it cannot change): no Name tag is added.
NFW_KINDS: dict[str, tuple[str, str, str]] = {
    "network_firewall.firewall": ("describe_firewall", "FirewallArn", "Firewall"),
    "network_firewall.firewall_policy": ("describe_firewall_policy", "FirewallPolicyArn", "FirewallPolicyResponse"),
    "network_firewall.rule_group": ("describe_rule_group", "RuleGroupArn", "RuleGroupResponse"),
}
# Kinds found by name, not by tags, whose existence is checked by a read (tags go on the role and the bucket).
NAMED_KINDS = ("iam.role", "iam.role_policy", "s3.bucket")


def ownership_tags(deployment: str, step_id: str, spec_tags: dict[str, str], current: dict[str, str], default_name: str) -> dict[str, str]:
    """The tags to add: the spec's, ours, and a Name only where there is none."""
    wanted = {**spec_tags, TAG_DEPLOYMENT: deployment, TAG_STEP: step_id}
    if "Name" not in current:
        wanted["Name"] = default_name
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def _still_ours(current: dict[str, str], remove: list[str], added: dict[str, str], restore: dict[str, str]) -> tuple[list[str], list[dict[str, str]]]:
    """Of the tags the import added, the keys still holding our value (to remove), and the earlier values of those
    it overwrote (to put back): a tag someone changed since is left alone."""
    keys = [k for k in remove if current.get(k) == added[k]]
    back = [{"Key": k, "Value": v} for k, v in restore.items() if current.get(k) == added[k]]
    return keys, back


def _tag_dict(tags: Any) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def _refuse_foreign(what: str, current: dict[str, str], deployment: str) -> None:
    owner = current.get(TAG_DEPLOYMENT)
    if owner is not None and owner != deployment:
        raise OwnershipConflict(f"{what} is tagged {TAG_DEPLOYMENT}={owner}: it belongs to another provision deployment; not imported")


class Tagger:
    """Existence checks and tag writes through the run's AWS clients (`client(service)`), each call retried by
    `call(fn, what)` (the run's RetryPolicy)."""

    def __init__(self, client: Callable[[str], Any], call: Callable[[Callable[[], Any], str], Any], *, deployment: str, spec_tags: dict[str, str]):
        self.client, self.call, self.deployment, self.spec_tags = client, call, deployment, spec_tags
        # step id -> (kind, resource id, the tags adopt wrote, what each of those keys held before: None if absent)
        self.added: dict[str, tuple[str, str, dict[str, str], dict[str, str | None]]] = {}

    def handles(self, kind: str) -> bool:
        return kind in EC2_KINDS or kind in NFW_KINDS or kind in NAMED_KINDS

    def adopt(self, kind: str, step_id: str, resource_id: str, default_name: str, *, role: str | None = None) -> bool:
        """Tag the resource as the step's; False when it no longer exists."""
        if kind in EC2_KINDS:
            return self._ec2(kind, step_id, resource_id, default_name)
        if kind in NFW_KINDS:
            return self._nfw(kind, step_id, resource_id)
        if kind == "iam.role":
            return self._role(step_id, resource_id, default_name)
        if kind == "iam.role_policy":
            return self._role_policy(role or "", resource_id)
        if kind == "s3.bucket":
            return self._bucket(step_id, resource_id, default_name)
        raise ValueError(f"no tagging for {kind}")

    def untag(self, step_id: str) -> None:
        """Undo what `adopt` did to this step's resource: each tag it added is removed, each value it overwrote (a
        spec tag the resource had with another value) is put back. A tag changed since is left alone."""
        entry = self.added.pop(step_id, None)
        if entry is None:
            return
        kind, resource_id, added, previous = entry
        if not added:
            return
        remove = [k for k in added if previous.get(k) is None]
        restore = {k: str(previous[k]) for k in added if previous.get(k) is not None}
        if kind in EC2_KINDS:
            ec2 = self.client("ec2")
            if remove:
                # With a Value, DeleteTags removes a tag only while it still has that value.
                tags = [{"Key": k, "Value": added[k]} for k in remove]
                self.call(lambda: ec2.delete_tags(Resources=[resource_id], Tags=tags), f"import {step_id} untag")
            if restore:
                back = [{"Key": k, "Value": v} for k, v in restore.items()]
                self.call(lambda: ec2.create_tags(Resources=[resource_id], Tags=back), f"import {step_id} untag")
        elif kind in NFW_KINDS:
            nfw = self.client("network-firewall")
            keys, back = _still_ours(self._nfw_read(kind, resource_id, step_id) or {}, remove, added, restore)
            if keys:
                self.call(lambda: nfw.untag_resource(ResourceArn=resource_id, TagKeys=keys), f"import {step_id} untag")
            if back:
                self.call(lambda: nfw.tag_resource(ResourceArn=resource_id, Tags=back), f"import {step_id} untag")
        elif kind == "iam.role":
            iam = self.client("iam")
            current = _tag_dict(self.call(lambda: iam.list_role_tags(RoleName=resource_id)["Tags"], f"import {step_id} tags"))
            keys, back = _still_ours(current, remove, added, restore)
            if keys:
                self.call(lambda: iam.untag_role(RoleName=resource_id, TagKeys=keys), f"import {step_id} untag")
            if back:
                self.call(lambda: iam.tag_role(RoleName=resource_id, Tags=back), f"import {step_id} untag")
        elif kind == "s3.bucket":
            s3 = self.client("s3")

            def read() -> dict[str, str]:
                try:
                    return _tag_dict(s3.get_bucket_tagging(Bucket=resource_id)["TagSet"])
                except Exception as exc:
                    if error_code(exc) == "NoSuchTagSet":
                        return {}
                    raise

            current = self.call(read, f"import {step_id} tags")
            ours = {k for k in added if current.get(k) == added[k]}
            kept = {k: v for k, v in current.items() if k not in ours}
            kept.update({k: v for k, v in restore.items() if k in ours})
            if kept == current:
                return
            if kept:
                tag_set = [{"Key": k, "Value": v} for k, v in kept.items()]
                self.call(lambda: s3.put_bucket_tagging(Bucket=resource_id, Tagging={"TagSet": tag_set}), f"import {step_id} untag")
            else:
                self.call(lambda: s3.delete_bucket_tagging(Bucket=resource_id), f"import {step_id} untag")

    def _ec2(self, kind: str, step_id: str, resource_id: str, default_name: str) -> bool:
        operation, param, key, gone = EC2_KINDS[kind]
        ec2 = self.client("ec2")

        def read() -> dict[str, Any] | None:
            try:
                items = getattr(ec2, operation)(**{param: [resource_id]})[key]
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise
            return items[0] if items else None

        found = self.call(read, f"import {step_id} read")
        if found is None or str(found.get("State", "")).lower() in gone:
            return False
        current = _tag_dict(found.get("Tags"))
        _refuse_foreign(f"{kind} {resource_id}", current, self.deployment)
        add = ownership_tags(self.deployment, step_id, self.spec_tags, current, default_name)
        self.added[step_id] = (kind, resource_id, add, {k: current.get(k) for k in add})
        if add:
            tags = [{"Key": k, "Value": v} for k, v in add.items()]
            self.call(lambda: ec2.create_tags(Resources=[resource_id], Tags=tags), f"import {step_id} tag")
        return True

    def _nfw_read(self, kind: str, arn: str, step_id: str) -> dict[str, str] | None:
        operation, param, part = NFW_KINDS[kind]
        nfw = self.client("network-firewall")

        def read() -> dict[str, str] | None:
            try:
                answer = getattr(nfw, operation)(**{param: arn})
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise
            if (answer.get("FirewallStatus") or {}).get("Status") == "DELETING":
                return None
            return _tag_dict(answer[part].get("Tags"))

        return self.call(read, f"import {step_id} read")

    def _nfw(self, kind: str, step_id: str, arn: str) -> bool:
        current = self._nfw_read(kind, arn, step_id)
        if current is None:
            return False
        _refuse_foreign(f"{kind} {arn}", current, self.deployment)
        add = ownership_tags(self.deployment, step_id, self.spec_tags, current, "")
        add.pop("Name", None)  # the resource's name is its identity
        self.added[step_id] = (kind, arn, add, {k: current.get(k) for k in add})
        if add:
            nfw = self.client("network-firewall")
            tags = [{"Key": k, "Value": v} for k, v in add.items()]
            self.call(lambda: nfw.tag_resource(ResourceArn=arn, Tags=tags), f"import {step_id} tag")
        return True

    def _role(self, step_id: str, name: str, default_name: str) -> bool:
        iam = self.client("iam")

        def read() -> dict[str, Any] | None:
            try:
                return iam.get_role(RoleName=name)["Role"]
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise

        role = self.call(read, f"import {step_id} read")
        if role is None:
            return False
        current = _tag_dict(self.call(lambda: iam.list_role_tags(RoleName=name)["Tags"], f"import {step_id} tags"))
        _refuse_foreign(f"IAM role {name}", current, self.deployment)
        add = ownership_tags(self.deployment, step_id, self.spec_tags, current, default_name)
        add.pop("Name", None)  # a role's name is its identity; no Name tag is needed
        self.added[step_id] = ("iam.role", name, add, {k: current.get(k) for k in add})
        if add:
            self.call(lambda: iam.tag_role(RoleName=name, Tags=[{"Key": k, "Value": v} for k, v in add.items()]), f"import {step_id} tag")
        return True

    def _role_policy(self, role: str, policy: str) -> bool:
        iam = self.client("iam")

        def read() -> bool:
            try:
                iam.get_role_policy(RoleName=role, PolicyName=policy)
            except Exception as exc:
                if is_not_found(exc):
                    return False
                raise
            return True

        return bool(self.call(read, f"import policy {policy} read"))

    def _bucket(self, step_id: str, bucket: str, default_name: str) -> bool:
        s3 = self.client("s3")

        def read() -> dict[str, str] | None:
            try:
                return _tag_dict(s3.get_bucket_tagging(Bucket=bucket)["TagSet"])
            except Exception as exc:
                if error_code(exc) == "NoSuchTagSet":
                    return {}
                if is_not_found(exc):
                    return None
                raise

        current = self.call(read, f"import {step_id} read")
        if current is None:
            return False
        _refuse_foreign(f"bucket {bucket}", current, self.deployment)
        add = ownership_tags(self.deployment, step_id, self.spec_tags, current, default_name)
        self.added[step_id] = ("s3.bucket", bucket, add, {k: current.get(k) for k in add})
        if add:
            # PutBucketTagging replaces the whole set: the bucket's own tags are kept in it.
            merged = [{"Key": k, "Value": v} for k, v in {**current, **add}.items()]
            self.call(lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": merged}), f"import {step_id} tag")
        return True
