"""Benchmark `provision` against a latency-profiled sandbox and print the figures docs/benchmarks.md keeps.

The sandbox runs the `realistic` latency profile (provision/sandbox/latency.py) at `--time-scale S`: every
pending time and call latency of real AWS and Databricks, times S, and provision's own poll and backoff
intervals times S too. Seconds are sandbox seconds (divide by S for real-time estimates); the process's own
start-up and exit are not scaled, which is why each figure also says how much of the wall they were.

For each topology, `up` and `teardown`:
  - wall: the command, process start to exit;
  - physical bound (bench_bounds.py): the longest chain of the step graph weighted only with what the provider
    made us wait (drawn pending times, one call latency per call), and the chain itself;
  - step bound: the same chain weighted with our steps' own measured durations;
  - the Terraform model's time on the same graph and latencies (terraform_model.py, docs/terraform-model.md);
  - API calls per service (creates, other writes, reads, polls), polls per wait, throttled answers;
then the no-op `resume` and `plan` (writes, reads, owned resources), hub-and-spoke at `--spokes` counts
(wall, bounds, state bytes written, throttled, peak memory), and `provision --help`'s start-up.

    python scripts/benchmark.py                                # everything
    python scripts/benchmark.py --only basic --spokes ""       # one topology
    python scripts/benchmark.py --only none --spokes 1,8,32 --json figures.json
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_bounds as bounds  # noqa: E402
from provision import topologies  # noqa: E402
from provision.app.runner import POLL_MAX  # noqa: E402
from provision.sandbox import daemon  # noqa: E402
from provision.sandbox.latency import settings_for  # noqa: E402
from provision.sandbox.settings import SandboxSettings  # noqa: E402
from provision.topologies import REGISTRY  # noqa: E402

try:
    import terraform_model  # noqa: E402
except ImportError:  # pragma: no cover - the model is optional for a quick run
    terraform_model = None

# Every topology of the registry, run from its own example file; and `enterprise`, PrivateLink with every
# security and governance section on (customer-managed keys, flow logs, guardrails, Unity Catalog, identities).
EXAMPLES = {name: topology.example_path for name, topology in REGISTRY.items()}
EXAMPLES["enterprise"] = REPO / "examples" / "enterprise.toml"


def provision_cmd() -> list[str]:
    script = Path(sys.executable).parent / "provision"
    return [str(script)] if script.exists() else [sys.executable, "-m", "provision.cli"]


# The runs sign in to the Databricks emulator as an OAuth service principal, as a real run does, so their start-up
# includes what a real one's does (the credentials check and databricks-sdk's import), not the sandbox's shortcut
# for its own fixed token. The secret is drawn per benchmark run and lives only in its sandbox and its runs' env.
BENCH_CLIENT = ("bench-service-principal", secrets.token_urlsafe(24))


class Sandbox:
    def __init__(self, directory: Path, time_scale: float):
        self.directory = directory
        client_id, secret = BENCH_CLIENT
        self.settings = {**settings_for("realistic", time_scale), "fault_seed": 1,
                         "oauth_clients": {client_id: hashlib.sha256(secret.encode()).hexdigest()}}
        self.info, _ = daemon.start(directory, self.settings)

    def control(self, path: str, method: str = "GET") -> dict:
        return daemon.request(self.info.databricks_host, path, method, {} if method == "POST" else None)

    def reset(self) -> None:
        self.control("/_sandbox/reset", "POST")
        daemon.configure(self.info, self.settings)

    def fresh_counters(self) -> None:
        self.control("/_sandbox/journal/reset", "POST")
        try:
            self.control("/_sandbox/throttled/reset", "POST")
        except Exception:  # a sandbox without rate limits
            pass

    def throttled(self) -> dict:
        try:
            return self.control("/_sandbox/throttled")
        except Exception:
            return {}

    def run(self, workdir: Path, *args: str) -> dict:
        """Run one command; its wall time, peak memory and the moment it started (for the start-up overhead)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PROVISION_FAILPOINTS", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET")}
        env["PROVISION_SANDBOX_DIR"] = str(self.directory)
        env["DATABRICKS_CLIENT_ID"], env["DATABRICKS_CLIENT_SECRET"] = BENCH_CLIENT
        out_path, err_path = workdir / ".bench-stdout", workdir / ".bench-stderr"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            began_at, began = time.time(), time.monotonic()
            proc = subprocess.Popen([*provision_cmd(), *args], cwd=workdir, env=env, stdout=out, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage: its peak resident memory
            wall = time.monotonic() - began
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"provision {' '.join(args)} exited {proc.returncode}:\n{err_path.read_text()[-3000:]}")
        return {"wall": wall, "began_at": began_at, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "stdout": out_path.read_text()}

    def stop(self) -> None:
        daemon.stop(self.directory)


# --- one command, measured ----------------------------------------------------------------------------------


def latest_log(workdir: Path, command: str) -> list[dict]:
    logs = sorted((workdir / "provision-logs").glob(f"*-{command}.log"))
    return bounds.read_log(logs[-1]) if logs else []


def measure_command(sandbox: Sandbox, workdir: Path, graph: dict, args: tuple[str, ...], *, command: str,
                    teardown: bool = False, owners: list[dict] | None = None, topology: str = "") -> tuple[dict, dict]:
    """Run `args` and measure it; returns (figures, the state file after it)."""
    sandbox.fresh_counters()
    ran = sandbox.run(workdir, *args)
    state = json.loads((workdir / "provision.state.json").read_text())
    events = latest_log(workdir, command)
    journal = sandbox.control("/_sandbox/journal")
    costs, prefix, unmatched = bounds.step_costs(owners or state["steps"], events, journal, teardown=teardown)
    chain_bound, chain = bounds.physical_bound(graph, costs, prefix, reverse=teardown)
    floors = bounds.rate_floors(events, sandbox.settings["time_scale"])
    # The provider's limit is whichever is longer: the chain of what it made us wait, or its rate limits.
    physical = max([chain_bound, *floors.values()])
    durations = bounds.step_durations(state)
    step_bound, _ = bounds.critical_path(graph, durations, reverse=teardown)
    first, last = bounds.run_window(state)
    wall = ran["wall"]
    startup = (first.timestamp() - ran["began_at"]) if first else 0.0
    exit_s = (ran["began_at"] + wall - last.timestamp()) if last else 0.0
    finished = bounds.finished_event(events)
    calls = bounds.call_summary(events)
    figures = {
        "wall_s": round(wall, 2),
        "physical_bound_s": round(physical, 2),
        "step_bound_s": round(step_bound, 2),
        "ratio_physical": round(wall / physical, 3) if physical else None,
        "ratio_step": round(wall / step_bound, 3) if step_bound else None,
        "startup_s": round(startup, 2),
        "exit_s": round(exit_s, 2),
        "chain_bound_s": round(chain_bound, 2),
        "rate_floors_s": floors,
        "critical_chain": chain,
        # Each step on the physical chain: what the provider imposed, and what the step took.
        "chain_detail": {sid: {"physical_s": round(costs[sid].physical_s, 3), "took_s": round(durations.get(sid, 0.0), 3)} for sid in chain},
        "unmatched_delays": unmatched,
        "calls": calls["per_service"],
        "polls_per_wait": calls["polls_per_wait"],
        "writes": calls["writes"],
        "reads": calls["reads"],
        "throttled": {"client_retries": calls["throttled"], "sandbox": sandbox.throttled()},
        "state_writes": finished.get("state_writes"),
        "state_bytes_written": finished.get("state_bytes_written"),
        "peak_rss_mb": ran["peak_rss_mb"],
    }
    if terraform_model is not None and topology:
        model_costs = {sid: terraform_model.StepCost(kind=c.kind, pending_s=c.pending_s, calls=c.calls, call_s=c.call_s)
                       for sid, c in costs.items()}
        modelled = terraform_model.model(graph, model_costs, topology=topology, operation="teardown" if teardown else "up",
                                         time_scale=sandbox.settings["time_scale"])
        # Terraform's own start-up (process, configuration, provider plugins, their credentials check) is taken
        # as equal to ours, measured in this run: real, unscaled seconds, like ours (docs/terraform-model.md).
        # It meets EC2's buckets too (the AWS SDK backs off the same refusals): never below their floor.
        figures["terraform_model_startup_s"] = round(startup, 2)
        figures["terraform_model_s"] = round(max([modelled["seconds"] + startup, *floors.values()]), 2)
        figures["terraform_model"] = {k: v for k, v in modelled.items() if k != "seconds"}
    return figures, state


def firewall_reaction(sandbox: Sandbox, state: dict, events: list[dict]) -> dict | None:
    """For the firewall's wait (6 minutes at scale 1): polls, and how long after READY provision noticed."""
    firewall = next((r for r in state["steps"] if r["kind"] == "network_firewall.firewall"), None)
    if firewall is None:
        return None
    created = next((e for e in events if e.get("step") == firewall["id"] and e.get("event") == "created"), None)
    polls = [e for e in events if e.get("step") == firewall["id"] and e.get("event") == "poll"]
    if created is None or not polls:
        return None
    settings = SandboxSettings()
    settings.update({k: v for k, v in sandbox.settings.items() if k in ("firewall_provisioning_seconds", "latency_jitter", "fault_seed")})
    ready_after = settings.delay("firewall_provisioning_seconds", firewall["outputs"]["firewall_arn"])
    created_at = dt.datetime.fromisoformat(created["timestamp"].replace("Z", "+00:00"))
    noticed_at = dt.datetime.fromisoformat(polls[-1]["timestamp"].replace("Z", "+00:00"))
    return {
        "polls": len(polls),
        "wait_s": round((noticed_at - created_at).total_seconds(), 2),
        "ready_after_s": round(ready_after, 2),
        "noticed_late_by_s": round((noticed_at - created_at).total_seconds() - ready_after, 2),
        "max_poll_interval_s": round(POLL_MAX * sandbox.settings["time_scale"], 3),
    }


def graph_of(spec_path: Path) -> dict[str, tuple[str, ...]]:
    return {s.id: s.needs for s in topologies.build(topologies.load(spec_path))}


def owned_resources(spec_path: Path) -> int:
    return sum(1 for s in topologies.build(topologies.load(spec_path)) if not s.external)


# --- scenarios --------------------------------------------------------------------------------------------


def measure_topology(sandbox: Sandbox, name: str, spec_path: Path, sequential: bool) -> dict:
    graph = graph_of(spec_path)
    result: dict = {"steps": len(graph)}
    sandbox.reset()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result["up"], up_state = measure_command(sandbox, work, graph, ("up", "--config", str(spec_path), "--sandbox"),
                                                 command="up", topology=name)
        reaction = firewall_reaction(sandbox, up_state, latest_log(work, "up"))
        if reaction:
            result["firewall_wait"] = reaction
        noop = {}
        for command, args in (("resume", ("resume",)), ("plan", ("plan", "--config", str(spec_path), "--sandbox"))):
            ran = sandbox.run(work, *args)
            events = latest_log(work, command)
            calls = bounds.call_summary(events)
            noop[command] = {"wall_s": round(ran["wall"], 2), "writes": calls["writes"], "reads": calls["reads"],
                             "resource_reads": calls["reads"] - calls["credential_check_reads"],
                             "state_writes": bounds.finished_event(events).get("state_writes"),
                             "owned_resources": owned_resources(spec_path)}
        result["noop"] = noop
        result["teardown"], _ = measure_command(sandbox, work, graph, ("teardown", "--yes"), command="teardown",
                                                teardown=True, owners=up_state["steps"], topology=name)
    if sequential:
        sandbox.reset()
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            ran = sandbox.run(work, "up", "--config", str(spec_path), "--sandbox", "--parallelism", "1")
            result["up"]["wall_parallelism_1_s"] = round(ran["wall"], 2)
            ran = sandbox.run(work, "teardown", "--yes", "--parallelism", "1")
            result["teardown"]["wall_parallelism_1_s"] = round(ran["wall"], 2)
    return result


def hub_spoke_with(spokes: int, directory: Path) -> Path:
    data = tomllib.loads(REGISTRY["hub-spoke"].example_path.read_text())
    template = data["spokes"][0]
    data["spokes"] = []
    for index in range(spokes):
        spoke = copy.deepcopy(template)
        spoke["name"] = f"s{index + 1}"
        spoke["vpc_cidr"] = f"10.{20 + index}.0.0/16"
        data["spokes"].append(spoke)
    sys.path.insert(0, str(REPO / "tests"))
    from specs import to_toml  # the suite's TOML writer

    path = directory / f"hub-{spokes}.toml"
    path.write_text(to_toml(data))
    return path


def measure_spokes(sandbox: Sandbox, counts: list[int]) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            spec_path = hub_spoke_with(n, Path(tmp))
            graph = graph_of(spec_path)
            sandbox.reset()
            work = Path(tmp) / f"run-{n}"
            work.mkdir()
            figures, _ = measure_command(sandbox, work, graph, ("up", "--config", str(spec_path), "--sandbox"), command="up")
            keep = ("wall_s", "physical_bound_s", "step_bound_s", "ratio_physical", "startup_s", "state_writes",
                    "state_bytes_written", "throttled", "calls", "peak_rss_mb")
            out[str(n)] = {"steps": len(graph), **{k: figures[k] for k in keep}}
    if counts:
        first = out[str(counts[0])]["wall_s"]
        for n in counts:
            out[str(n)]["vs_first"] = round(out[str(n)]["wall_s"] / first, 3)
    return out


def measure_help(runs: int = 7) -> dict:
    walls = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([*provision_cmd(), "--help"], capture_output=True, check=True)
        walls.append(time.monotonic() - started)
    probe = (
        "import sys\nfrom provision import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'databricks.sdk', 'moto', 'azure.core', 'azure.identity') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3), "heavy_modules_loaded": loaded}


# --- report -----------------------------------------------------------------------------------------------


def _calls_lines(calls: dict) -> list[str]:
    return [f"          {service:16} creates {c['creates']:3}  other writes {c['other_writes']:3}  reads {c['reads']:4}  polls {c['polls']:4}"
            for service, c in calls.items()]


def print_text(report: dict) -> None:
    meta = report["meta"]
    print(f"time scale {meta['time_scale']} (seconds are sandbox seconds; / {meta['time_scale']} for real time), commit {meta['commit']}")
    for name, r in report["topologies"].items():
        if "error" in r:
            print(f"\n== {name}: FAILED\n{r['error']}")
            continue
        print(f"\n== {name} ({r['steps']} steps)")
        for op in ("up", "teardown"):
            m = r[op]
            tf = m.get("terraform_model_s")
            tf_text = f"  terraform model {tf}s (x{round(tf / m['wall_s'], 2)} ours)" if tf else ""
            print(f"{op:9} wall {m['wall_s']}s  physical {m['physical_bound_s']}s  x{m['ratio_physical']}  "
                  f"step bound {m['step_bound_s']}s  x{m['ratio_step']}{tf_text}")
            print(f"          start-up {m['startup_s']}s, exit {m['exit_s']}s; chain: {' > '.join(m['critical_chain'])}")
            if "wall_parallelism_1_s" in m:
                print(f"          parallelism 1: wall {m['wall_parallelism_1_s']}s")
            for line in _calls_lines(m["calls"]):
                print(line)
            waits = m["polls_per_wait"]
            if waits:
                top = next(iter(waits.items()))
                print(f"          polls per wait: most {top[1]} ({top[0]}), waits {len(waits)}; throttled {m['throttled']}")
            print(f"          state: {m['state_writes']} writes, {m['state_bytes_written']} bytes; peak memory {m['peak_rss_mb']} MB")
            if m["unmatched_delays"]:
                print(f"          delays no step claimed: {m['unmatched_delays']}")
        if "firewall_wait" in r:
            f = r["firewall_wait"]
            print(f"firewall wait: {f['polls']} polls over {f['wait_s']}s; READY after {f['ready_after_s']}s, "
                  f"noticed {f['noticed_late_by_s']}s later (poll interval cap {f['max_poll_interval_s']}s)")
        for command, n in r["noop"].items():
            print(f"no-op {command:7} API writes {n['writes']}  state writes {n['state_writes']}  reads {n['reads']} "
                  f"({n['resource_reads']} of resources, the rest the credentials checks)  "
                  f"owned resources {n['owned_resources']}  wall {n['wall_s']}s")
    if report.get("spokes"):
        print("\n== hub-spoke by spoke count (up)")
        for n, m in report["spokes"].items():
            print(f"{n:>3} spokes ({m['steps']} steps): wall {m['wall_s']}s  physical {m['physical_bound_s']}s  x{m['ratio_physical']}  "
                  f"x{m['vs_first']} of the first; state {m['state_writes']} writes {m['state_bytes_written']} bytes; "
                  f"throttled {m['throttled']}; peak memory {m['peak_rss_mb']} MB")
    if "help" in report:
        h = report["help"]
        print(f"\nprovision --help: median {h['median_s']}s (min {h['min_s']}s); heavy modules loaded: {h['heavy_modules_loaded']}")


def as_issue_json(report: dict) -> dict:
    """The shape `--json` writes: topologies at the top level, then spokes, help and meta."""
    return {**report["topologies"], "spokes": report.get("spokes", {}), "help": report.get("help"), "meta": report["meta"]}


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", "--topology", dest="only", choices=[*EXAMPLES, "all", "none"], default="all")
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--spokes", default="1,8,32", help="hub-spoke spoke counts to compare ('' to skip)")
    parser.add_argument("--sequential", action="store_true", help="also run each topology with --parallelism 1")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--output", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="provision-bench-"))
    report: dict = {"meta": {"time_scale": args.time_scale, "commit": _commit(), "date": dt.date.today().isoformat(),
                             "cpus": os.cpu_count(), "python": sys.version.split()[0]}, "topologies": {}}
    sandbox = Sandbox(root / "sandbox", args.time_scale)
    try:
        names = [] if args.only == "none" else list(EXAMPLES) if args.only == "all" else [args.only]
        for name in names:
            try:
                report["topologies"][name] = measure_topology(sandbox, name, EXAMPLES[name], args.sequential)
            except RuntimeError as exc:  # one topology failing still leaves the others' figures
                report["topologies"][name] = {"error": str(exc)[-2000:]}
            if args.json_path:  # as it goes: a long run interrupted keeps what it measured
                args.json_path.write_text(json.dumps(as_issue_json(report), indent=2) + "\n")
        counts = [int(n) for n in args.spokes.split(",") if n.strip()]
        report["spokes"] = measure_spokes(sandbox, counts)
    finally:
        sandbox.stop()
        shutil.rmtree(root, ignore_errors=True)
    report["help"] = measure_help()
    if args.json_path:
        args.json_path.write_text(json.dumps(as_issue_json(report), indent=2) + "\n")
    if args.output == "json":
        print(json.dumps(as_issue_json(report), indent=2))
    else:
        print_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
