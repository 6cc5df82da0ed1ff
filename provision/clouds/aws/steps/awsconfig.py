"""AWS Config: the configuration recorder with its delivery channel, and this deployment's managed rules.

AWS allows one customer-managed recorder (and one delivery channel) per account and region. One that
exists, under any name, is adopted with its channel: read, never stopped, reconfigured or deleted; the
delivery bucket and role (awsconfig_delivery.py) are then not made either. Otherwise the deployment makes
its own, named `<deployment>-config`: that name is how it is known as ours (Config does not tag
recorders the way our other resources are tagged). The rules are always ours, on either recorder.
"""

from __future__ import annotations

from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code
from provision.errors import OwnershipConflict, ResourceFailed
from provision.orchestrator.step import (
    TAG_DEPLOYMENT,
    TAG_STEP,
    Context,
    Outputs,
    Ref,
    Step,
)

_DELETING = ("DELETING", "DELETING_RESULTS")


def recorder_name(ctx: Context) -> str:
    """The recorder (and delivery channel) a deployment makes when the region has none."""
    return f"{ctx.deployment}-config"


def customer_recorder(ctx: Context) -> dict[str, Any] | None:
    """The region's customer-managed recorder, if any (service-linked ones, owned by other AWS services,
    name a servicePrincipal and do not count against the limit of one)."""
    recorders = aws.client(ctx, "config").describe_configuration_recorders()["ConfigurationRecorders"]
    return next((r for r in recorders if not r.get("servicePrincipal")), None)


def foreign_recorder(ctx: Context) -> dict[str, Any] | None:
    """The region's recorder when it is someone else's: then it is adopted and we make none."""
    recorder = customer_recorder(ctx)
    return recorder if recorder is not None and recorder["name"] != recorder_name(ctx) else None


class ConfigRecorder(Step):
    kind = "config.recorder"
    typical_seconds = 5.0
    produces = ("recorder_name", "adopted", "delivery_channel", "recording", "include_global")

    def __init__(self, step_id: str, role: str, bucket: str, record_global: bool = True):
        super().__init__(step_id, needs=(role, bucket))
        self.role_arn = Ref(role, "role_arn")
        self.bucket = Ref(bucket, "bucket")
        self.record_global = record_global

    def find(self, ctx: Context) -> Outputs | None:
        recorder = customer_recorder(ctx)
        if recorder is None:
            return None
        config, name = aws.client(ctx, "config"), recorder["name"]
        channels = config.describe_delivery_channels()["DeliveryChannels"]
        statuses = config.describe_configuration_recorder_status(ConfigurationRecorderNames=[name])["ConfigurationRecordersStatus"]
        return {
            "recorder_name": name,
            "adopted": name != recorder_name(ctx),
            "delivery_channel": channels[0]["name"] if channels else "",
            "recording": bool(statuses and statuses[0].get("recording")),
            "include_global": bool((recorder.get("recordingGroup") or {}).get("includeGlobalResourceTypes")),
        }

    def _recorder(self, ctx: Context) -> dict[str, Any]:
        role_arn = ctx.out(self.role_arn)
        if not role_arn:
            # The role step saw another recorder (so made no role), which has gone since.
            raise ResourceFailed(f"AWS Config recorder {recorder_name(ctx)}", "without a role", "the region's recorder was deleted during the run; run `up` again")
        return {
            "name": recorder_name(ctx),
            "roleARN": role_arn,
            "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": self.record_global},
        }

    def create(self, ctx: Context) -> Outputs:
        try:
            aws.client(ctx, "config").put_configuration_recorder(ConfigurationRecorder=self._recorder(ctx))
        except Exception as exc:
            # Someone set up Config since find: theirs is the region's recorder, adopted.
            if error_code(exc) == "MaxNumberOfConfigurationRecordersExceededException" and (found := self.find(ctx)) is not None:
                return found
            raise
        return {"recorder_name": recorder_name(ctx), "adopted": False, "delivery_channel": "", "recording": False, "include_global": self.record_global}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        if out["adopted"]:
            if not out["recording"]:
                ctx.log.warning("the region's AWS Config recorder is not recording; adopted as it is (rules evaluate nothing until it records)", recorder=out["recorder_name"])
            return out
        config, name = aws.client(ctx, "config"), recorder_name(ctx)
        # Each put is idempotent: re-applying them converges a recorder someone changed by hand.
        ctx.call(lambda: config.put_configuration_recorder(ConfigurationRecorder=self._recorder(ctx)), f"{self.id} recorder")
        channels = ctx.call(lambda: config.describe_delivery_channels()["DeliveryChannels"], f"{self.id} channels")
        other = next((c["name"] for c in channels if c["name"] != name), None)
        if other is not None:
            raise OwnershipConflict(
                f"AWS Config delivery channel {other!r} exists without a recorder of its own (one channel per region); "
                "delete it or set up its recorder, then run `up` again"
            )
        bucket = ctx.out(self.bucket)
        channel = {"name": name, "s3BucketName": bucket, "configSnapshotDeliveryProperties": {"deliveryFrequency": "TwentyFour_Hours"}}
        ctx.call(lambda: config.put_delivery_channel(DeliveryChannel=channel), f"{self.id} delivery channel")
        ctx.call(lambda: config.start_configuration_recorder(ConfigurationRecorderName=name), f"{self.id} start")
        ctx.wait(
            lambda: config.describe_configuration_recorder_status(ConfigurationRecorderNames=[name])["ConfigurationRecordersStatus"][0],
            status_of=lambda s: "recording" if s.get("recording") else str(s.get("lastStatus") or "stopped").lower(),
            target={"recording"},
            what=f"AWS Config recorder {name}",
            detail_of=lambda s: str(s.get("lastErrorMessage") or ""),
        )
        return {**out, "delivery_channel": name, "recording": True, "include_global": self.record_global}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return not found["adopted"] and (
            not found["recording"] or found["delivery_channel"] != recorder_name(ctx) or found["include_global"] != self.record_global
        )

    def delete(self, ctx: Context, out: Outputs) -> None:
        recorder = customer_recorder(ctx)
        name = recorder_name(ctx)
        if recorder is None or recorder["name"] != name:
            if out.get("adopted"):
                ctx.log.info("leaving the region's AWS Config recorder in place (adopted)", recorder=out.get("recorder_name"))
            return
        config = aws.client(ctx, "config")
        config.stop_configuration_recorder(ConfigurationRecorderName=name)
        # Config refuses to delete the last delivery channel while its recorder still records.
        ctx.wait(
            lambda: config.describe_configuration_recorder_status(ConfigurationRecorderNames=[name])["ConfigurationRecordersStatus"][0],
            status_of=lambda s: "recording" if s.get("recording") else "stopped",
            target={"stopped"},
            what=f"AWS Config recorder {name} stop",
        )
        if any(c["name"] == name for c in config.describe_delivery_channels()["DeliveryChannels"]):
            config.delete_delivery_channel(DeliveryChannelName=name)
        config.delete_configuration_recorder(ConfigurationRecorderName=name)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        name = recorder_name(ctx)

        def ours() -> dict[str, Any] | None:
            recorder = customer_recorder(ctx)
            return recorder if recorder is not None and recorder["name"] == name else None

        ctx.wait_gone(ours, what=f"AWS Config recorder {name}")


class ConfigRules(Step):
    """AWS managed rules named `<deployment>-<identifier>`, tagged in the create call. One step for the
    set, so a rule dropped from the spec is deleted when the deployment converges."""

    kind = "config.rules"
    produces = ("rules",)

    def __init__(self, step_id: str, recorder: str, identifiers: tuple[str, ...]):
        # Config refuses a managed rule until the region has a recorder.
        super().__init__(step_id, needs=(recorder,))
        self.identifiers = tuple(identifiers)

    def resource_id(self, out: Outputs) -> str | None:
        return f"{len(out.get('rules', []))} rules" if "rules" in out else None

    def rule_name(self, ctx: Context, identifier: str) -> str:
        return f"{ctx.deployment}-{identifier.lower().replace('_', '-')}"

    def _wanted(self, ctx: Context) -> dict[str, str]:
        return {self.rule_name(ctx, i): i for i in self.identifiers}

    def _live(self, ctx: Context) -> list[dict[str, Any]]:
        """This step's rules as Config lists them (deleted ones aside), each checked for our tags."""
        config, prefix, wanted = aws.client(ctx, "config"), f"{ctx.deployment}-", self._wanted(ctx)
        rules = [r for page in config.get_paginator("describe_config_rules").paginate() for r in page.get("ConfigRules", [])]
        ours = []
        for rule in rules:
            if not rule["ConfigRuleName"].startswith(prefix) or rule.get("ConfigRuleState") in _DELETING:
                continue
            tags = {t["Key"]: t["Value"] for t in config.list_tags_for_resource(ResourceArn=rule["ConfigRuleArn"]).get("Tags", [])}
            if tags.get(TAG_DEPLOYMENT) == ctx.deployment and tags.get(TAG_STEP) == self.id:
                ours.append(rule)
            elif rule["ConfigRuleName"] in wanted:
                raise OwnershipConflict(
                    f"AWS Config rule {rule['ConfigRuleName']} exists but is not tagged {TAG_DEPLOYMENT}={ctx.deployment}; "
                    "rename the deployment or delete the rule"
                )
        return ours

    def find(self, ctx: Context) -> Outputs | None:
        live = self._live(ctx)
        return {"rules": sorted(r["ConfigRuleName"] for r in live)} if live else None

    def _put(self, ctx: Context, name: str, identifier: str) -> None:
        aws.client(ctx, "config").put_config_rule(
            ConfigRule={
                "ConfigRuleName": name,
                "Description": f"AWS managed rule {identifier} (deployment {ctx.deployment})",
                "Source": {"Owner": "AWS", "SourceIdentifier": identifier},
            },
            Tags=aws.tags(ctx, self.id),
        )

    def create(self, ctx: Context) -> Outputs:
        for name, identifier in self._wanted(ctx).items():
            self._put(ctx, name, identifier)
        return {"rules": sorted(self._wanted(ctx))}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        wanted, present = self._wanted(ctx), set(out["rules"])
        for name in sorted(set(wanted) - present):
            ctx.call(lambda name=name: self._put(ctx, name, wanted[name]), f"{self.id} put {name}")
        for name in sorted(present - set(wanted)):  # dropped from the spec
            ctx.call(lambda name=name: self._delete(ctx, name), f"{self.id} delete {name}")
        ctx.wait(
            lambda: {r["ConfigRuleName"] for r in self._live(ctx)},
            status_of=lambda names: "ready" if names == set(wanted) else "pending",
            target={"ready"},
            what=f"AWS Config rules of {ctx.deployment}",
            detail_of=lambda names: f"missing {sorted(set(wanted) - names)}, extra {sorted(names - set(wanted))}",
        )
        return {"rules": sorted(wanted)}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return set(found["rules"]) != set(self._wanted(ctx))

    @staticmethod
    def _delete(ctx: Context, name: str) -> None:
        try:
            aws.client(ctx, "config").delete_config_rule(ConfigRuleName=name)
        except Exception as exc:
            if error_code(exc) != "NoSuchConfigRuleException":  # gone already: a retried delete
                raise

    def delete(self, ctx: Context, out: Outputs) -> None:
        # Only what carries our tags now, whatever the state file remembers.
        for rule in self._live(ctx):
            self._delete(ctx, rule["ConfigRuleName"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self._live(ctx) or None, what=f"AWS Config rules of {ctx.deployment}")
