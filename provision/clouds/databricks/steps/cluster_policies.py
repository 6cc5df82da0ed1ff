"""Cluster policies of a workspace, converged in place when their definition changes.

A policy is found by its name in the workspace's `cluster_policies.list()`; its description says which
deployment and step made it. One of that name that is not ours (another description, or no description and this
step never attempted a create) is an OwnershipConflict, never adopted. Definitions are compared as parsed JSON
(a digest of the canonical form), so the API's reformatting is no change; a changed definition is written with
`edit`. The policies go with the workspace, so a teardown that finds the workspace gone has nothing to do.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.errors import is_not_found
from provision.errors import OwnershipConflict
from provision.orchestrator.drift import Drift
from provision.orchestrator.step import Context, Outputs, Ref, Step


def digest(definition: str | dict[str, Any]) -> str:
    """A definition's identity, whatever its key order and whitespace."""
    parsed = json.loads(definition) if isinstance(definition, str) else definition
    return hashlib.sha256(json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _unreachable(exc: BaseException) -> bool:
    """The workspace is gone, or not in a state that serves its API."""
    return is_not_found(exc) or getattr(exc, "error_code", None) == "INVALID_STATE"


class ClusterPolicy(Step):
    kind = "databricks.cluster_policy"
    produces = ("policy_id", "name", "digest")

    def __init__(self, step_id: str, *, name: str, definition: str, workspace: str, after: tuple[str, ...] = ()):
        # Checked before any call (the spec checked it already; a topology may pass its own).
        parsed = json.loads(definition)
        if not isinstance(parsed, dict):
            raise TypeError(f"a cluster policy definition must be a JSON object, got {type(parsed).__name__}")
        super().__init__(step_id, needs=(workspace, *after))
        self.name, self.definition = name, definition
        self.deployment_name = Ref(workspace, "deployment_name")

    def description(self, ctx: Context) -> str:
        return f"Managed by provision: deployment {ctx.deployment}, step {self.id}"

    def _api(self, ctx: Context) -> Any:
        return dbx.workspace(ctx, ctx.out(self.deployment_name)).cluster_policies

    def _outputs(self, policy_id: str, definition: str | None) -> Outputs:
        return {"policy_id": policy_id, "name": self.name, "digest": digest(definition or "{}")}

    def find(self, ctx: Context) -> Outputs | None:
        if ctx.out_if_known(self.deployment_name) is None:  # plan before the workspace exists, or after it went
            return None
        try:
            policies = [p for p in self._api(ctx).list() if p.name == self.name]
        except Exception as exc:
            if _unreachable(exc):
                return None
            raise
        if not policies:
            return None
        if len(policies) > 1:
            raise OwnershipConflict(f"{len(policies)} cluster policies are named {self.name!r}; expected one. Delete the extras.")
        policy = policies[0]
        ours = policy.description == self.description(ctx) or (not policy.description and self.id in ctx.claimed)
        if not ours:
            raise OwnershipConflict(
                f"cluster policy {self.name!r} ({policy.policy_id}) exists in the workspace but is not this deployment's "
                f"(its description is {policy.description!r}); rename the spec's policy or delete that one"
            )
        return self._outputs(policy.policy_id, policy.definition)

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found.get("digest") != digest(self.definition)

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        wanted = digest(self.definition)
        return [] if found.get("digest") == wanted else [Drift("definition (digest)", wanted, found.get("digest"))]

    def create(self, ctx: Context) -> Outputs:
        created = self._api(ctx).create(name=self.name, definition=self.definition, description=self.description(ctx))
        return self._outputs(created.policy_id, self.definition)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        if out.get("digest") == digest(self.definition):
            return out
        ctx.log.info("converging the cluster policy's definition", policy_id=out["policy_id"])
        # `edit` replaces the whole policy: the same call is safe to retry.
        ctx.call(lambda: self._api(ctx).edit(policy_id=out["policy_id"], name=self.name, definition=self.definition,
                                             description=self.description(ctx)), f"{self.id} edit")
        return self._outputs(out["policy_id"], self.definition)

    def delete(self, ctx: Context, out: Outputs) -> None:
        if ctx.out_if_known(self.deployment_name) is None:
            return  # the workspace is gone, and its policies with it
        try:
            self._api(ctx).delete(policy_id=out["policy_id"])
        except Exception as exc:
            if not _unreachable(exc):
                raise

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        if ctx.out_if_known(self.deployment_name) is None:
            return

        def read() -> Any:
            try:
                return self._api(ctx).get(policy_id=out["policy_id"])
            except Exception as exc:
                if _unreachable(exc):
                    return None
                raise

        ctx.wait_gone(read, what=f"cluster policy {out['policy_id']}")
