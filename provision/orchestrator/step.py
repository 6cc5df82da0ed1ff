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
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, TypeVar

from structlog.contextvars import bound_contextvars

from provision.errors import GraphError, OwnershipConflict
from provision.orchestrator.drift import Drift, unnamed
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.wait import PollPolicy, wait_for

if TYPE_CHECKING:
    from provision.orchestrator.clients import Clients
    from provision.spec import Spec

T = TypeVar("T")
Outputs = dict[str, Any]


@dataclass(frozen=True)
class Ref:
    """One output of another step: the producer's step id and one of the keys it `produces`."""

    step: str
    key: str

    def __str__(self) -> str:
        return f"{self.step}:{self.key}"


# The outputs the running step declared it reads (its `reads()`). Set by the engine per step; graph.check
# verified before the run that each is produced by a step it needs, so it is done before this one starts.
DECLARED_READS: contextvars.ContextVar[frozenset[Ref] | None] = contextvars.ContextVar("provision_reads", default=None)

# Ownership marks every cloud puts on what a deployment creates (as tags or labels, in its own shape).
TAG_DEPLOYMENT = "provision:deployment"
TAG_STEP = "provision:step"


@dataclass
class Context:
    spec: "Spec"
    clients: "Clients"
    retry: RetryPolicy
    poll: PollPolicy
    log: Any
    # Every done step's outputs by step id; steps read them only through `out` and `out_if_known`.
    outputs: dict[str, Outputs] = field(default_factory=dict)
    # Steps whose create this deployment has attempted (persisted in the state file): only these may
    # adopt a resource found by deterministic name that lacks our ownership tags.
    claimed: set[str] = field(default_factory=set)
    # Each step's attempt number, so ClientTokens are stable within an attempt and new across attempts.
    attempts: dict[str, int] = field(default_factory=dict)
    # Facts resolved once and then fixed for the deployment's life (e.g. availability zones).
    facts: dict[str, Any] = field(default_factory=dict)
    remember: Callable[[str, Any], None] = lambda key, value: None
    # A step that must replace a resource the API cannot change in place (a Databricks network, a VPC endpoint
    # registration) creates the new one and retires the old: the engine deletes what is retired once nothing
    # uses it (at the end of `up`, or in teardown), and the state file records it until then.
    retire: Callable[[str, Outputs], None] = lambda step_id, outputs: None
    retired: Callable[[str], list[Outputs]] = lambda step_id: []
    # Each done step's outputs as the state file recorded them when the run started (see `previous`).
    initial: dict[str, Outputs] = field(default_factory=dict)
    # Steps run on several threads; facts are resolved once, by whichever step asks first.
    _facts_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # lookups -------------------------------------------------------------------------------------
    def out(self, ref: Ref) -> Any:
        """An output the running step declared it reads; the engine guarantees its producer is done."""
        self._declared(ref)
        return self.outputs[ref.step][ref.key]

    def out_if_known(self, ref: Ref) -> Any | None:
        """The same, or None if its producer has recorded no such output: a `find` also runs in `plan` and
        in teardown, where the producer may not be done yet, or be gone already."""
        self._declared(ref)
        return self.outputs.get(ref.step, {}).get(ref.key)

    @staticmethod
    def _declared(ref: Ref) -> None:
        declared = DECLARED_READS.get()
        if declared is not None and ref not in declared:
            raise GraphError(f"a step read {ref}, which it does not declare: keep the Ref in one of its attributes")

    @property
    def deployment(self) -> str:
        return self.spec.name

    def client_token(self, step_id: str, *inputs: str) -> str:
        """Same attempt and inputs -> same token, so a create retried after a lost response is
        idempotent; a later attempt or changed inputs get a fresh token instead of EC2's remembered result."""
        parts = (self.spec.name, step_id, str(self.attempts.get(step_id, 0)), *inputs)
        return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]

    def name_for(self, step_id: str) -> str:
        """The deterministic name of a step's resource: the deployment name and the step id."""
        return f"{self.spec.name}-{step_id}".replace(".", "-")

    def name_of(self, step_id: str, default: str) -> str:
        """The name a step finds its resource by: `default` (its deterministic name), unless the deployment was
        imported (`provision import`), which records the names the resources already had (fact `names`)."""
        return str((self.facts.get("names") or {}).get(step_id) or default)

    def previous(self, step_id: str) -> Outputs:
        """What the state file recorded for this step when the run started (empty if it was not done): a step that
        finds its resource superseded (its AWS endpoint deleted and recreated) recognizes its own old one by it."""
        return dict(self.initial.get(step_id) or {})

    def fact(self, key: str, resolve: Callable[[], Any]) -> Any:
        """A fact resolved once (by whichever step asks first) and kept in the state file for the
        deployment's life, such as the availability zones a subnet was put in."""
        with self._facts_lock:
            value = self.facts.get(key)
            if not value:
                value = resolve()
                self.facts[key] = value
                self.remember(key, value)
            return value

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
                if self.retry.errors.is_not_found(exc):
                    return "gone"
                raise
            if value is None:
                return "gone"
            status = status_of(value) if status_of else "present"
            return "gone" if status in gone_states else status

        self.wait(probe, status_of=lambda s: s, target={"gone"}, what=f"{what} deletion", timeout_seconds=timeout_seconds)


class Step:
    """Base of every step. Subclasses set `kind` and `produces` and implement find/create/delete; most
    also wait. A step gets its settings from its constructor and reads other steps' outputs only through
    the Refs it keeps (`reads()`), with `ctx.out(ref)`."""

    kind: ClassVar[str] = "resource"
    # A step for something the user already has: read, never modified destructively, never deleted.
    external: ClassVar[bool] = False
    # How long the resource typically takes to become ready: only a scheduling hint, so that when more
    # steps are ready than may run, those heading the longest chains go first.
    typical_seconds: ClassVar[float] = 1.0
    # The output keys find / create / wait_ready may return (the engine refuses any other).
    produces: ClassVar[tuple[str, ...]] = ()
    # Whether `drift` can report a field the API cannot change in place (`in_place=False`, e.g. a VPC's CIDR), or
    # sees more than find's outputs (a bucket's settings): `up` runs such steps' find and drift once before it
    # changes anything (Engine.refuse_replacements), and no other step's.
    drift_before_up: ClassVar[bool] = False

    def __init__(self, step_id: str, needs: tuple[str, ...] = ()):
        self.id = step_id
        self.needs = tuple(needs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    def reads(self) -> tuple[Ref, ...]:
        """The other steps' outputs this step reads: every Ref in its attributes (also inside lists,
        tuples, dicts and dataclasses), so a constructor declares a read by storing a Ref."""
        return tuple(dict.fromkeys(_refs(vars(self))))

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

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        """For a resource `find` saw: how it differs from the spec, field by field (`plan` shows it). By default
        only whether it differs (needs_converge). A step that can name the fields does so from find's outputs, or
        with one extra read made only when needs_converge says it differs, so an in-sync plan costs no more."""
        return unnamed() if self.needs_converge(ctx, found) else []

    def resource_id(self, out: Outputs) -> str | None:
        """The id to show and log; the first output by convention."""
        return next((str(v) for v in out.values() if isinstance(v, (str, int))), None)


def _refs(value: Any) -> Iterator[Ref]:
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _refs(item)
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            yield from _refs(getattr(value, f.name))


def single(items: list[dict[str, Any]], what: str, step_id: str) -> dict[str, Any] | None:
    """At most one resource may carry a step's ownership tags: more means someone duplicated it."""
    if not items:
        return None
    if len(items) > 1:
        raise OwnershipConflict(
            f"{len(items)} {what}s carry the tags of step {step_id}; expected one. Remove the extra ones."
        )
    return items[0]
