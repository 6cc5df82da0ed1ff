"""One ARM resource at a deterministic name: the shape every Azure step shares.

ARM is uniform where EC2 is not: GET by name (404: absent), an idempotent PUT that starts a long-running
operation, `properties.provisioningState` until Succeeded (or Failed/Canceled), DELETE, then GET until 404. A
step names its resource and says which SDK calls reach it; this base does the rest. PUTs start with
`polling=False` and are waited for with the run's own poll policy, never the SDK's 30 s interval. A PUT retried
after a lost response is harmless (ARM's PUT is idempotent); after a crash, `find` sees the resource again by name,
and `wait_ready` waits for an operation still in progress rather than starting another.
"""

from __future__ import annotations

from typing import Any, ClassVar

from provision.clouds.azure import context as az
from provision.clouds.azure.errors import is_not_found
from provision.orchestrator.step import Context, Outputs, Step

# A resource being deleted is as good as gone for `find`: a new PUT waits (ARM answers 409 until it is).
GOING = frozenset({"Deleting"})


class ArmResource(Step):
    """Subclasses set `what`, `typical_seconds`, `produces`, implement `get`, `put`, `remove`, `body` and
    `outputs`, and may refine `status_of`."""

    what: ClassVar[str] = "resource"
    # Top-level ARM resources carry our tags; sub-resources (subnets, zone groups) have none and are ours
    # because their parent is.
    tagged: ClassVar[bool] = True

    def __init__(self, step_id: str, *, group: str, name: str, needs: tuple[str, ...] = ()):
        super().__init__(step_id, needs=needs)
        self.group, self.name = group, name

    # the ARM calls -------------------------------------------------------------------------------------
    def get(self, ctx: Context) -> Any:
        raise NotImplementedError

    def put(self, ctx: Context, body: dict[str, Any]) -> Any:
        raise NotImplementedError

    def remove(self, ctx: Context) -> Any:
        raise NotImplementedError

    def body(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def outputs(self, resource: dict[str, Any]) -> Outputs:
        raise NotImplementedError

    def status_of(self, resource: dict[str, Any]) -> str:
        return az.provisioning_state(resource)

    # the step ----------------------------------------------------------------------------------------
    def read(self, ctx: Context) -> dict[str, Any] | None:
        try:
            return az.as_json(self.get(ctx))
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    def find(self, ctx: Context) -> Outputs | None:
        resource = self.read(ctx)
        if resource is None or az.provisioning_state(resource) in GOING:
            return None
        if self.tagged:
            az.check_owner(ctx, self.id, resource, self.what)
        return self.outputs(resource)

    def create(self, ctx: Context) -> Outputs:
        started = self.put(ctx, self.body(ctx))
        return self.outputs(az.as_json(started.result() if hasattr(started, "result") else started))

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        resource = ctx.wait(
            lambda: az.as_json(self.get(ctx)), status_of=self.status_of, target={az.READY}, failure=set(az.FAILED),
            what=f"{self.what} {self.name}", detail_of=_detail, timeout_seconds=self.timeout(ctx),
        )
        return self.outputs(resource)

    def timeout(self, ctx: Context) -> float | None:
        return None

    def delete(self, ctx: Context, out: Outputs) -> None:
        self.remove(ctx)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: az.as_json(self.get(ctx)), what=f"{self.what} {self.name}",
                      status_of=az.provisioning_state, timeout_seconds=self.timeout(ctx))


def _detail(resource: dict[str, Any]) -> str:
    error = az.props(resource).get("error") or az.props(resource).get("statusMessage")
    return str(error) if error else f"provisioningState {az.provisioning_state(resource)}"
