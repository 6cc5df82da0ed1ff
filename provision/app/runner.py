"""The composition root: spec and state in, a locked, logged, targeted run out.

Order matters and is the product's promise: the spec is validated before anything else; the step graph's
wiring is checked before any target or client exists; what the spec names as existing passes preflight
before the state file is written; the state file is parsed (and never overwritten if corrupt) before the
lock is used for writing. The target is resolved and the clients are made once per run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from provision import spec as specs
from provision import topologies
from provision.app.state_location import adopt_state_settings, locate, unlock
from provision.clouds import CLOUDS, error_rules
from provision.constants import DEFAULT_PARALLELISM
from provision.errors import SpecError, StateConflictError, StepFailed, UsageError
from provision.orchestrator.clients import (
    REAL,
    SANDBOX,
    CallStats,
    Clients,
    OnCall,
    Target,
)
from provision.orchestrator.engine import Engine, PlanItem
from provision.orchestrator.failpoints import Failpoints
from provision.orchestrator.logging import configure
from provision.orchestrator.retry import (
    DEPENDENCY_RELEASE,
    EVENTUAL_CONSISTENCY,
    RetryPolicy,
)
from provision.orchestrator.step import Context, Step
from provision.orchestrator.wait import PollPolicy
from provision.state import plans
from provision.state.backend import Backend, LocalBackend, Lock
from provision.state.store import StateFile, Status

ReporterFactory = Callable[[list[tuple[str, str]]], Any]


@dataclass
class RunOptions:
    # A path or s3://bucket/key; None: the spec's [state] backend (for up and plan), else DEFAULT_STATE.
    state_path: Path | str | None = None
    log_format: str = "human"
    verbose: bool = False
    console_write: Callable[[str], None] | None = None
    parallelism: int = DEFAULT_PARALLELISM
    # An s3:// state lives in the sandbox's S3 (commands that read their target from the state need to know
    # where the state is before they can read it).
    sandbox_state: bool = False


def resolve_target(kind: str) -> Target:
    if kind == SANDBOX:
        from provision.sandbox import daemon

        info, _ = daemon.start()
        config = daemon.request(info.databricks_host, "/_sandbox/config")
        return Target(
            SANDBOX, {"aws": info.aws_endpoint_url, "databricks": info.databricks_host, "azure": info.azure_endpoint_url},
            {"databricks": info.databricks_token, "azure": info.azure_token},
            float(config.get("time_scale") or 0.0), frozenset(config.get("oauth_clients") or ()),
        )
    return Target(REAL)


def make_clients(spec: specs.Spec, target: Target, on_call: OnCall | None = None) -> Clients:
    """One client set per cloud the spec's topology uses (each made lazily: no SDK loads here)."""
    stats = CallStats()
    clouds = topologies.topology_of(spec).clouds
    return Clients(target, {name: CLOUDS[name].make_clients(spec, target, stats, on_call) for name in clouds}, stats)


# Waits poll at 2 s, then 1.5 times longer each time, up to 10 s: the cap is what a wait's end can be noticed
# late by (Terraform's waiters cap at 10 s too), and a six-minute wait still takes under 40 polls.
POLL_INITIAL, POLL_FACTOR, POLL_MAX = 2.0, 1.5, 10.0


def policies(spec: specs.Spec, target: Target) -> tuple[RetryPolicy, PollPolicy]:
    deadline = spec.timeouts.retry_deadline_seconds
    errors = error_rules(topologies.topology_of(spec).clouds)
    if target.is_sandbox and target.time_scale:
        # A latency-profiled sandbox is a time-scaled replica of the real clouds: so are the intervals.
        s = target.time_scale
        return (
            RetryPolicy(deadline_seconds=deadline, initial_seconds=1.0 * s, max_seconds=20.0 * s, settling_max_seconds=2.0 * s, errors=errors),
            PollPolicy(initial_seconds=POLL_INITIAL * s, factor=POLL_FACTOR, max_seconds=POLL_MAX * s,
                       timeout_seconds=spec.timeouts.resource_seconds, visibility_seconds=15.0 * s),
        )
    if target.is_sandbox:
        # Local calls answer in milliseconds: poll and back off on the same curve, scaled down.
        limits = {EVENTUAL_CONSISTENCY: 3.0, DEPENDENCY_RELEASE: 5.0}
        return (
            RetryPolicy(deadline_seconds=deadline, initial_seconds=0.2, max_seconds=2.0, reason_limits=limits, errors=errors),
            PollPolicy(initial_seconds=0.1, factor=1.5, max_seconds=1.0, timeout_seconds=spec.timeouts.resource_seconds, visibility_seconds=0.3),
        )
    return (
        RetryPolicy(deadline_seconds=deadline, initial_seconds=1.0, max_seconds=20.0, errors=errors),
        PollPolicy(initial_seconds=POLL_INITIAL, factor=POLL_FACTOR, max_seconds=POLL_MAX, timeout_seconds=spec.timeouts.resource_seconds),
    )


def state_backend(opts: RunOptions, spec: specs.Spec | None = None, *, sandbox: bool | None = None) -> Backend:
    """Where this command's state lives (state_location.locate)."""
    return locate(opts.state_path, spec, opts.sandbox_state if sandbox is None else sandbox)


def log_path_for(log_dir: Path, deployment: str, command: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return log_dir / f"{deployment}-{stamp}-{command}.log"


@contextlib.contextmanager
def locked(backend: Backend, command: str) -> Iterator[Lock]:
    with backend.lock(command) as lock:
        yield lock


class _CallLog:
    """Logs every API call. Preflight's calls come before the run's log exists (a failed preflight must
    leave no file behind): they are held, and written first once the log is attached."""

    def __init__(self) -> None:
        self._log: Any = None
        self._held: list[tuple[str, str, float, Any]] = []

    def attach(self, log: Any) -> None:
        self._log = log
        for call in self._held:
            self(*call)
        self._held.clear()

    def __call__(self, service: str, operation: str, duration: float, status: Any) -> None:
        if self._log is None:
            self._held.append((service, operation, duration, status))
            return
        self._log.debug("api call", service=service, operation=operation, duration_ms=round(duration * 1000, 1), status=status)


@dataclass
class _Run:
    """Everything one run is made of, built once: the checked step graph, the target and its clients."""

    spec: specs.Spec
    steps: list[Step]
    target: Target
    clients: Clients
    calls: _CallLog
    identities: list[str] = field(default_factory=list)


def prepare(spec: specs.Spec, target_kind: str) -> _Run:
    """The step graph first (its wiring is checked before any client exists), then the target and clients, then
    the credentials of every cloud the topology uses: all before any state is written or anything created."""
    steps = topologies.build(spec)
    target = resolve_target(target_kind)
    calls = _CallLog()
    run = _Run(spec, steps, target, make_clients(spec, target, calls), calls)
    check_credentials(run)
    if "aws" in run.clients:
        # Every AWS topology's first steps call EC2, and its client (botocore's largest service model) takes half a
        # second to make: made here, before the steps start and the Databricks SDK's import competes with it.
        run.clients["aws"].client("ec2")
    return run


def check_credentials(run: _Run) -> list[str]:
    """Who the run acts as, per cloud (a CredentialsError, exit 2, says where each cloud looked)."""
    retry, _ = policies(run.spec, run.target)
    identities = []
    for name in topologies.topology_of(run.spec).clouds:
        check = CLOUDS[name].check_credentials
        if check is not None:
            identities.append(check(run.spec, run.clients[name], lambda fn, what: retry.call(fn, what=what)))
    run.identities = identities
    return identities


def engine_for(command: str, run: _Run, state: StateFile, opts: RunOptions, reporter_factory: ReporterFactory | None) -> tuple[Engine, Any, Any]:
    spec = run.spec
    log_path = log_path_for(state.backend.log_dir(), spec.name, command)
    root = configure(log_path=log_path, console_format=opts.log_format, verbose=opts.verbose, console_write=opts.console_write)
    log = root.bind(deployment=spec.name, command=command, cloud=spec.cloud, target=run.target.kind)
    run.calls.attach(log)
    retry, poll = policies(spec, run.target)
    ctx = Context(spec=spec, clients=run.clients, retry=retry, poll=poll, log=log)
    reporter = reporter_factory([(s.id, s.kind) for s in run.steps]) if reporter_factory else None
    engine = Engine(run.steps, state, ctx, failpoints=Failpoints.from_env(), reporter=reporter, parallelism=opts.parallelism)
    log.info("run started", state=str(state.path), log_file=str(log_path), identities=run.identities)
    if "databricks" in run.clients:
        # The SDK's import (two seconds of CPU) overlaps the first AWS steps rather than delaying the first
        # Databricks one; started here, not earlier, so it does not slow the checks before the steps begin.
        run.clients["databricks"].warm()
    return engine, reporter, log


def finish(reporter: Any, log: Any, engine: Engine, outcome: str) -> None:
    if reporter is not None and hasattr(reporter, "close"):
        reporter.close()
    state = engine.state
    try:
        # The local state's journal folded into its snapshot: one complete JSON document again after every command.
        state.compact()
    except OSError as exc:
        log.warning("the state journal could not be compacted; it is kept and replayed on load", error=str(exc))
    log.info("run finished", outcome=outcome, api_calls=engine.ctx.clients.stats.summary(),
             state_writes=state.writes, state_bytes_written=state.bytes_written)


def _run(
    command: str, operation: str, run: _Run, state: StateFile, opts: RunOptions,
    reporter_factory: ReporterFactory | None, lock: Lock,
) -> None:
    """Run `operation` ("up" or "teardown"); `command` is what the user typed (it may be "resume")."""
    state.last_command = operation
    engine, reporter, log = engine_for(command, run, state, opts, reporter_factory)
    if lock.taken_over is not None:
        # A dead holder's lock (flock released it; S3: its process is gone or its heartbeat is past the TTL).
        log.warning(lock.taken_over)
    for warning in state.backend.warnings():
        log.warning(warning)
    if operation == "up":
        try:
            # Reads only, before the state file or any resource is written: drift that only a replacement could
            # undo (a subnet's CIDR, a bucket's region) stops the run here, with what it would have to replace.
            engine.refuse_replacements()
        except BaseException:
            finish(reporter, log, engine, "refused")
            raise
    state.save()
    if "databricks" in run.clients:
        _prewarm_databricks_sdk()
    outcome = "failed"
    try:
        engine.up() if operation == "up" else engine.teardown()
        outcome = "succeeded"
    except StepFailed as failed:
        if isinstance(failed.cause, StateConflictError):
            raise failed.cause from None  # not a step's failure: another run has the state now
        failed.state_path, failed.operation = state.path, operation
        raise
    finally:
        finish(reporter, log, engine, outcome)


def _prewarm_databricks_sdk() -> None:
    """Import databricks.sdk (about a second: it loads every service module) on a background thread while
    the first AWS steps run, so the first Databricks step does not pay for it. The import lock makes that
    step wait for this import rather than start another."""
    import sys
    import threading

    if "databricks.sdk" not in sys.modules:
        threading.Thread(target=lambda: __import__("databricks.sdk"), name="prewarm-databricks-sdk", daemon=True).start()


def preflight(run: _Run, source: str) -> None:
    """Check what the spec names as existing, with reads only; raises PreflightError (exit 2)."""
    check = topologies.topology_of(run.spec).preflight
    if check is None:
        return
    retry, _ = policies(run.spec, run.target)
    check(run.spec, run.clients, source, lambda fn, what: retry.call(fn, what=what))


def _check_matches(state: StateFile, spec: specs.Spec, target_kind: str | None, path: Path | str) -> None:
    if state.deployment != spec.name:
        raise UsageError(
            f"state file {path} belongs to deployment {state.deployment!r}, not {spec.name!r}; use --state to choose another file"
        )
    if state.cloud != spec.cloud:
        raise UsageError(f"state file {path} is for cloud {state.cloud!r}; this spec builds on {spec.cloud!r}")
    if target_kind is not None and state.target != target_kind:
        raise UsageError(f"state file {path} is for target {state.target!r}; this run asked for {target_kind!r}")


def _spec_for_up(config: Path, state_path: Path | Backend, enforce_network_policy: bool) -> specs.Spec:
    """The spec as this `up` runs it. A network policy that a live deployment enforces stays enforced unless the
    spec itself says `enforcement = "dry_run"`: leaving the flag off must not quietly relax egress control. (A
    deployment torn down starts over in DRY_RUN.)"""
    from provision.clouds.databricks import spec_serverless

    data = specs.read_toml(config)
    if enforce_network_policy or (not spec_serverless.explicit(data) and _enforced_live(state_path)):
        data = spec_serverless.enforce(data, str(config))
    return topologies.from_dict(data, str(config))


def _enforced_live(state_path: Path | Backend) -> bool:
    """Whether the deployment of this state file has a live network policy, enforced by the spec it last ran."""
    from provision.clouds.databricks import spec_serverless

    backend = LocalBackend(state_path) if isinstance(state_path, Path) else state_path
    try:
        if not backend.exists():
            return False
        state = StateFile.load(backend)
    except Exception:  # a corrupt state file is reported, with its reason, once it is loaded under the lock
        return False
    live = {r.id for r in state.live_records()}
    return any(step.startswith("dbx.network_policy") for step in live) and spec_serverless.enforced(state.spec)


def up(
    config: Path | None, opts: RunOptions, *, sandbox: bool, reporter_factory: ReporterFactory | None = None,
    enforce_network_policy: bool = False, plan_file: Path | None = None,
) -> dict[str, Any]:
    """Build or complete the deployment of `config`; or, with `plan_file`, apply exactly that saved plan's spec
    while the state is still the one it was made against (else LineageError, exit 2)."""
    target_kind = SANDBOX if sandbox else REAL
    saved = plans.read(plan_file) if plan_file is not None else None
    if saved is not None:
        assert plan_file is not None
        spec = _spec_of_plan(saved, plan_file, config)
        if sandbox and saved.target != SANDBOX:
            raise UsageError(f"saved plan {plan_file} was made for target {saved.target!r}, not the sandbox")
        target_kind = saved.target
        source = saved.spec_path or str(plan_file)
        backend = _plan_backend(saved, plan_file, opts, spec, target_kind == SANDBOX)
        # Refused early when the state already moved on (checked again under the lock, where it counts).
        plans.check(saved, plan_file, StateFile.load(backend) if backend.exists() else None, backend.describe())
    elif config is None:
        raise UsageError("up needs --config SPEC, or --plan FILE (a plan saved by `provision plan --out`)")
    else:
        source = str(config)
        backend = state_backend(opts, topologies.from_dict(specs.read_toml(config), source), sandbox=sandbox)
        spec = _spec_for_up(config, backend, enforce_network_policy)
    run = prepare(spec, target_kind)
    # Before the state file or anything else exists: a bad existing resource must leave no trace.
    preflight(run, source)
    with locked(backend, "up") as lock:
        existing = StateFile.load(backend) if backend.exists() else None
        if saved is not None:
            plans.check(saved, plan_file, existing, backend.describe())  # type: ignore[arg-type]
        if existing is not None:
            state = existing
            _check_matches(state, spec, target_kind, state.path)
            if state.live_records():
                previous = topologies.from_dict(state.spec, f"{state.path} (spec as run)", as_run=True)
                changed = topologies.changed_fields(previous, spec)
                if changed:
                    raise UsageError(
                        f"{', '.join(changed)} changed since the deployment was built; changing them on a live deployment "
                        "is not supported (it would orphan or replace resources). Restore the spec, or run "
                        "`provision teardown` first."
                    )
            state.spec, state.spec_path = spec.to_json(), source
        else:
            state = StateFile.new(
                backend, deployment=spec.name, cloud=spec.cloud, target=target_kind, spec=spec.to_json(), spec_path=source,
            )
        _run("up", "up", run, state, opts, reporter_factory, lock)
        return flat_outputs(state)


def _plan_backend(saved: plans.SavedPlan, plan_file: Path, opts: RunOptions, spec: specs.Spec, sandbox: bool) -> Backend:
    """The state a saved plan applies to: the one it was made against, which --state may name but not change."""
    if saved.state is None:
        return state_backend(opts, spec, sandbox=sandbox)
    if opts.state_path is None:
        return locate(saved.state, spec, sandbox)
    backend = state_backend(opts, spec, sandbox=sandbox)
    if not _same_location(backend.describe(), saved.state):
        raise UsageError(f"saved plan {plan_file} was made against state {saved.state}, not {backend.describe()}; leave --state out, or make a new plan")
    return backend


def _absolute(location: str) -> str:
    return location if location.startswith("s3://") else str(Path(location).resolve())


def _same_location(a: str, b: str) -> bool:
    remote = a.startswith("s3://") or b.startswith("s3://")
    return a == b if remote else Path(a).resolve() == Path(b).resolve()


def _spec_of_plan(saved: plans.SavedPlan, plan_file: Path, config: Path | None) -> specs.Spec:
    """The saved plan's spec, which `up --plan` runs; a --config given too must be that same spec."""
    spec = topologies.from_dict(saved.spec, saved.spec_path or str(plan_file))
    if config is not None:
        given = topologies.from_dict(specs.read_toml(config), str(config)).to_json()
        if json.loads(json.dumps(given, default=str)) != saved.spec:
            raise UsageError(f"--config {config} is not the spec saved plan {plan_file} was made from; leave --config out, or make a new plan")
    return spec


def _load_state(backend: Backend) -> tuple[StateFile, specs.Spec]:
    state = StateFile.load(backend)
    spec = topologies.from_dict(state.spec, f"{state.path} (spec as run)", as_run=True)
    adopt_state_settings(backend, spec)
    return state, spec


def resume(opts: RunOptions, *, reporter_factory: ReporterFactory | None = None) -> tuple[str, dict[str, Any]]:
    """Continue the interrupted operation: an `up` is finished, a `teardown` is carried through.
    Returns the operation continued and the outputs."""
    backend = state_backend(opts)
    with locked(backend, "resume") as lock:
        state, spec = _load_state(backend)
        operation = state.last_command if state.last_command in ("up", "teardown") else "up"
        _run("resume", operation, prepare(spec, state.target), state, opts, reporter_factory, lock)
        return operation, flat_outputs(state)


def teardown(opts: RunOptions, *, reporter_factory: ReporterFactory | None = None) -> None:
    backend = state_backend(opts)
    with locked(backend, "teardown") as lock:
        state, spec = _load_state(backend)
        _run("teardown", "teardown", prepare(spec, state.target), state, opts, reporter_factory, lock)


def plan(config: Path, opts: RunOptions, *, sandbox: bool, out: Path | None = None) -> list[PlanItem]:
    """What `up` would do; with `out`, also saved for `up --plan` with the state's lineage and serial."""
    spec = topologies.load(config)
    target_kind = SANDBOX if sandbox else REAL
    backend = state_backend(opts, spec, sandbox=sandbox)
    # The spec as `up` would run it: a live enforced network policy stays enforced (no false drift, and a saved plan
    # never relaxes it).
    spec = _spec_for_up(config, backend, False)
    existed = backend.exists()
    if existed:
        state = StateFile.load(backend)
        _check_matches(state, spec, None, state.path)
        target_kind = state.target
    else:
        # An in-memory state that is never saved: plan changes nothing, not even the state file.
        state = StateFile.new(
            backend, deployment=spec.name, cloud=spec.cloud, target=target_kind, spec=spec.to_json(), spec_path=str(config),
        )
    run = prepare(spec, target_kind)
    preflight(run, str(config))
    engine, reporter, log = engine_for("plan", run, state, opts, None)
    items = engine.plan()
    finish(reporter, log, engine, "succeeded")
    if out is not None:
        plans.write(out, plans.SavedPlan(
            deployment=spec.name, lineage=state.lineage if existed else None, serial=state.serial if existed else 0,
            spec=json.loads(json.dumps(spec.to_json(), default=str)), spec_path=str(config), target=target_kind,
            items=[plans.item_json(item) for item in items], state=_absolute(backend.describe()),
        ))
    return items


def read_state(opts: RunOptions) -> StateFile:
    return StateFile.load(state_backend(opts))


def force_unlock(opts: RunOptions, lock_id: str) -> dict[str, Any]:
    return unlock(state_backend(opts), lock_id)


WORKSPACE_FACTS = ("workspace_id", "workspace_url", "workspace_status")


def workspaces(state: StateFile) -> list[dict[str, Any]]:
    """Every workspace the topology yields (hub-and-spoke: one per spoke), built or not. A state file whose
    spec no longer validates still lists the workspace steps it records."""
    try:
        spec = topologies.from_dict(state.spec, f"{state.path} (spec as run)", as_run=True)
        declared = topologies.topology_of(spec).workspaces(spec)
    except SpecError:
        declared = [("", r.id) for r in state.steps.values() if "workspace_url" in r.outputs]
    out = []
    for name, step_id in declared:
        record = state.steps.get(step_id)
        facts = record.outputs if record is not None and record.status is Status.DONE else {}
        out.append({"name": facts.get("workspace_name") or name or None, "step": step_id, **{k: facts.get(k) for k in WORKSPACE_FACTS}})
    return out


def flat_outputs(state: StateFile) -> dict[str, Any]:
    """Every workspace under `workspaces`; a single-workspace topology's facts also at the top level; then
    every step's outputs as `<step>.<key>`."""
    listed = workspaces(state)
    flat: dict[str, Any] = {}
    if len(listed) == 1:
        record = state.steps.get(listed[0]["step"])
        if record is not None and record.status is Status.DONE:
            for key in ("workspace_url", "workspace_id", "workspace_status", "deployment_name"):
                if key in record.outputs or key in WORKSPACE_FACTS:
                    flat[key] = record.outputs.get(key)
    flat["workspaces"] = [{k: w[k] for k in ("name", *WORKSPACE_FACTS)} for w in listed]
    for sid, rec in state.steps.items():
        if rec.status is Status.DONE:
            for key, value in rec.outputs.items():
                flat[f"{sid}.{key}"] = value
    return flat
