"""The one step interface, and the context every step receives.

A step reconciles one resource: `find` it (by ownership tags or deterministic name), `create` it if
absent, `wait_ready` until usable, and record its outputs. Teardown runs `delete` then `wait_gone`.
Implementations stay thin: each method reads like the API call it wraps. Retries, checkpoints,
failpoints and logging belong to the engine, not to steps.
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

from structlog.contextvars import bound_contextvars

from provision.orchestrator.errors import OwnershipConflict, ResourceFailed
from provision.orchestrator.retry import RetryPolicy, is_not_found
from provision.orchestrator.wait import PollPolicy, wait_for

if TYPE_CHECKING:
    from provision.orchestrator.clients import Clients
    from provision.spec import Spec

T = TypeVar("T")
Outputs = dict[str, Any]

# The steps whose outputs the running step may read: everything it needs, directly or not. Set by the
# engine per step; steps run concurrently, so reading any other step's outputs would be a race.
READABLE: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar("provision_readable", default=None)

TAG_DEPLOYMENT = "provision:deployment"
TAG_STEP = "provision:step"


@dataclass
class Context:
    spec: "Spec"
    clients: "Clients"
    retry: RetryPolicy
    poll: PollPolicy
    log: Any
    outputs: dict[str, Outputs] = field(default_factory=dict)
    # Steps whose create this deployment has attempted (persisted in the state file): only these may
    # adopt a resource found by deterministic name that lacks our ownership tags.
    claimed: set[str] = field(default_factory=set)
    # Each step's attempt number, so ClientTokens are stable within an attempt and new across attempts.
    attempts: dict[str, int] = field(default_factory=dict)
    # Facts resolved once and then fixed for the deployment's life (e.g. availability zones).
    facts: dict[str, Any] = field(default_factory=dict)
    remember: Callable[[str, Any], None] = lambda key, value: None
    # Steps run on several threads; facts are resolved once, by whichever step asks first.
    _facts_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # lookups -------------------------------------------------------------------------------------
    def out(self, step_id: str, key: str) -> Any:
        """An output of a step this one `needs`; the engine guarantees it is done."""
        readable = READABLE.get()
        if readable is not None and step_id not in readable:
            raise AssertionError(f"a step read the outputs of {step_id}, which it does not need: add it to its needs")
        return self.outputs[step_id][key]

    @property
    def deployment(self) -> str:
        return self.spec.name

    def client_token(self, step_id: str, *inputs: str) -> str:
        """Same attempt and inputs -> same token, so a create retried after a lost response is
        idempotent; a later attempt or changed inputs get a fresh token instead of EC2's remembered result."""
        parts = (self.spec.name, step_id, str(self.attempts.get(step_id, 0)), *inputs)
        return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]

    def availability_zones(self) -> tuple[str, ...]:
        """The spec's zones, or the region's first `az_count` available zones, resolved once and kept in
        the state file so a later run never moves a subnet."""
        network, hub = self.spec.network, self.spec.hub
        assert network is not None or hub is not None, "zones are resolved only for VPCs this deployment builds"
        if network is not None and network.availability_zones:
            return network.availability_zones
        with self._facts_lock:
            return self._resolve_zones(network, hub)

    def _resolve_zones(self, network: Any, hub: Any) -> tuple[str, ...]:
        zones = self.facts.get("availability_zones")
        if not zones:
            found = self.call(
                lambda: self.ec2.describe_availability_zones(
                    Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}]
                )["AvailabilityZones"],
                "availability zones",
            )
            names = sorted(z["ZoneName"] for z in found if z.get("OptInStatus", "opt-in-not-required") == "opt-in-not-required")
            count = network.az_count if network is not None else hub.az_count  # type: ignore[union-attr]
            if len(names) < count:
                raise ResourceFailed(f"region {self.spec.region}", "short of zones", f"needs {count} availability zones, has {len(names)}")
            zones = names[:count]
            self.facts["availability_zones"] = zones
            self.remember("availability_zones", zones)
        return tuple(zones)

    # AWS clients ---------------------------------------------------------------------------------
    def aws(self, service: str) -> Any:
        return self.clients.aws(service)

    @property
    def ec2(self) -> Any:
        return self.clients.aws("ec2")

    @property
    def account(self) -> Any:
        return self.clients.account

    # tags ------------------------------------------------------------------------------------------
    def name_for(self, step_id: str) -> str:
        return f"{self.spec.name}-{step_id}".replace(".", "-")

    def tags(self, step_id: str) -> list[dict[str, str]]:
        """Every AWS resource carries Name, the deployment and the step id, plus the spec's tags."""
        tags = {**self.spec.tags, "Name": self.name_for(step_id), TAG_DEPLOYMENT: self.spec.name, TAG_STEP: step_id}
        return [{"Key": k, "Value": v} for k, v in tags.items()]

    def tag_spec(self, resource_type: str, step_id: str) -> list[dict[str, Any]]:
        return [{"ResourceType": resource_type, "Tags": self.tags(step_id)}]

    def owner_filters(self, step_id: str) -> list[dict[str, Any]]:
        return [
            {"Name": f"tag:{TAG_DEPLOYMENT}", "Values": [self.spec.name]},
            {"Name": f"tag:{TAG_STEP}", "Values": [step_id]},
        ]

    # calls -------------------------------------------------------------------------------------
    def call(self, fn: Callable[[], T], what: str) -> T:
        """A read or idempotent call, retried on transient errors."""

        def on_retry(reason: str, attempt: int, delay: float, exc: BaseException) -> None:
            self.log.warning("retrying", what=what, reason=reason, attempt=attempt, delay=round(delay, 2), error=str(exc))

        return self.retry.call(fn, what=what, on_retry=on_retry)

    def wait(
        self,
        read: Callable[[], T],
        *,
        status_of: Callable[[T], str],
        target: set[str],
        failure: set[str] = frozenset(),  # type: ignore[assignment]
        what: str,
        detail_of: Callable[[T], str] | None = None,
        timeout_seconds: float | None = None,
    ) -> T:
        def polled(status: str) -> None:
            self.clients.stats.add("poll", what)
            self.log.debug("poll", what=what, status=status)

        def polled_read() -> T:
            # API calls made while polling carry `poll` in their log events (benchmarks count them apart).
            with bound_contextvars(poll=what):
                return self.call(read, what)

        return wait_for(
            polled_read,
            status_of=status_of,
            target=target,
            failure=set(failure),
            what=what,
            policy=self.poll,
            detail_of=detail_of,
            timeout_seconds=self.spec.timeouts.resource_seconds if timeout_seconds is None else timeout_seconds,
            on_poll=polled,
        )

    def wait_gone(
        self, read: Callable[[], Any], *, what: str, status_of: Callable[[Any], str] | None = None,
        gone_states: set[str] = frozenset(), timeout_seconds: float | None = None,  # type: ignore[assignment]
    ) -> None:
        """Poll until `read` says NotFound (or returns None, or a status in gone_states)."""

        def probe() -> str:
            try:
                value = read()
            except Exception as exc:
                if is_not_found(exc):
                    return "gone"
                raise
            if value is None:
                return "gone"
            status = status_of(value) if status_of else "present"
            return "gone" if status in gone_states else status

        self.wait(probe, status_of=lambda s: s, target={"gone"}, what=f"{what} deletion", timeout_seconds=timeout_seconds)


class Step:
    """Base of every step. Subclasses set `kind` and implement find/create/delete; most also wait."""

    kind: ClassVar[str] = "resource"
    # A step for something the user already has: read, never modified destructively, never deleted.
    external: ClassVar[bool] = False
    # How long the resource typically takes to become ready: only a scheduling hint, so that when more
    # steps are ready than may run, those heading the longest chains go first.
    typical_seconds: ClassVar[float] = 1.0

    def __init__(self, step_id: str, needs: tuple[str, ...] = ()):
        self.id = step_id
        self.needs = tuple(needs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    def find(self, ctx: Context) -> Outputs | None:
        raise NotImplementedError

    def create(self, ctx: Context) -> Outputs:
        raise NotImplementedError

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        return out

    def delete(self, ctx: Context, out: Outputs) -> None:
        raise NotImplementedError

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        return None

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        """For a done step: whether what `find` saw no longer matches the spec (e.g. a rule group's body),
        judged from find's own outputs so a no-op run costs no extra call."""
        return False

    def resource_id(self, out: Outputs) -> str | None:
        """The id to show and log; the first output by convention."""
        return next((str(v) for v in out.values() if isinstance(v, (str, int))), None)


def single(items: list[dict[str, Any]], what: str, step_id: str) -> dict[str, Any] | None:
    """At most one resource may carry a step's ownership tags: more means someone duplicated it."""
    if not items:
        return None
    if len(items) > 1:
        raise OwnershipConflict(
            f"{len(items)} {what}s carry the tags of step {step_id}; expected one. Remove the extra ones."
        )
    return items[0]
