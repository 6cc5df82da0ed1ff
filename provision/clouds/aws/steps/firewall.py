"""AWS Network Firewall for data-exfiltration protection: stateful rule groups, a policy, the firewall.

Names are deterministic (`<deployment>-<step>`) and every resource is tagged, so a create whose
response was lost is found again by name. Rule groups and the policy converge to the spec: a changed
allow-list or a new spoke's CIDR in HOME_NET is an update, not a replacement.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import is_not_found
from provision.errors import OwnershipConflict
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Ref, Step

# A firewall takes about 6 minutes to create and often over 20 to delete on AWS.
FIREWALL_SECONDS = 3600.0


def _digest(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


# AWS normalises documents it returns (added defaults, reshaped options), so comparing a describe with
# what we sent would update on every run. The digest of what we last applied is kept in a tag instead.
DIGEST_TAG = "provision:digest"


def _tag(tags: list[dict[str, str]], key: str) -> str | None:
    return next((t["Value"] for t in tags or [] if t["Key"] == key), None)


def _owned(ctx: Context, tags: list[dict[str, str]], what: str) -> None:
    owner = next((t["Value"] for t in tags or [] if t["Key"] == TAG_DEPLOYMENT), None)
    if owner != ctx.deployment:
        raise OwnershipConflict(f"{what} exists but belongs to {owner or 'no provision deployment'}; rename the deployment")


class _Named(Step):
    """A Network Firewall resource found by its deterministic name."""

    def name(self, ctx: Context) -> str:
        return ctx.name_for(self.id)

    def client(self, ctx: Context) -> Any:
        return aws.client(ctx, "network-firewall")


class RuleGroup(_Named):
    """A stateful rule group whose body is `body` (a RuleGroup document)."""

    kind = "network_firewall.rule_group"
    produces = ("rule_group_arn", "name", "digest")

    def __init__(self, step_id: str, *, capacity: int, body: dict[str, Any], needs: tuple[str, ...] = ()):
        super().__init__(step_id, needs=needs)
        self.capacity, self.body = capacity, body

    def _describe(self, ctx: Context) -> dict[str, Any] | None:
        try:
            return self.client(ctx).describe_rule_group(RuleGroupName=self.name(ctx), Type="STATEFUL")
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    def _outputs(self, described: dict[str, Any]) -> Outputs:
        response = described["RuleGroupResponse"]
        return {"rule_group_arn": response["RuleGroupArn"], "name": response["RuleGroupName"], "digest": _tag(response.get("Tags", []), DIGEST_TAG)}

    def find(self, ctx: Context) -> Outputs | None:
        described = self._describe(ctx)
        if described is None:
            return None
        _owned(ctx, described["RuleGroupResponse"].get("Tags", []), f"rule group {self.name(ctx)}")
        return self._outputs(described)

    def needs_converge(self, ctx: Context, out: Outputs) -> bool:
        return out.get("digest") != _digest(self.body)

    def create(self, ctx: Context) -> Outputs:
        body = self.body
        created = self.client(ctx).create_rule_group(
            RuleGroupName=self.name(ctx), Type="STATEFUL", Capacity=self.capacity, RuleGroup=body,
            Description=f"{ctx.deployment}: {self.id}", Tags=aws.tags(ctx, self.id) + [{"Key": DIGEST_TAG, "Value": _digest(body)}],
        )
        return {"rule_group_arn": created["RuleGroupResponse"]["RuleGroupArn"], "name": self.name(ctx), "digest": _digest(body)}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        wanted = self.body
        if out.get("digest") != _digest(wanted):
            described = ctx.call(lambda: self._describe(ctx), f"{self.id} read")
            assert described is not None
            ctx.call(lambda: self.client(ctx).update_rule_group(
                UpdateToken=described["UpdateToken"], RuleGroupArn=out["rule_group_arn"], Type="STATEFUL", RuleGroup=wanted,
            ), f"{self.id} update")
            ctx.call(lambda: self.client(ctx).tag_resource(
                ResourceArn=out["rule_group_arn"], Tags=[{"Key": DIGEST_TAG, "Value": _digest(wanted)}],
            ), f"{self.id} digest")
        return {**out, "digest": _digest(wanted)}

    def delete(self, ctx: Context, out: Outputs) -> None:
        self.client(ctx).delete_rule_group(RuleGroupArn=out["rule_group_arn"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self.client(ctx).describe_rule_group(RuleGroupArn=out["rule_group_arn"]), what=f"rule group {out['name']}")


class FirewallPolicy(_Named):
    kind = "network_firewall.firewall_policy"
    produces = ("policy_arn", "name")

    def __init__(self, step_id: str, *, rule_groups: list[str]):
        super().__init__(step_id, needs=tuple(rule_groups))
        self.rule_group_arns = [Ref(g, "rule_group_arn") for g in rule_groups]

    def document(self, ctx: Context) -> dict[str, Any]:
        return {
            # Stateless engine: hand everything to the stateful rule groups.
            "StatelessDefaultActions": ["aws:forward_to_sfe"],
            "StatelessFragmentDefaultActions": ["aws:forward_to_sfe"],
            "StatefulRuleGroupReferences": [{"ResourceArn": ctx.out(arn)} for arn in self.rule_group_arns],
        }

    def _describe(self, ctx: Context) -> dict[str, Any] | None:
        try:
            return self.client(ctx).describe_firewall_policy(FirewallPolicyName=self.name(ctx))
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    def find(self, ctx: Context) -> Outputs | None:
        described = self._describe(ctx)
        if described is None:
            return None
        response = described["FirewallPolicyResponse"]
        _owned(ctx, response.get("Tags", []), f"firewall policy {self.name(ctx)}")
        return {"policy_arn": response["FirewallPolicyArn"], "name": response["FirewallPolicyName"]}

    def create(self, ctx: Context) -> Outputs:
        created = self.client(ctx).create_firewall_policy(
            FirewallPolicyName=self.name(ctx), FirewallPolicy=self.document(ctx), Tags=aws.tags(ctx, self.id),
        )
        return {"policy_arn": created["FirewallPolicyResponse"]["FirewallPolicyArn"], "name": self.name(ctx)}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        described = ctx.call(lambda: self._describe(ctx), f"{self.id} read")
        wanted = self.document(ctx)
        current = [r.get("ResourceArn") for r in (described or {}).get("FirewallPolicy", {}).get("StatefulRuleGroupReferences", [])]
        if described is not None and sorted(current) != sorted(r["ResourceArn"] for r in wanted["StatefulRuleGroupReferences"]):
            ctx.call(lambda: self.client(ctx).update_firewall_policy(
                UpdateToken=described["UpdateToken"], FirewallPolicyArn=out["policy_arn"], FirewallPolicy=wanted,
            ), f"{self.id} update")
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        self.client(ctx).delete_firewall_policy(FirewallPolicyArn=out["policy_arn"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self.client(ctx).describe_firewall_policy(FirewallPolicyArn=out["policy_arn"]), what=f"firewall policy {out['name']}")


class Firewall(_Named):
    """The firewall in one subnet per zone; outputs its per-zone endpoint ids for the route tables."""
    typical_seconds = 360.0  # PROVISIONING -> READY

    kind = "network_firewall.firewall"
    produces = ("firewall_arn", "name", "status", "endpoints")

    def __init__(self, step_id: str, *, vpc: str, subnets: list[str], policy: str):
        super().__init__(step_id, needs=(vpc, *subnets, policy))
        self.vpc_id, self.policy_arn = Ref(vpc, "vpc_id"), Ref(policy, "policy_arn")
        self.subnet_ids, self.zones = [Ref(s, "subnet_id") for s in subnets], [Ref(s, "zone") for s in subnets]

    def _describe(self, ctx: Context, name: str | None = None) -> dict[str, Any] | None:
        try:
            return self.client(ctx).describe_firewall(FirewallName=name or self.name(ctx))
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    @staticmethod
    def _outputs(described: dict[str, Any]) -> Outputs:
        firewall, status = described["Firewall"], described.get("FirewallStatus", {})
        endpoints = {
            zone: state["Attachment"]["EndpointId"]
            for zone, state in (status.get("SyncStates") or {}).items() if state.get("Attachment", {}).get("EndpointId")
        }
        return {"firewall_arn": firewall["FirewallArn"], "name": firewall["FirewallName"], "status": status.get("Status"), "endpoints": endpoints}

    def find(self, ctx: Context) -> Outputs | None:
        described = self._describe(ctx)
        if described is None:
            return None
        _owned(ctx, described["Firewall"].get("Tags", []), f"firewall {self.name(ctx)}")
        return self._outputs(described)

    def create(self, ctx: Context) -> Outputs:
        created = self.client(ctx).create_firewall(
            FirewallName=self.name(ctx), FirewallPolicyArn=ctx.out(self.policy_arn), VpcId=ctx.out(self.vpc_id),
            SubnetMappings=[{"SubnetId": ctx.out(s)} for s in self.subnet_ids], DeleteProtection=False,
            Tags=aws.tags(ctx, self.id),
        )
        return self._outputs(created)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        zones = {ctx.out(z) for z in self.zones}

        def state(described: dict[str, Any]) -> str:
            ready = described["FirewallStatus"].get("Status") == "READY" and zones <= set(self._outputs(described)["endpoints"])
            return "READY" if ready else described["FirewallStatus"].get("Status", "unknown")

        described = ctx.wait(lambda: self._describe(ctx, out["name"]) or {"FirewallStatus": {"Status": "missing"}},
                             status_of=state, target={"READY"}, failure={"DELETING", "missing"}, what=f"firewall {out['name']}",
                             timeout_seconds=max(ctx.spec.timeouts.resource_seconds, FIREWALL_SECONDS))
        return self._outputs(described)

    def delete(self, ctx: Context, out: Outputs) -> None:
        self.client(ctx).delete_firewall(FirewallArn=out["firewall_arn"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        # On AWS this often takes over 20 minutes; its subnets cannot go until it is gone.
        ctx.wait_gone(lambda: self._describe(ctx, out["name"]), what=f"firewall {out['name']}",
                      timeout_seconds=max(ctx.spec.timeouts.resource_seconds, FIREWALL_SECONDS))


def domain_allowlist(domains: list[str], home_net: list[str]) -> dict[str, Any]:
    return {
        "RuleVariables": {"IPSets": {"HOME_NET": {"Definition": home_net}}},
        "RulesSource": {"RulesSourceList": {"Targets": domains, "TargetTypes": ["TLS_SNI", "HTTP_HOST"], "GeneratedRulesType": "ALLOWLIST"}},
    }


def _rule(action: str, protocol: str, destination: str, port: str, sid: int, direction: str = "FORWARD") -> dict[str, Any]:
    return {
        "Action": action,
        "Header": {"Protocol": protocol, "Source": "ANY", "SourcePort": "ANY", "Direction": direction, "Destination": destination, "DestinationPort": port},
        "RuleOptions": [{"Keyword": "sid", "Settings": [str(sid)]}],
    }


def deny_protocols(home_net: list[str]) -> dict[str, Any]:
    return {
        "RuleVariables": {"IPSets": {"HOME_NET": {"Definition": home_net}}},
        "RulesSource": {"StatefulRules": [_rule("DROP", p, "ANY", "ANY", i + 1, direction="ANY") for i, p in enumerate(("ICMP", "FTP", "SSH"))]},
    }


def allow_control_plane(control_plane_cidr: str, home_net: list[str]) -> dict[str, Any]:
    return {
        "RuleVariables": {"IPSets": {"HOME_NET": {"Definition": home_net}}},
        "RulesSource": {"StatefulRules": [_rule("PASS", "TCP", control_plane_cidr, "443", 1)]},
    }
