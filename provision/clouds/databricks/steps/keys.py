"""Databricks customer-managed key configurations: a KMS key registered with the Account API for the
use cases MANAGED_SERVICES and/or STORAGE, which a workspace then names on create.

Key configurations have no name and no tags, so one is found by what it is: its KMS key ARN and its use
cases. Nothing on it says who made it, so the step records that itself (`adopted`): a configuration found
before this step ever attempted a create (`ctx.claimed`) is someone else's registration of the same key
(the user's, another deployment's) and is adopted: used, never deleted, released on teardown. One this
step created is deleted on teardown, unless another workspace uses it by then.
"""

from __future__ import annotations

from typing import Any

from provision.clouds.databricks import context as dbx
from provision.errors import OwnershipConflict
from provision.orchestrator.step import Context, Outputs, Ref, Step

MANAGED_SERVICES, STORAGE = "MANAGED_SERVICES", "STORAGE"


def _value(enum: Any) -> str:
    return getattr(enum, "value", None) or str(enum)


def _uses(config: Any) -> frozenset[str]:
    return frozenset(_value(u) for u in config.use_cases or [])


def _key_region(key_arn: str) -> str:
    return key_arn.split(":")[3]


class CustomerManagedKey(Step):
    kind = "databricks.customer_managed_key"
    produces = ("customer_managed_key_id", "key_arn", "use_cases", "adopted")

    def __init__(self, step_id: str, *, key: str, use_cases: tuple[str, ...]):
        """key: the KMS key step (producing key_arn and alias); use_cases: MANAGED_SERVICES and/or STORAGE."""
        if not use_cases or set(use_cases) - {MANAGED_SERVICES, STORAGE}:
            raise ValueError(f"use_cases must be MANAGED_SERVICES and/or STORAGE, got {use_cases}")
        super().__init__(step_id, needs=(key,))
        self.key_arn, self.key_alias = Ref(key, "key_arn"), Ref(key, "alias")
        self.use_cases = tuple(use_cases)

    @staticmethod
    def _outputs(config: Any, *, adopted: bool) -> Outputs:
        return {
            "customer_managed_key_id": config.customer_managed_key_id,
            "key_arn": config.aws_key_info.key_arn if config.aws_key_info else None,
            "use_cases": sorted(_uses(config)),
            "adopted": adopted,
        }

    def find(self, ctx: Context) -> Outputs | None:
        key_arn = ctx.out_if_known(self.key_arn)
        if key_arn is None:  # plan, before the key exists: nothing can reference it yet
            return None
        wanted = frozenset(self.use_cases)
        matches = [
            c for c in dbx.account(ctx).encryption_keys.list()
            if c.aws_key_info is not None and c.aws_key_info.key_arn == key_arn and _uses(c) == wanted
        ]
        if len(matches) > 1:
            ids = ", ".join(str(c.customer_managed_key_id) for c in matches)
            raise OwnershipConflict(
                f"{len(matches)} Databricks key configurations ({ids}) reference KMS key {key_arn} for {', '.join(sorted(wanted))}; "
                "expected one. Delete the extras that no workspace uses."
            )
        if not matches:
            return None
        # Ours only if this step has attempted a create (a lost response included); else someone else's.
        return self._outputs(matches[0], adopted=self.id not in ctx.claimed)

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.provisioning import CreateAwsKeyInfo, KeyUseCase

        key_arn = ctx.out(self.key_arn)
        info = CreateAwsKeyInfo(
            key_arn=key_arn, key_alias=ctx.out(self.key_alias), key_region=_key_region(key_arn),
            # The storage key also encrypts the clusters' EBS volumes (its policy grants the cross-account role).
            reuse_key_for_cluster_volumes=True if STORAGE in self.use_cases else None,
        )
        config = dbx.account(ctx).encryption_keys.create(use_cases=[KeyUseCase(u) for u in self.use_cases], aws_key_info=info)
        return self._outputs(config, adopted=False)

    def _users(self, ctx: Context, config_id: str) -> list[int]:
        return [
            ws.workspace_id for ws in dbx.account(ctx).workspaces.list()
            if config_id in (ws.managed_services_customer_managed_key_id, ws.storage_customer_managed_key_id)
        ]

    def _adopted(self, ctx: Context, out: Outputs) -> bool:
        # A record without the mark predates it: the same rule as find's.
        return bool(out.get("adopted", self.id not in ctx.claimed))

    def delete(self, ctx: Context, out: Outputs) -> None:
        config_id = out["customer_managed_key_id"]
        if self._adopted(ctx, out):
            ctx.log.info("leaving the key configuration in place (adopted: this step did not create it)", customer_managed_key_id=config_id)
            return
        # This deployment's workspace is gone by now (it needs this step); another's may still use a shared key.
        users = self._users(ctx, config_id)
        if users:
            ctx.log.warning("key configuration left in place: another workspace uses it", customer_managed_key_id=config_id, workspaces=users)
            return
        dbx.account(ctx).encryption_keys.delete(customer_managed_key_id=config_id)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        config_id = out["customer_managed_key_id"]
        if self._adopted(ctx, out) or self._users(ctx, config_id):
            return  # left in place by delete: it is another workspace's now
        ctx.wait_gone(lambda: dbx.account(ctx).encryption_keys.get(customer_managed_key_id=config_id), what=f"key configuration {config_id}")
