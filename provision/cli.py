"""`provision`: the command line. The only place errors become messages and exit codes.

Exit codes: 0 success; 1 run failed (state saved, resumable); 2 bad usage, spec or state file;
3 state locked by another run; 130 interrupted. A state write refused because another run changed the state
(a remote state's ETag moved on, or this run lost its lock) is 1; a state of another lineage, or a saved plan
whose state moved on (`up --plan`), is 2. `plan --detailed-exitcode` (as Terraform): 0 nothing to do,
2 up would change something, 1 any error.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from provision.constants import DEFAULT_PARALLELISM
from provision.errors import ProvisionError, StepFailed, UsageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Build Databricks workspaces on AWS (boto3 and the Databricks Account API) and on Azure (ARM): one run that "
    "finishes, resumes where it stopped, and tears down everything it made.",
)
sandbox_app = typer.Typer(no_args_is_help=True, help="The local sandbox cloud on 127.0.0.1 (moto for AWS, an ARM emulator for Azure, a Databricks emulator).")
app.add_typer(sandbox_app, name="sandbox")

DEFAULT_STATE = Path("provision.state.json")
STATE_HELP = (
    "State: a path, or s3://BUCKET/KEY (remote, locked, compare-and-swap writes). Default: the spec's state.backend "
    "(up, plan), else provision.state.json."
)


class LogFormat(str, Enum):
    human = "human"
    json = "json"


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


StateOpt = typer.Option(None, "--state", help=STATE_HELP)
SandboxStateOpt = typer.Option(False, "--sandbox", help="The s3:// state is in the local sandbox's S3 (a sandbox deployment's remote state).")
ConfigOpt = typer.Option(..., "--config", "-c", help="Deployment spec (TOML).", dir_okay=False)
SandboxOpt = typer.Option(False, "--sandbox", help="Run against the local sandbox cloud (started if needed).")
LogFormatOpt = typer.Option(LogFormat.human, "--log-format", help="human: progress view; json: structured log lines on stderr.")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="Also show info/debug events (every API call) on stderr.")
OutputOpt = typer.Option(OutputFormat.text, "--output", "-o", help="text or json.")
ParallelismOpt = typer.Option(
    DEFAULT_PARALLELISM, "--parallelism", "-p", min=1, max=64,
    help="Steps run at once (independent branches of the step graph); 1 runs them one by one.",
)


def _options(
    state: Optional[str], log_format: LogFormat, verbose: bool, parallelism: int = DEFAULT_PARALLELISM, sandbox_state: bool = False,
) -> Any:
    from provision.app.runner import RunOptions

    return RunOptions(
        state_path=state, log_format=log_format.value, verbose=verbose, parallelism=parallelism, sandbox_state=sandbox_state,
    )


def _reporter(log_format: LogFormat) -> Any:
    from provision.orchestrator.progress import make_reporter

    return lambda steps: make_reporter(steps, log_format=log_format.value)


def _echo_outputs(outputs: dict[str, Any]) -> None:
    url = outputs.get("workspace_url")
    if url:
        typer.echo(f"workspace {outputs.get('workspace_id')} is {outputs.get('workspace_status')}: {url}")


@app.command()
def up(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Deployment spec (TOML); not needed with --plan.", dir_okay=False),
    state: Optional[str] = StateOpt,
    sandbox: bool = SandboxOpt,
    log_format: LogFormat = LogFormatOpt,
    verbose: bool = VerboseOpt,
    parallelism: int = ParallelismOpt,
    enforce_network_policy: bool = typer.Option(
        False, "--enforce-network-policy",
        help="Switch the serverless network policy ([serverless.network_policy]) from DRY_RUN to ENFORCED; later runs keep it enforced.",
    ),
    plan_file: Optional[Path] = typer.Option(
        None, "--plan", dir_okay=False,
        help="Apply a plan saved by `plan --out`: its spec, only while the state is the one it was planned against (else exit 2).",
    ),
) -> None:
    """Create (or complete) the deployment described by the spec."""
    from provision.app import runner

    outputs = runner.up(
        config, _options(state, log_format, verbose, parallelism), sandbox=sandbox, reporter_factory=_reporter(log_format),
        enforce_network_policy=enforce_network_policy, plan_file=plan_file,
    )
    _echo_outputs(outputs)


@app.command()
def resume(
    state: Optional[str] = StateOpt, log_format: LogFormat = LogFormatOpt, verbose: bool = VerboseOpt, parallelism: int = ParallelismOpt,
    sandbox: bool = SandboxStateOpt,
) -> None:
    """Continue a run from its state file; the spec and target come from the state file."""
    from provision.app import runner

    operation, outputs = runner.resume(_options(state, log_format, verbose, parallelism, sandbox), reporter_factory=_reporter(log_format))
    if operation == "teardown":
        typer.echo("teardown completed")
    else:
        _echo_outputs(outputs)


@app.command()
def teardown(
    state: Optional[str] = StateOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    log_format: LogFormat = LogFormatOpt,
    verbose: bool = VerboseOpt,
    parallelism: int = ParallelismOpt,
    sandbox: bool = SandboxStateOpt,
) -> None:
    """Delete everything the deployment owns, in reverse dependency order. Resumable."""
    from provision.app import runner

    opts = _options(state, log_format, verbose, parallelism, sandbox)
    current = runner.read_state(opts)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("teardown needs --yes when not run from a terminal")
        typer.confirm(f"Delete every resource of deployment {current.deployment!r} ({current.cloud}, {current.target})?", abort=True)
    runner.teardown(opts, reporter_factory=_reporter(log_format))
    typer.echo(f"deployment {current.deployment} torn down")


@app.command()
def plan(
    config: Path = ConfigOpt,
    state: Optional[str] = StateOpt,
    sandbox: bool = SandboxOpt,
    output: OutputFormat = OutputOpt,
    log_format: LogFormat = LogFormatOpt,
    verbose: bool = VerboseOpt,
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 0 when up has nothing to do, 2 when it would change something, 1 on error (as Terraform).",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", dir_okay=False, help="Also save the plan (with the state's lineage and serial) for `up --plan FILE`.",
    ),
) -> None:
    """Show what `up` would create, adopt, converge or keep, and how each resource drifted from the spec. Changes nothing."""
    from provision.app import runner

    try:
        items = runner.plan(config, _options(state, log_format, verbose), sandbox=sandbox, out=out)
    except ProvisionError as exc:
        if not detailed_exitcode:
            raise
        _report(exc)  # 2 means "changes" here: every error is 1
        raise typer.Exit(1) from None
    if output is OutputFormat.json:
        typer.echo(json.dumps([item.to_json() for item in items], indent=2))
    else:
        _print_plan(items)
    if detailed_exitcode and any(item.changes for item in items):
        raise typer.Exit(2)


def _print_plan(items: list[Any]) -> None:
    for item in items:
        flag = f" [{item.status}]" if item.status in ("drifted", "missing", "extra") else ""
        typer.echo(f"{item.action:>9}  {item.step_id:<20} {item.kind:<34} {item.resource_id or ''}{flag}".rstrip())
        for drift in item.drifts:
            typer.echo(f"{'':>11}{drift}" + ("" if drift.in_place else " (cannot change in place: up would have to replace it)"))
        if item.detail:
            typer.echo(f"{'':>11}{item.detail}")
    changing = sum(item.changes for item in items)
    typer.echo(f"{changing} of {len(items)} steps would change" if changing else "up has nothing to do: every resource is in sync")


@app.command()
def status(state: Optional[str] = StateOpt, output: OutputFormat = OutputOpt, sandbox: bool = SandboxStateOpt) -> None:
    """Each step's status and outputs, from the state file."""
    from provision.app import runner
    from provision.app.runner import RunOptions

    current = runner.read_state(RunOptions(state_path=state, sandbox_state=sandbox))
    if output is OutputFormat.json:
        steps = [{"id": r.id, "status": r.status.value, "outputs": r.outputs} for r in current.steps.values()]
        typer.echo(json.dumps({"deployment": current.deployment, "cloud": current.cloud, "target": current.target, "steps": steps}, indent=2))
        return
    typer.echo(f"deployment {current.deployment} ({current.cloud}, {current.target}), updated {current.updated_at}")
    for r in current.steps.values():
        resource = next((str(v) for v in r.outputs.values() if isinstance(v, (str, int))), "")
        line = f"  {r.status.value:<11} {r.id:<20} {resource}"
        if r.last_error and r.status.value == "failed":
            line += f"\n              error: {r.last_error}"
        typer.echo(line.rstrip())


@app.command()
def output(state: Optional[str] = StateOpt, output: OutputFormat = OutputOpt, sandbox: bool = SandboxStateOpt) -> None:
    """The deployment's outputs: workspace_url, workspace_id and every resource id."""
    from provision.app import runner
    from provision.app.runner import RunOptions

    flat = runner.flat_outputs(runner.read_state(RunOptions(state_path=state, sandbox_state=sandbox)))
    if output is OutputFormat.json:
        typer.echo(json.dumps(flat, indent=2))
        return
    listed = flat.pop("workspaces")
    _workspace_table(listed)
    for key, value in flat.items():
        typer.echo(f"{key} = {json.dumps(value)}")


@app.command("force-unlock")
def force_unlock(
    lock_id: str = typer.Argument(..., help="The lock id the refusal named (exit 3)."),
    state: str = typer.Option(..., "--state", help="The s3://BUCKET/KEY state whose lock to remove."),
    sandbox: bool = SandboxStateOpt,
) -> None:
    """Remove a remote state's lock left by a run that is gone (on another host, within the lock TTL). Only the
    lock with this id is removed."""
    from provision.app import runner
    from provision.app.runner import RunOptions

    holder = runner.force_unlock(RunOptions(state_path=state, sandbox_state=sandbox), lock_id)
    typer.echo(f"removed lock {lock_id} of {state} (held by `{holder.get('command')}` on host {holder.get('host')}, pid {holder.get('pid')})")


def _workspace_table(listed: list[dict[str, Any]]) -> None:
    """The workspaces as a table: a hub-and-spoke deployment has one per spoke."""
    columns = ("name", "workspace_id", "workspace_status", "workspace_url")
    rows = [[str(w[c]) if w[c] is not None else "-" for c in columns] for w in listed]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    for row in [list(columns), *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    typer.echo("")


@app.command()
def validate(config: Path = ConfigOpt, output: OutputFormat = OutputOpt, sandbox: bool = SandboxStateOpt) -> None:
    """Validate a spec; print the derived values (subnets, zones, bucket). No API is called, except one read of
    the bucket of an s3:// state.backend, to warn when it is not versioned."""
    from provision import topologies

    spec = topologies.load(config)
    _warn_about_state(spec, sandbox)
    described = topologies.describe(spec)
    if output is OutputFormat.json:
        typer.echo(json.dumps(described, indent=2))
        return
    typer.echo(f"{config}: valid")
    topology = topologies.topology_of(spec)
    typer.echo(f"  deployment {described['name']} in {described['region']}, topology {described['topology']}: {topology.summary}")
    for line in topology.describe(described):
        typer.echo(f"  {line}")


def _warn_about_state(spec: Any, sandbox: bool) -> None:
    """A [state] bucket that is not versioned (or cannot be checked) is a warning on stderr, not an error."""
    from provision.app.runner import RunOptions, state_backend
    from provision.state.backend import is_remote

    if spec.state is None or not spec.state.backend or not is_remote(spec.state.backend):
        return
    try:
        warnings = state_backend(RunOptions(), spec, sandbox=sandbox).warnings()
    except Exception as exc:  # validate stays a check of the spec: the state is checked again by up
        warnings = [f"could not check the state bucket of {spec.state.backend}: {exc}"]
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)


@app.command("import")
def import_(
    terraform_state: str = typer.Option(..., "--terraform-state", help="Terraform state to take over (format version 4): a path or s3://bucket/key. Only read."),
    config: Path = ConfigOpt,
    state: Optional[str] = StateOpt,
    sandbox: bool = SandboxOpt,
    output: OutputFormat = OutputOpt,
    log_format: LogFormat = LogFormatOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Take over a deployment built with the Terraform guides: map its resources onto the spec's steps, tag them, write a new state."""
    from provision.app.tfimport import importer

    report = importer.run(terraform_state, config, _options(state, log_format, verbose, sandbox_state=sandbox), sandbox=sandbox)
    if output is OutputFormat.json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.lines():
            typer.echo(line)


def _sandbox_json(info: Any) -> dict[str, Any]:
    keys = (
        "aws_endpoint_url", "databricks_host", "databricks_account_id", "databricks_token",
        "azure_endpoint_url", "azure_subscription_id", "azure_token",
    )
    data: dict[str, Any] = {"running": info is not None}
    data.update({k: (getattr(info, k) if info else None) for k in keys})
    return data


@sandbox_app.command("start")
def sandbox_start(
    output: OutputFormat = OutputOpt,
    iam_propagation_seconds: Optional[float] = typer.Option(None, help="How long a new IAM role stays unusable to Databricks."),
    workspace_seconds: Optional[float] = typer.Option(None, help="How long a workspace stays PROVISIONING."),
    nat_seconds: Optional[float] = typer.Option(None, help="How long a NAT gateway stays pending (and deleting)."),
    latency: Optional[str] = typer.Option(
        None, "--latency", help="A latency profile: 'realistic' (pending times and call latency of real AWS, Azure and Databricks)."
    ),
    time_scale: float = typer.Option(
        1.0, "--time-scale", min=0.0001, help="Multiply the latency profile by this (0.02: a 6-minute wait takes 7.2 s)."
    ),
) -> None:
    """Start the sandbox for this directory (no-op if running; new settings are applied)."""
    from provision.sandbox import daemon
    from provision.sandbox.latency import PROFILES, settings_for

    settings: dict[str, float] = {}
    if latency is not None:
        if latency not in PROFILES:
            raise UsageError(f"--latency: unknown profile {latency!r}; known: {', '.join(PROFILES)}")
        settings.update(settings_for(latency, time_scale))
    if iam_propagation_seconds is not None:
        settings["iam_propagation_seconds"] = iam_propagation_seconds
    if workspace_seconds is not None:
        settings["workspace_provisioning_seconds"] = workspace_seconds
    if nat_seconds is not None:
        settings["nat_gateway_pending_seconds"] = settings["nat_gateway_deleting_seconds"] = nat_seconds
    info, started = daemon.start(settings=settings)
    if output is OutputFormat.json:
        typer.echo(json.dumps(_sandbox_json(info), indent=2))
    else:
        typer.echo(
            f"sandbox {'started' if started else 'already running'} (pid {info.pid}): AWS {info.aws_endpoint_url}, "
            f"Azure {info.azure_endpoint_url}, Databricks {info.databricks_host}"
        )


@sandbox_app.command("stop")
def sandbox_stop(output: OutputFormat = OutputOpt) -> None:
    """Stop this directory's sandbox; everything in it is forgotten."""
    from provision.sandbox import daemon

    stopped = daemon.stop()
    if output is OutputFormat.json:
        typer.echo(json.dumps({"stopped": stopped}))
    else:
        typer.echo("sandbox stopped" if stopped else "no sandbox was running")


@sandbox_app.command("status")
def sandbox_status(output: OutputFormat = OutputOpt) -> None:
    """Whether this directory's sandbox runs, and how to reach it."""
    from provision.sandbox import daemon

    info = daemon.status()
    if output is OutputFormat.json:
        typer.echo(json.dumps(_sandbox_json(info), indent=2))
    elif info:
        typer.echo(
            f"running (pid {info.pid}): AWS {info.aws_endpoint_url}, Azure {info.azure_endpoint_url} (subscription "
            f"{info.azure_subscription_id}), Databricks {info.databricks_host}, account {info.databricks_account_id}"
        )
    else:
        typer.echo("not running")


def _report(error: ProvisionError) -> None:
    from provision.orchestrator.logging import scrub, secret_values

    typer.echo(f"error: {scrub(str(error), secret_values())}", err=True)
    if isinstance(error, StepFailed) and error.others:
        typer.echo(f"also failed, on parallel branches: {', '.join(error.others)} (see the log or `provision status`)", err=True)
    if isinstance(error, StepFailed) and error.state_path is not None:
        what = "carry the teardown through" if error.operation == "teardown" else "finish the deployment"
        typer.echo(
            f"the state file {error.state_path} records what exists; fix the cause, then run "
            f"`provision resume --state {error.state_path}` to {what}",
            err=True,
        )


def _report_unexpected(error: Exception) -> None:
    """Anything that is not one of our typed errors: say what it was, without a traceback."""
    from provision.orchestrator.logging import scrub, secret_values

    name = type(error).__name__
    message = scrub(str(error), secret_values())
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        message += " (configure AWS credentials: environment variables, AWS_PROFILE or SSO)"
    typer.echo(f"error: {name}: {message}", err=True)
    typer.echo("set PROVISION_DEBUG=1 to see the traceback", err=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: map every outcome to an exit code, with no traceback for known errors."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = app(args=args, prog_name="provision", standalone_mode=False)
        # Without standalone mode, click answers Ctrl-C by returning 130 rather than raising.
        if code == 130:
            raise KeyboardInterrupt
        if isinstance(code, int) and code:  # a command's own exit code (typer.Exit: plan --detailed-exitcode)
            sys.exit(code)
    except typer.Abort:
        typer.echo("interrupted; the state file records what exists: run `provision resume` to continue", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        # Usage errors (unknown command, missing option, bad value): typer/click print them.
        show = getattr(exc, "show", None)
        if show:
            show()
        else:
            typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ProvisionError as exc:
        _report(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted; the state file records what exists: run `provision resume`", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("PROVISION_DEBUG"):
            raise
        _report_unexpected(exc)
        sys.exit(1)
    sys.exit(0)


def entrypoint() -> None:
    """The installed `provision` command: main(), then an immediate exit. Tearing down an interpreter that has
    loaded boto3 and databricks-sdk takes about half a second of garbage collection, spent after the run has
    finished and everything it wrote is flushed and fsynced; tests call main() and keep their interpreter."""
    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    entrypoint()
