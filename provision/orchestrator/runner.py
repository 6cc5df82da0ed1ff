"""Glue between the CLI and the engine: spec and state in, a locked, logged, targeted run out.

Order matters and is the product's promise: the spec is validated before anything else; the state file
is parsed (and never overwritten if corrupt) before the lock is used for writing; no API client exists
until both have passed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from provision import spec as specs
from provision.constants import DEFAULT_PARALLELISM
from provision.orchestrator.clients import Clients, Target
from provision.orchestrator.engine import Engine, PlanItem
from provision.orchestrator.errors import StepFailed, UsageError
from provision.orchestrator.failpoints import Failpoints
from provision.orchestrator.logging import configure
from provision.orchestrator.retry import DEPENDENCY_RELEASE, EVENTUAL_CONSISTENCY, RetryPolicy
from provision.orchestrator.wait import PollPolicy
from provision.state.store import StateFile, StateLock, Status
from provision.steps.base import Context
from provision.steps.topologies import build

ReporterFactory = Callable[[list[tuple[str, str]]], Any]


@dataclass
class RunOptions:
    state_path: Path
    log_format: str = "human"
    verbose: bool = False
    console_write: Callable[[str], None] | None = None
    parallelism: int = DEFAULT_PARALLELISM


def resolve_target(kind: str) -> Target:
    if kind == "sandbox":
        from provision.sandbox import daemon

        info, _ = daemon.start()
        config = daemon.request(info.databricks_host, "/_sandbox/config")
        return Target(
            "sandbox", info.aws_endpoint_url, info.databricks_host, info.databricks_token,
            float(config.get("time_scale") or 0.0), frozenset(config.get("oauth_clients") or ()),
        )
    return Target("aws")


def policies(spec: specs.Spec, target: Target) -> tuple[RetryPolicy, PollPolicy]:
    deadline = spec.timeouts.retry_deadline_seconds
    if target.is_sandbox and target.time_scale:
        # A latency-profiled sandbox is a time-scaled replica of the real clouds: so are the intervals.
        s = target.time_scale
        return (
            RetryPolicy(deadline_seconds=deadline, initial_seconds=1.0 * s, max_seconds=20.0 * s),
            PollPolicy(initial_seconds=2.0 * s, factor=1.5, max_seconds=15.0 * s, timeout_seconds=spec.timeouts.resource_seconds,
                       visibility_seconds=15.0 * s),
        )
    if target.is_sandbox:
        # Local calls answer in milliseconds: poll and back off on the same curve, scaled down.
        limits = {EVENTUAL_CONSISTENCY: 3.0, DEPENDENCY_RELEASE: 5.0}
        return (
            RetryPolicy(deadline_seconds=deadline, initial_seconds=0.2, max_seconds=2.0, reason_limits=limits),
            PollPolicy(initial_seconds=0.1, factor=1.5, max_seconds=1.0, timeout_seconds=spec.timeouts.resource_seconds, visibility_seconds=0.3),
        )
    return (
        RetryPolicy(deadline_seconds=deadline, initial_seconds=1.0, max_seconds=20.0),
        PollPolicy(initial_seconds=2.0, factor=1.5, max_seconds=15.0, timeout_seconds=spec.timeouts.resource_seconds),
    )


def log_path_for(state_path: Path, deployment: str, command: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return state_path.resolve().parent / "provision-logs" / f"{deployment}-{stamp}-{command}.log"


@contextlib.contextmanager
def _locked(state_path: Path) -> Iterator[StateLock]:
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with StateLock(state_path) as lock:
        yield lock


def _engine(command: str, spec: specs.Spec, state: StateFile, target: Target, opts: RunOptions, reporter_factory: ReporterFactory | None) -> tuple[Engine, Any, Any]:
    log_path = log_path_for(opts.state_path, spec.name, command)
    root = configure(log_path=log_path, console_format=opts.log_format, verbose=opts.verbose, console_write=opts.console_write)
    log = root.bind(deployment=spec.name, command=command, target=target.kind)

    def on_call(service: str, operation: str, duration: float, status: Any) -> None:
        log.debug("api call", service=service, operation=operation, duration_ms=round(duration * 1000, 1), status=status)

    clients = Clients(
        region=spec.region, target=target, account_id=spec.databricks.account_id,
        databricks_host=spec.databricks.host, databricks_profile=spec.databricks.profile, on_call=on_call,
    )
    retry, poll = policies(spec, target)
    ctx = Context(spec=spec, clients=clients, retry=retry, poll=poll, log=log)
    steps = build(spec)
    reporter = reporter_factory([(s.id, s.kind) for s in steps]) if reporter_factory else None
    engine = Engine(steps, state, ctx, failpoints=Failpoints.from_env(), reporter=reporter, parallelism=opts.parallelism)
    log.info("run started", state=str(opts.state_path), log_file=str(log_path))
    return engine, reporter, log


def _finish(reporter: Any, log: Any, engine: Engine, outcome: str) -> None:
    if reporter is not None and hasattr(reporter, "close"):
        reporter.close()
    log.info("run finished", outcome=outcome, api_calls=engine.ctx.clients.stats.summary())


def _run(
    command: str, operation: str, spec: specs.Spec, state: StateFile, opts: RunOptions,
    reporter_factory: ReporterFactory | None, lock: StateLock,
) -> None:
    """Run `operation` ("up" or "teardown"); `command` is what the user typed (it may be "resume")."""
    state.last_command = operation
    target = resolve_target(state.target)
    engine, reporter, log = _engine(command, spec, state, target, opts, reporter_factory)
    if lock.taken_over_from is not None:
        # flock released the dead holder's lock; the user should know that run ended unfinished.
        log.warning("the previous run died without finishing; its lock was released and this run takes over", pid=lock.taken_over_from)
    state.save()
    _prewarm_databricks_sdk()
    outcome = "failed"
    try:
        engine.up() if operation == "up" else engine.teardown()
        outcome = "succeeded"
    except StepFailed as failed:
        failed.state_path, failed.operation = opts.state_path, operation
        raise
    finally:
        _finish(reporter, log, engine, outcome)


def _prewarm_databricks_sdk() -> None:
    """Import databricks.sdk (about a second: it loads every service module) on a background thread while
    the first AWS steps run, so the first Databricks step does not pay for it. The import lock makes that
    step wait for this import rather than start another."""
    import sys
    import threading

    if "databricks.sdk" not in sys.modules:
        threading.Thread(target=lambda: __import__("databricks.sdk"), name="prewarm-databricks-sdk", daemon=True).start()


# Changing these on a live deployment would orphan or silently keep resources that no longer match.
IMMUTABLE = (
    "region", "topology", "network", "existing", "privatelink", "storage.bucket_name",
    "databricks.account_id", "databricks.workspace_name",
)


def _changed_fields(old: specs.Spec, new: specs.Spec) -> list[str]:
    before, after = specs.describe(old), specs.describe(new)
    changed = []
    # Hub-and-spoke grows by appending spokes; the hub and every existing spoke stay as built.
    old_hub, new_hub = before.pop("hub", None), after.pop("hub", None)
    if old_hub and new_hub:
        old_spokes, new_spokes = old_hub.pop("spokes"), new_hub.pop("spokes")
        # The firewall's allow-list and facts converge in place, and tokens can be turned on; the hub's
        # network cannot change under a live deployment.
        fixed = ("vpc_cidr", "az_count", "tgw_subnet_cidrs", "public_subnet_cidrs", "firewall_subnet_cidrs")
        changed += [f"hub.{k}" for k in fixed if old_hub.get(k) != new_hub.get(k)]
        by_name = {s["name"]: s for s in new_spokes}
        for spoke in old_spokes:
            if by_name.get(spoke["name"]) != spoke:
                changed.append(f"spokes[{spoke['name']}] (removing or changing a spoke)")
    elif old_hub != new_hub:
        changed.append("hub")
    for path in IMMUTABLE:
        head, _, tail = path.partition(".")
        a, b = before.get(head), after.get(head)
        if tail:
            a, b = (a or {}).get(tail), (b or {}).get(tail)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += [f"{head}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            changed.append(path)
    return changed


def preflight(spec: specs.Spec, target: Target, source: str) -> None:
    """Check what the spec names as existing, with reads only; raises PreflightError (exit 2)."""
    existing = spec.existing
    if not (existing.vpc_id or existing.bucket_name or existing.cross_account_role_arn or spec.privatelink):
        return
    from provision.steps import preflight as checks

    clients = Clients(
        region=spec.region, target=target, account_id=spec.databricks.account_id,
        databricks_host=spec.databricks.host, databricks_profile=spec.databricks.profile,
    )
    retry, _ = policies(spec, target)
    checks.check(spec, clients.aws, source, lambda fn, what: retry.call(fn, what=what))


def up(config: Path, opts: RunOptions, *, sandbox: bool, reporter_factory: ReporterFactory | None = None) -> dict[str, Any]:
    spec = specs.load(config)
    target_kind = "sandbox" if sandbox else "aws"
    # Before the state file or anything else exists: a bad existing resource must leave no trace.
    preflight(spec, resolve_target(target_kind), str(config))
    with _locked(opts.state_path) as lock:
        if opts.state_path.exists():
            state = StateFile.load(opts.state_path)
            if state.deployment != spec.name:
                raise UsageError(
                    f"state file {opts.state_path} belongs to deployment {state.deployment!r}, not {spec.name!r}; "
                    "use --state to choose another file"
                )
            if state.target != target_kind:
                raise UsageError(
                    f"state file {opts.state_path} is for target {state.target!r}; this run asked for {target_kind!r}"
                )
            if state.live_records():
                previous = specs.from_dict(state.spec, f"{opts.state_path} (spec as run)")
                changed = _changed_fields(previous, spec)
                if changed:
                    raise UsageError(
                        f"{', '.join(changed)} changed since the deployment was built; changing them on a live deployment "
                        "is not supported (it would orphan or replace resources). Restore the spec, or run "
                        "`provision teardown` first."
                    )
            state.spec, state.spec_path = spec.to_json(), str(config)
        else:
            state = StateFile.new(opts.state_path, deployment=spec.name, target=target_kind, spec=spec.to_json(), spec_path=str(config))
        _run("up", "up", spec, state, opts, reporter_factory, lock)
        return flat_outputs(state)


def _load_state(opts: RunOptions) -> tuple[StateFile, specs.Spec]:
    state = StateFile.load(opts.state_path)
    spec = specs.from_dict(state.spec, f"{opts.state_path} (spec as run)")
    return state, spec


def resume(opts: RunOptions, *, reporter_factory: ReporterFactory | None = None) -> tuple[str, dict[str, Any]]:
    """Continue the interrupted operation: an `up` is finished, a `teardown` is carried through.
    Returns the operation continued and the outputs."""
    with _locked(opts.state_path) as lock:
        state, spec = _load_state(opts)
        operation = state.last_command if state.last_command in ("up", "teardown") else "up"
        _run("resume", operation, spec, state, opts, reporter_factory, lock)
        return operation, flat_outputs(state)


def teardown(opts: RunOptions, *, reporter_factory: ReporterFactory | None = None) -> None:
    with _locked(opts.state_path) as lock:
        state, spec = _load_state(opts)
        _run("teardown", "teardown", spec, state, opts, reporter_factory, lock)


def plan(config: Path, opts: RunOptions, *, sandbox: bool) -> list[PlanItem]:
    spec = specs.load(config)
    target_kind = "sandbox" if sandbox else "aws"
    if opts.state_path.exists():
        state = StateFile.load(opts.state_path)
        if state.deployment != spec.name:
            raise UsageError(f"state file {opts.state_path} belongs to deployment {state.deployment!r}, not {spec.name!r}")
        target_kind = state.target
    else:
        # An in-memory state that is never saved: plan changes nothing, not even the state file.
        state = StateFile.new(opts.state_path, deployment=spec.name, target=target_kind, spec=spec.to_json(), spec_path=str(config))
    target = resolve_target(target_kind)
    preflight(spec, target, str(config))
    engine, reporter, log = _engine("plan", spec, state, target, opts, None)
    items = engine.plan()
    _finish(reporter, log, engine, "succeeded")
    return items


def read_state(opts: RunOptions) -> StateFile:
    return StateFile.load(opts.state_path)


def flat_outputs(state: StateFile) -> dict[str, Any]:
    """Workspace facts at the top level, then every step's outputs as `<step>.<key>`."""
    flat: dict[str, Any] = {}
    done = {sid: rec for sid, rec in state.steps.items() if rec.status is Status.DONE}
    workspace = done.get("dbx.workspace")
    if workspace:
        for key in ("workspace_url", "workspace_id", "workspace_status", "deployment_name"):
            flat[key] = workspace.outputs.get(key)
    for sid, rec in done.items():
        for key, value in rec.outputs.items():
            flat[f"{sid}.{key}"] = value
    return flat
