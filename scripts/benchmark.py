"""Benchmark `provision` against a latency-profiled sandbox and print the figures docs/benchmarks.md keeps.

The sandbox runs the `realistic` latency profile (provision/sandbox/latency.py) at `--time-scale S`: every
pending time and call latency of real AWS and Databricks, times S, and provision's own poll and backoff
intervals times S too. Every ratio below is therefore the one a real run would show; seconds are sandbox
seconds (divide by S for real-time estimates).

For each topology it prints, for `up` and for `teardown`:
  - wall: the command's wall time (process start to exit);
  - bound: the critical-path lower bound, the longest chain of the step graph (reversed for teardown)
    weighted with each step's own measured duration (its calls and its waits, from the state file);
  - ratio wall / bound (target <= 1.10), and the wall time of the same run with --parallelism 1;
  - API calls per service: creates, other writes, reads, polls (reads made while waiting);
  - polls per wait (the most any wait took, and the longest wait's count, target <= 40 for 6 minutes);
then the no-op `resume` and `plan` on the finished deployment (write calls, read calls, owned resources,
wall), hub-and-spoke at 1, 4 and 8 spokes, and `provision --help`'s start-up time and imports.

    python scripts/benchmark.py                      # everything, S = 0.05 (about 20 minutes)
    python scripts/benchmark.py --topology basic --no-sequential --spokes ""
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provision import topologies  # noqa: E402
from provision.topologies import REGISTRY  # noqa: E402
from provision.sandbox import daemon  # noqa: E402
from provision.sandbox.latency import settings_for  # noqa: E402
from provision.sandbox.settings import SandboxSettings  # noqa: E402

# Every topology of the registry, run from its own example file.
EXAMPLES = {name: topology.example_path for name, topology in REGISTRY.items()}
# ARM creates with PUT (create-or-update): counted as creates, like the Account API's POSTs.
CREATE_PREFIXES = ("Create", "Allocate", "Run", "POST ", "PUT ")
READ_PREFIXES = ("Describe", "Get", "List", "Head", "Search", "GET ")


def provision_cmd() -> list[str]:
    script = Path(sys.executable).parent / "provision"
    return [str(script)] if script.exists() else [sys.executable, "-m", "provision.cli"]


class Sandbox:
    def __init__(self, directory: Path, time_scale: float):
        self.directory = directory
        self.settings = {**settings_for("realistic", time_scale), "fault_seed": 1}
        self.info, _ = daemon.start(directory, self.settings)

    def reset(self) -> None:
        daemon.request(self.info.databricks_host, "/_sandbox/reset", "POST", {})
        daemon.configure(self.info, self.settings)

    def run(self, workdir: Path, *args: str) -> tuple[int, float, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PROVISION_FAILPOINTS", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET")}
        env["PROVISION_SANDBOX_DIR"] = str(self.directory)
        started = time.monotonic()
        result = subprocess.run([*provision_cmd(), *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=7200)
        wall = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"provision {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
        return result.returncode, wall, result.stdout

    def stop(self) -> None:
        daemon.stop(self.directory)


# --- measurements -----------------------------------------------------------------------------------------


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def step_durations(state_path: Path) -> dict[str, float]:
    state = json.loads(state_path.read_text())
    return {r["id"]: _seconds(r.get("started_at"), r.get("finished_at")) for r in state["steps"]}


def critical_path(graph: dict[str, tuple[str, ...]], durations: dict[str, float], reverse: bool = False) -> float:
    """The longest chain through the step graph, each step weighted by its own duration."""
    order = list(graph)
    edges = graph
    if reverse:  # teardown: a step goes after every step that needs it
        dependents: dict[str, list[str]] = defaultdict(list)
        for step, needs in graph.items():
            for need in needs:
                dependents[need].append(step)
        order, edges = order[::-1], {s: tuple(dependents[s]) for s in graph}
    finish: dict[str, float] = {}
    for step in order:
        finish[step] = max((finish[d] for d in edges[step]), default=0.0) + durations.get(step, 0.0)
    return max(finish.values(), default=0.0)


def read_log(workdir: Path, command: str) -> list[dict]:
    logs = sorted((workdir / "provision-logs").glob(f"*-{command}.log"))
    return [json.loads(line) for line in logs[-1].read_text().splitlines()] if logs else []


def call_summary(events: list[dict]) -> dict:
    """API calls per service split into creates, other writes, reads and polls; and polls per wait."""
    per_service: dict[str, Counter] = defaultdict(Counter)
    polls_per_wait: Counter = Counter()
    for event in events:
        if event.get("event") == "api call":
            service, operation = event["service"], event["operation"]
            if event.get("poll"):
                kind = "polls"
            elif operation.startswith(READ_PREFIXES):
                kind = "reads"
            elif operation.startswith(CREATE_PREFIXES) and not operation.endswith("/delete"):
                kind = "creates"
            else:
                kind = "other_writes"
            per_service[service][kind] += 1
        elif event.get("event") == "poll":
            polls_per_wait[(event.get("step"), event.get("what"))] += 1
    return {
        "per_service": {s: {k: c[k] for k in ("creates", "other_writes", "reads", "polls")} for s, c in sorted(per_service.items())},
        "writes": sum(c["creates"] + c["other_writes"] for c in per_service.values()),
        "reads": sum(c["reads"] + c["polls"] for c in per_service.values()),
        "polls_per_wait": {f"{step}: {what}": n for (step, what), n in polls_per_wait.most_common()},
    }


def firewall_reaction(sandbox: Sandbox, workdir: Path, events: list[dict]) -> dict | None:
    """For the firewall's wait (6 minutes at scale 1): polls, and how long after READY provision noticed."""
    state = json.loads((workdir / "provision.state.json").read_text())
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
    scale = sandbox.settings["time_scale"]
    return {
        "polls": len(polls),
        "wait_seconds": round((noticed_at - created_at).total_seconds(), 2),
        "ready_after_seconds": round(ready_after, 2),
        "noticed_late_by_seconds": round((noticed_at - created_at).total_seconds() - ready_after, 2),
        "max_poll_interval_seconds": 15.0 * scale,
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
        _, wall, _ = sandbox.run(work, "up", "--config", str(spec_path), "--sandbox")
        events = read_log(work, "up")
        bound = critical_path(graph, step_durations(work / "provision.state.json"))
        result["up"] = {"wall": round(wall, 2), "bound": round(bound, 2), "ratio": round(wall / bound, 3), "calls": call_summary(events)}
        reaction = firewall_reaction(sandbox, work, events)
        if reaction:
            result["firewall_wait"] = reaction
        noop = {}
        for command, args in (("resume", ("resume",)), ("plan", ("plan", "--config", str(spec_path), "--sandbox"))):
            _, wall, _ = sandbox.run(work, *args)
            calls = call_summary(read_log(work, command))
            noop[command] = {"wall": round(wall, 2), "writes": calls["writes"], "reads": calls["reads"], "owned_resources": owned_resources(spec_path)}
        result["noop"] = noop
        _, wall, _ = sandbox.run(work, "teardown", "--yes")
        bound = critical_path(graph, step_durations(work / "provision.state.json"), reverse=True)
        result["teardown"] = {"wall": round(wall, 2), "bound": round(bound, 2), "ratio": round(wall / bound, 3),
                              "calls": call_summary(read_log(work, "teardown"))}
    if sequential:
        sandbox.reset()
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            _, wall, _ = sandbox.run(work, "up", "--config", str(spec_path), "--sandbox", "--parallelism", "1")
            result["up"]["wall_parallelism_1"] = round(wall, 2)
            # The same bound from steps measured one at a time (no contention inflating them).
            result["up"]["bound_from_parallelism_1"] = round(critical_path(graph, step_durations(work / "provision.state.json")), 2)
            _, wall, _ = sandbox.run(work, "teardown", "--yes", "--parallelism", "1")
            result["teardown"]["wall_parallelism_1"] = round(wall, 2)
            result["teardown"]["bound_from_parallelism_1"] = round(
                critical_path(graph, step_durations(work / "provision.state.json"), reverse=True), 2)
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
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            spec_path = hub_spoke_with(n, Path(tmp))
            sandbox.reset()
            work = Path(tmp) / f"run-{n}"
            work.mkdir()
            _, wall, _ = sandbox.run(work, "up", "--config", str(spec_path), "--sandbox")
            bound = critical_path(graph_of(spec_path), step_durations(work / "provision.state.json"))
            out[n] = {"steps": len(graph_of(spec_path)), "up_wall": round(wall, 2), "bound": round(bound, 2)}
    if counts:
        first = out[counts[0]]["up_wall"]
        for n in counts:
            out[n]["vs_first"] = round(out[n]["up_wall"] / first, 3)
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
    return {"median_seconds": round(statistics.median(walls), 3), "min_seconds": round(min(walls), 3), "heavy_modules_loaded": loaded}


# --- report -----------------------------------------------------------------------------------------------


def print_text(report: dict) -> None:
    print(f"time scale {report['time_scale']} (seconds below are sandbox seconds; / {report['time_scale']} for real time)")
    for name, r in report["topologies"].items():
        print(f"\n== {name} ({r['steps']} steps)")
        for op in ("up", "teardown"):
            m = r[op]
            seq = (f", parallelism 1: wall {m['wall_parallelism_1']}s (its steps give a bound of {m['bound_from_parallelism_1']}s)"
                   if "wall_parallelism_1" in m else "")
            print(f"{op:9} wall {m['wall']}s  bound {m['bound']}s  ratio {m['ratio']}{seq}")
            for service, c in m["calls"]["per_service"].items():
                print(f"          {service:16} creates {c['creates']:3}  other writes {c['other_writes']:3}  reads {c['reads']:3}  polls {c['polls']:3}")
            waits = m["calls"]["polls_per_wait"]
            if waits:
                top = next(iter(waits.items()))
                print(f"          polls per wait: most {top[1]} ({top[0]}), waits {len(waits)}")
        if "firewall_wait" in r:
            f = r["firewall_wait"]
            print(f"firewall wait: {f['polls']} polls over {f['wait_seconds']}s; READY after {f['ready_after_seconds']}s, "
                  f"noticed {f['noticed_late_by_seconds']}s later (poll interval cap {f['max_poll_interval_seconds']}s)")
        for command, n in r["noop"].items():
            print(f"no-op {command:7} writes {n['writes']}  reads {n['reads']}  owned resources {n['owned_resources']}  wall {n['wall']}s")
    if report.get("spokes"):
        print("\n== hub-spoke by spoke count")
        for n, m in report["spokes"].items():
            print(f"{n} spokes ({m['steps']} steps): up wall {m['up_wall']}s, bound {m['bound']}s, x{m['vs_first']} of the first")
    h = report["help"]
    print(f"\nprovision --help: median {h['median_seconds']}s (min {h['min_seconds']}s); heavy modules loaded: {h['heavy_modules_loaded']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", choices=[*EXAMPLES, "all"], default="all")
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--spokes", default="1,4,8", help="hub-spoke spoke counts to compare ('' to skip)")
    parser.add_argument("--no-sequential", action="store_true", help="skip the --parallelism 1 runs")
    parser.add_argument("--output", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="provision-bench-"))
    sandbox = Sandbox(root / "sandbox", args.time_scale)
    report: dict = {"time_scale": args.time_scale, "topologies": {}}
    try:
        for name in (EXAMPLES if args.topology == "all" else [args.topology]):
            report["topologies"][name] = measure_topology(sandbox, name, EXAMPLES[name], not args.no_sequential)
        counts = [int(n) for n in args.spokes.split(",") if n.strip()]
        report["spokes"] = measure_spokes(sandbox, counts)
    finally:
        sandbox.stop()
        shutil.rmtree(root, ignore_errors=True)
    report["help"] = measure_help()
    if args.output == "json":
        print(json.dumps(report, indent=2))
    else:
        print_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
