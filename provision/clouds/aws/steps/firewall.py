"""AWS Network Firewall for data-exfiltration protection: strict-order stateful rule groups, a policy that
drops by default, the firewall.

Names are deterministic (`<deployment>-<step>-strict`) and every resource is tagged, so a create whose
response was lost is found again by name. Rule groups and the policy converge to the spec: a changed
allow-list, a new spoke's CIDR in HOME_NET or a moved metastore address is an update, not a replacement.

AWS fixes a rule group's and a policy's rule order at creation (UpdateRuleGroup and UpdateFirewallPolicy
refuse a new RuleOrder), so a deployment made by an older provision, whose DEFAULT_ACTION_ORDER resources
are named `<deployment>-<step>`, converges in place: each step creates its strict successor and records the
old one as `legacy_arn`; the firewall (the same one, never replaced) is associated with the strict policy;
then the old policy and rule groups are deleted, and the `STRICT_FACT` fact stops the lookups of old names.
Until then a teardown deletes both generations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import is_not_found
from provision.clouds.aws.steps.firewall_rules import STRICT_ORDER
from provision.errors import OwnershipConflict
from provision.orchestrator.drift import Drift, fields
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Ref, Step

# A firewall takes about 6 minutes to create and often over 20 to delete on AWS.
FIREWALL_SECONDS = 3600.0
# Drop what no rule passed, once established: the TCP handshake goes through so that the TLS SNI and HTTP
# Host of the next packet can be matched (aws:drop_strict would drop the handshake first and needs explicit
# pass rules for it). The alert logs those drops when alert logging is configured (it costs nothing otherwise).
STATEFUL_DEFAULT_ACTIONS = ["aws:drop_established", "aws:alert_established"]
# Priorities spaced by 100, as the API reference suggests, so a group can be inserted between two later.
PRIORITY_STEP = 100
# A fact, kept in the state file: every firewall resource is strict-order and no DEFAULT_ACTION_ORDER one
# of an older provision is left, so finds stop looking for the old names.
STRICT_FACT = "network_firewall.strict_order"


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


def _absent(read: Callable[[], Any]) -> Any | None:
    try:
        return read()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


class _Versioned(Step):
    """A Network Firewall resource found by its deterministic name, or, until the deployment is all strict
    order, by the name an older provision gave its DEFAULT_ACTION_ORDER predecessor."""

    arn_key: str = ""

    def name(self, ctx: Context) -> str:
        return f"{ctx.name_for(self.id)}-strict"

    def legacy_name(self, ctx: Context) -> str:
        # An imported (Terraform-built) policy or rule group is found, and then replaced, as a predecessor is.
        return ctx.name_of(self.id, ctx.name_for(self.id))

    def client(self, ctx: Context) -> Any:
        return aws.client(ctx, "network-firewall")

    def _describe(self, ctx: Context, name: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def _found(self, ctx: Context, described: dict[str, Any]) -> Outputs:
        raise NotImplementedError

    def find(self, ctx: Context) -> Outputs | None:
        legacy_possible = not ctx.facts.get(STRICT_FACT)
        legacy = self._describe(ctx, self.legacy_name(ctx)) if legacy_possible else None
        legacy_out = self._found(ctx, legacy) if legacy is not None else None
        current = self._describe(ctx, self.name(ctx))
        if current is None:
            # Only the predecessor: the step converges (wait_ready creates the strict one).
            return {**legacy_out, "legacy_arn": legacy_out[self.arn_key]} if legacy_out else None
        return {**self._found(ctx, current), "legacy_arn": legacy_out[self.arn_key] if legacy_out else None}

    def is_legacy(self, ctx: Context, out: Outputs) -> bool:
        return out.get("name") != self.name(ctx)

    def successor(self, ctx: Context, legacy: Outputs) -> Outputs:
        """The strict resource beside the predecessor `legacy`: found by name (a create whose answer was lost
        made it already), else created."""

        def made() -> Outputs:
            current = self._describe(ctx, self.name(ctx))
            return self._found(ctx, current) if current is not None else self.create(ctx)

        return {**ctx.call(made, f"{self.id} create strict"), "legacy_arn": legacy[self.arn_key]}

    def _arns(self, out: Outputs) -> list[str]:
        return list(dict.fromkeys(a for a in (out.get(self.arn_key), out.get("legacy_arn")) if a))

    def delete(self, ctx: Context, out: Outputs) -> None:
        # One already gone counts as deleted and does not stop the other.
        for arn in self._arns(out):
            _absent(lambda arn=arn: self._delete(ctx, arn))

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        what = self.kind.split(".")[-1].replace("_", " ")
        for arn in self._arns(out):
            ctx.wait_gone(lambda arn=arn: self._describe_arn(ctx, arn), what=f"{what} {arn.rsplit('/', 1)[-1]}")

    def _delete(self, ctx: Context, arn: str) -> Any:
        raise NotImplementedError

    def _describe_arn(self, ctx: Context, arn: str) -> Any:
        raise NotImplementedError


class RuleGroup(_Versioned):
    """A strict-order stateful rule group whose body is `body` (a RuleGroup document, or a function of the
    run's context that makes one, computed once per run)."""

    kind = "network_firewall.rule_group"
    produces = ("rule_group_arn", "name", "digest", "legacy_arn")
    arn_key = "rule_group_arn"

    def __init__(self, step_id: str, *, capacity: int, body: dict[str, Any] | Callable[[Context], dict[str, Any]], needs: tuple[str, ...] = ()):
        super().__init__(step_id, needs=needs)
        self.capacity, self._body = capacity, body
        self._computed: dict[str, Any] | None = None

    def body(self, ctx: Context) -> dict[str, Any]:
        if self._computed is None:
            self._computed = self._body(ctx) if callable(self._body) else self._body
        assert (self._computed.get("StatefulRuleOptions") or {}).get("RuleOrder") == STRICT_ORDER, self.id
        return self._computed

    def _describe(self, ctx: Context, name: str) -> dict[str, Any] | None:
        return _absent(lambda: self.client(ctx).describe_rule_group(RuleGroupName=name, Type="STATEFUL"))

    def _found(self, ctx: Context, described: dict[str, Any]) -> Outputs:
        response = described["RuleGroupResponse"]
        _owned(ctx, response.get("Tags", []), f"rule group {response['RuleGroupName']}")
        return {"rule_group_arn": response["RuleGroupArn"], "name": response["RuleGroupName"], "digest": _tag(response.get("Tags", []), DIGEST_TAG)}

    def needs_converge(self, ctx: Context, out: Outputs) -> bool:
        return self.is_legacy(ctx, out) or out.get("digest") != _digest(self.body(ctx))

    def drift(self, ctx: Context, out: Outputs) -> list[Drift]:
        # The digest is what provision last applied (AWS normalises what it returns): a changed spec shows, an edit by hand does not.
        return fields({"name": self.name(ctx), "rules (digest)": _digest(self.body(ctx))}, {"name": out.get("name"), "rules (digest)": out.get("digest")})

    def create(self, ctx: Context) -> Outputs:
        body = self.body(ctx)
        created = self.client(ctx).create_rule_group(
            RuleGroupName=self.name(ctx), Type="STATEFUL", Capacity=self.capacity, RuleGroup=body,
            Description=f"{ctx.deployment}: {self.id}", Tags=aws.tags(ctx, self.id) + [{"Key": DIGEST_TAG, "Value": _digest(body)}],
        )
        return {"rule_group_arn": created["RuleGroupResponse"]["RuleGroupArn"], "name": self.name(ctx), "digest": _digest(body), "legacy_arn": None}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        if self.is_legacy(ctx, out):
            # The predecessor's rule order cannot change: make the strict one beside it (the policy moves later).
            out = self.successor(ctx, out)
        wanted = self.body(ctx)
        if out.get("digest") != _digest(wanted):
            described = ctx.call(lambda: self._describe(ctx, self.name(ctx)), f"{self.id} read")
            assert described is not None
            ctx.call(lambda: self.client(ctx).update_rule_group(
                UpdateToken=described["UpdateToken"], RuleGroupArn=out["rule_group_arn"], Type="STATEFUL", RuleGroup=wanted,
            ), f"{self.id} update")
            ctx.call(lambda: self.client(ctx).tag_resource(
                ResourceArn=out["rule_group_arn"], Tags=[{"Key": DIGEST_TAG, "Value": _digest(wanted)}],
            ), f"{self.id} digest")
        return {**out, "digest": _digest(wanted)}

    def _delete(self, ctx: Context, arn: str) -> Any:
        return self.client(ctx).delete_rule_group(RuleGroupArn=arn)

    def _describe_arn(self, ctx: Context, arn: str) -> Any:
        return self.client(ctx).describe_rule_group(RuleGroupArn=arn)


class FirewallPolicy(_Versioned):
    """The strict-order policy: the rule groups in the order given (priorities 100, 200, ...), then the
    default drop of established flows."""

    kind = "network_firewall.firewall_policy"
    produces = ("policy_arn", "name", "legacy_arn")
    arn_key = "policy_arn"

    def __init__(self, step_id: str, *, rule_groups: list[str]):
        super().__init__(step_id, needs=tuple(rule_groups))
        self.rule_group_arns = [Ref(g, "rule_group_arn") for g in rule_groups]

    def document(self, ctx: Context) -> dict[str, Any]:
        return {
            # Stateless engine: hand everything to the stateful rule groups.
            "StatelessDefaultActions": ["aws:forward_to_sfe"],
            "StatelessFragmentDefaultActions": ["aws:forward_to_sfe"],
            "StatefulEngineOptions": {"RuleOrder": STRICT_ORDER},
            "StatefulDefaultActions": list(STATEFUL_DEFAULT_ACTIONS),
            "StatefulRuleGroupReferences": [
                {"ResourceArn": ctx.out(arn), "Priority": PRIORITY_STEP * (i + 1)} for i, arn in enumerate(self.rule_group_arns)
            ],
        }

    def _describe(self, ctx: Context, name: str) -> dict[str, Any] | None:
        return _absent(lambda: self.client(ctx).describe_firewall_policy(FirewallPolicyName=name))

    def _found(self, ctx: Context, described: dict[str, Any]) -> Outputs:
        response = described["FirewallPolicyResponse"]
        _owned(ctx, response.get("Tags", []), f"firewall policy {response['FirewallPolicyName']}")
        return {"policy_arn": response["FirewallPolicyArn"], "name": response["FirewallPolicyName"]}

    def needs_converge(self, ctx: Context, out: Outputs) -> bool:
        return self.is_legacy(ctx, out)

    def create(self, ctx: Context) -> Outputs:
        created = self.client(ctx).create_firewall_policy(
            FirewallPolicyName=self.name(ctx), FirewallPolicy=self.document(ctx), Tags=aws.tags(ctx, self.id),
            Description=f"{ctx.deployment}: {self.id}",
        )
        return {"policy_arn": created["FirewallPolicyResponse"]["FirewallPolicyArn"], "name": self.name(ctx), "legacy_arn": None}

    @staticmethod
    def _shape(document: dict[str, Any]) -> tuple[Any, ...]:
        references = sorted((r.get("ResourceArn"), r.get("Priority")) for r in document.get("StatefulRuleGroupReferences") or [])
        return references, sorted(document.get("StatefulDefaultActions") or [])

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        if self.is_legacy(ctx, out):
            out = self.successor(ctx, out)
        described = ctx.call(lambda: self._describe(ctx, self.name(ctx)), f"{self.id} read")
        wanted = self.document(ctx)
        if described is not None and self._shape(described.get("FirewallPolicy", {})) != self._shape(wanted):
            ctx.call(lambda: self.client(ctx).update_firewall_policy(
                UpdateToken=described["UpdateToken"], FirewallPolicyArn=out["policy_arn"], FirewallPolicy=wanted,
            ), f"{self.id} update")
        return out

    def _delete(self, ctx: Context, arn: str) -> Any:
        return self.client(ctx).delete_firewall_policy(FirewallPolicyArn=arn)

    def _describe_arn(self, ctx: Context, arn: str) -> Any:
        return self.client(ctx).describe_firewall_policy(FirewallPolicyArn=arn)


class Firewall(Step):
    """The firewall in one subnet per zone; outputs its per-zone endpoint ids for the route tables. It is
    never replaced: a new policy is associated with it (its policy-change protection lifted for that call
    only), and the policy and rule groups it no longer uses (`retire`: their steps' `legacy_arn`, the policy
    first) are deleted after it."""
    typical_seconds = 360.0  # PROVISIONING -> READY

    kind = "network_firewall.firewall"
    produces = ("firewall_arn", "name", "status", "endpoints", "policy_arn", "policy_protected")

    def __init__(self, step_id: str, *, vpc: str, subnets: list[str], policy: str, retire: tuple[str, ...] = ()):
        super().__init__(step_id, needs=tuple(dict.fromkeys((vpc, *subnets, policy, *retire))))
        self.vpc_id, self.policy_arn = Ref(vpc, "vpc_id"), Ref(policy, "policy_arn")
        self.subnet_ids, self.zones = [Ref(s, "subnet_id") for s in subnets], [Ref(s, "zone") for s in subnets]
        self.retired = [Ref(s, "legacy_arn") for s in retire]

    def name(self, ctx: Context) -> str:
        return ctx.name_of(self.id, ctx.name_for(self.id))  # an imported firewall keeps its name (fact `names`)

    def client(self, ctx: Context) -> Any:
        return aws.client(ctx, "network-firewall")

    def _describe(self, ctx: Context, name: str | None = None) -> dict[str, Any] | None:
        return _absent(lambda: self.client(ctx).describe_firewall(FirewallName=name or self.name(ctx)))

    @staticmethod
    def _outputs(described: dict[str, Any]) -> Outputs:
        firewall, status = described["Firewall"], described.get("FirewallStatus", {})
        endpoints = {
            zone: state["Attachment"]["EndpointId"]
            for zone, state in (status.get("SyncStates") or {}).items() if state.get("Attachment", {}).get("EndpointId")
        }
        return {
            "firewall_arn": firewall["FirewallArn"], "name": firewall["FirewallName"], "status": status.get("Status"), "endpoints": endpoints,
            "policy_arn": firewall.get("FirewallPolicyArn"), "policy_protected": firewall.get("FirewallPolicyChangeProtection", True),
        }

    def find(self, ctx: Context) -> Outputs | None:
        described = self._describe(ctx)
        if described is None:
            return None
        _owned(ctx, described["Firewall"].get("Tags", []), f"firewall {self.name(ctx)}")
        return self._outputs(described)

    def needs_converge(self, ctx: Context, out: Outputs) -> bool:
        return (out.get("policy_arn") != ctx.out(self.policy_arn) or not out.get("policy_protected")
                or any(ctx.out(r) for r in self.retired))

    def drift(self, ctx: Context, out: Outputs) -> list[Drift]:
        drifts = fields({"policy_arn": ctx.out(self.policy_arn), "policy_protected": True}, {**out, "policy_protected": bool(out.get("policy_protected"))})
        return drifts + [Drift("retired predecessor", None, ctx.out(r)) for r in self.retired if ctx.out(r)]

    def create(self, ctx: Context) -> Outputs:
        created = self.client(ctx).create_firewall(
            FirewallName=self.name(ctx), FirewallPolicyArn=ctx.out(self.policy_arn), VpcId=ctx.out(self.vpc_id),
            SubnetMappings=[{"SubnetId": ctx.out(s)} for s in self.subnet_ids], DeleteProtection=False,
            Tags=aws.tags(ctx, self.id),
        )
        return self._outputs(created)

    def _ready(self, ctx: Context, out: Outputs) -> dict[str, Any]:
        zones = {ctx.out(z) for z in self.zones}

        def state(described: dict[str, Any]) -> str:
            status = described["FirewallStatus"]
            ready = (status.get("Status") == "READY" and status.get("ConfigurationSyncStateSummary", "IN_SYNC") == "IN_SYNC"
                     and zones <= set(self._outputs(described)["endpoints"]))
            return "READY" if ready else status.get("Status", "unknown")

        return ctx.wait(lambda: self._describe(ctx, out["name"]) or {"FirewallStatus": {"Status": "missing"}},
                        status_of=state, target={"READY"}, failure={"DELETING", "missing"}, what=f"firewall {out['name']}",
                        timeout_seconds=max(ctx.spec.timeouts.resource_seconds, FIREWALL_SECONDS))

    def _protect(self, ctx: Context, out: Outputs, token: str, on: bool) -> str:
        answer = ctx.call(lambda: self.client(ctx).update_firewall_policy_change_protection(
            UpdateToken=token, FirewallArn=out["firewall_arn"], FirewallPolicyChangeProtection=on,
        ), f"{self.id} policy change protection {'on' if on else 'off'}")
        return answer["UpdateToken"]

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        described = self._ready(ctx, out)
        wanted = ctx.out(self.policy_arn)
        firewall = described["Firewall"]
        if firewall["FirewallPolicyArn"] != wanted or not firewall.get("FirewallPolicyChangeProtection", True):
            token = described["UpdateToken"]
            if firewall["FirewallPolicyArn"] != wanted:
                if firewall.get("FirewallPolicyChangeProtection", True):
                    token = self._protect(ctx, out, token, False)
                token = ctx.call(lambda: self.client(ctx).associate_firewall_policy(
                    UpdateToken=token, FirewallArn=out["firewall_arn"], FirewallPolicyArn=wanted,
                ), f"{self.id} associate policy")["UpdateToken"]
            self._protect(ctx, out, token, True)
            described = self._ready(ctx, out)
        self._retire(ctx)
        return self._outputs(described)

    def _retire(self, ctx: Context) -> None:
        """Delete what the firewall used before (the policy first: it holds the rule groups), then remember that
        nothing of an older provision is left."""
        client = self.client(ctx)
        for ref in self.retired:
            arn = ctx.out(ref)
            if not arn:
                continue
            policy = ":firewall-policy/" in arn
            delete = client.delete_firewall_policy if policy else client.delete_rule_group
            read = client.describe_firewall_policy if policy else client.describe_rule_group
            key = "FirewallPolicyArn" if policy else "RuleGroupArn"
            ctx.call(lambda: _absent(lambda: delete(**{key: arn})), f"{ref.step} delete {arn.rsplit('/', 1)[-1]}")  # noqa: B023  (called at once)
            ctx.wait_gone(lambda: read(**{key: arn}), what=arn.rsplit("/", 1)[-1])  # noqa: B023  (called at once)
        ctx.fact(STRICT_FACT, lambda: True)

    def delete(self, ctx: Context, out: Outputs) -> None:
        self.client(ctx).delete_firewall(FirewallArn=out["firewall_arn"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        # On AWS this often takes over 20 minutes; its subnets cannot go until it is gone.
        ctx.wait_gone(lambda: self._describe(ctx, out["name"]), what=f"firewall {out['name']}",
                      timeout_seconds=max(ctx.spec.timeouts.resource_seconds, FIREWALL_SECONDS))
