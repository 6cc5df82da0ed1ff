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

# A resource being deleted is as good as gone for `find`; `create` first waits for it to go (ARM refuses a PUT
# until it has). States in which ARM refuses another write on the resource, until the operation finishes.
GOING = frozenset({"Deleting"})
BUSY = frozenset({"Accepted", "Creating", "Updating", "Provisioning", "Deleting", "Running"})


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
        # After a crash mid-teardown the resource may still be going: wait it out with the step's own timeout,
        # not the retry deadline a refused PUT (409) would otherwise be retried for.
        current = self.read(ctx)
        if current is not None and az.provisioning_state(current) in GOING:
            self.wait_deleted(ctx, {})
        started = self.put(ctx, self.body(ctx))
        return self.outputs(az.as_json(started.result() if hasattr(started, "result") else started))

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        # The engine retries find, create and delete; calls made here go through ctx.call themselves.
        current = ctx.call(lambda: self.read(ctx), f"{self.id} read")
        if current is not None and az.provisioning_state(current) in az.FAILED:
            # Found Failed (an earlier run's operation failed): ARM's own remedy is the same PUT again, once per run.
            ctx.log.warning("resource is Failed; sending its PUT again", resource_id=current.get("id"))
            ctx.call(lambda: self.put(ctx, self.body(ctx)), f"{self.id} put again")
        resource = ctx.wait(
            lambda: az.as_json(self.get(ctx)), status_of=self.status_of, target={az.READY}, failure=set(az.FAILED),
            what=f"{self.what} {self.name}", detail_of=_detail, timeout_seconds=self.timeout(ctx),
        )
        return self.outputs(resource)

    def timeout(self, ctx: Context) -> float | None:
        return None

    def delete(self, ctx: Context, out: Outputs) -> None:
        current = self.read(ctx)
        if current is None:
            return
        state = az.provisioning_state(current)
        if state in GOING:
            return  # an earlier run's DELETE is still running: wait_deleted waits for it
        if state in BUSY:
            # ARM refuses a DELETE while another operation runs (a create a crash left in flight): let it finish.
            ctx.wait(lambda: az.as_json(self.get(ctx)), status_of=az.provisioning_state, target={az.READY, *az.FAILED},
                     what=f"{self.what} {self.name} (before deleting it)", timeout_seconds=self.timeout(ctx))
        self.remove(ctx)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        def probe() -> str:
            resource = self.read(ctx)
            if resource is None:
                return "gone"
            # A delete that failed asynchronously leaves the resource Failed: say so now, not at the timeout.
            return az.provisioning_state(resource)

        ctx.wait(probe, status_of=lambda s: s, target={"gone"}, failure=set(az.FAILED),
                 what=f"{self.what} {self.name} deletion", detail_of=lambda s: "ARM reports the delete failed", timeout_seconds=self.timeout(ctx))


def _detail(resource: dict[str, Any]) -> str:
    error = az.props(resource).get("error") or az.props(resource).get("statusMessage")
    return str(error) if error else f"provisioningState {az.provisioning_state(resource)}"
