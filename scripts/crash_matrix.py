"""Crash matrix: SIGKILL `provision` at every step and failpoint, recover, and compare with the sandbox.

For each topology:
  1. A reference run: `up` uninterrupted; its sandbox inventory (counts per resource kind) is the target.
  2. For every owned step and every create point (before_create, after_create, after_checkpoint): a
     fresh sandbox, `up` killed there with SIGKILL, then `resume`. The inventory must equal the
     reference exactly and every EC2 resource must carry our tags.
  3. For every owned step and every delete point (before_delete, after_delete): `teardown` killed there,
     then `teardown` again: zero left.
A delete point rides on the teardown of a create point's cycle (same step), so a step costs three
`up`s, not five; every one of the five points is still a separate kill and counted on its own.
Cycles run on `--workers` sandboxes at once (each its own daemon and ports).
It prints `recovered N/N crash points` per topology and exits 1 if any point did not recover.

    python scripts/crash_matrix.py --workers 2              # every topology, every point (tens of minutes)
    python scripts/crash_matrix.py --topology basic --sample 6 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provision import topologies  # noqa: E402
from provision.topologies import REGISTRY, build  # noqa: E402
from provision.sandbox import daemon  # noqa: E402
from provision.app.inventory import counts, inventory, untagged  # noqa: E402

# Every topology of the registry, run from its own example file, and the examples that turn on more of a
# topology (enterprise: basic with every security section).
EXAMPLES = {name: topology.example_path for name, topology in REGISTRY.items()}
EXAMPLES["enterprise"] = REPO / "examples" / "enterprise.toml"
CREATE_POINTS = ("before_create", "after_create", "after_checkpoint")
DELETE_POINTS = ("before_delete", "after_delete")
FAST = {
    "iam_propagation_seconds": 0.2, "workspace_provisioning_seconds": 0.2, "nat_gateway_pending_seconds": 0.1,
    "nat_gateway_deleting_seconds": 0.1, "vpc_endpoint_pending_seconds": 0.05, "eni_release_seconds": 0.05,
    "firewall_provisioning_seconds": 0.2, "firewall_deleting_seconds": 0.2, "tgw_pending_seconds": 0.1,
    "tgw_attachment_pending_seconds": 0.1, "azure_workspace_provisioning_seconds": 0.2, "azure_workspace_deleting_seconds": 0.1,
    "azure_resource_seconds": 0.05, "azure_endpoint_seconds": 0.1, "azure_resource_group_deleting_seconds": 0.1,
}


def provision_cmd() -> list[str]:
    script = Path(sys.executable).parent / "provision"
    return [str(script)] if script.exists() else [sys.executable, "-m", "provision.cli"]


class Runner:
    def __init__(self, sandbox_dir: Path):
        self.sandbox_dir = sandbox_dir
        self.last_error = ""
        self.info, _ = daemon.start(sandbox_dir, FAST)

    def reset(self) -> None:
        daemon.request(self.info.databricks_host, "/_sandbox/reset", "POST", {})
        daemon.configure(self.info, FAST)

    def cli(self, workdir: Path, *args: str, failpoints: str | None = None) -> int:
        env = {k: v for k, v in os.environ.items() if k != "PROVISION_FAILPOINTS"}
        env["PROVISION_SANDBOX_DIR"] = str(self.sandbox_dir)
        if failpoints:
            env["PROVISION_FAILPOINTS"] = failpoints
        result = subprocess.run([*provision_cmd(), *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode not in (0, -signal.SIGKILL):
            # Why a run failed goes with the failure it explains (the last lines name the step and error).
            self.last_error = " | ".join(result.stderr.strip().splitlines()[-3:])
        return result.returncode

    def stop(self) -> None:
        daemon.stop(self.sandbox_dir)


def points_for(topology: str) -> tuple[Path, list[tuple[str, str]], str, str]:
    path = EXAMPLES[topology]
    spec = topologies.load(path)
    owned = [s.id for s in build(spec) if not s.external]
    points = [(sid, p) for sid in owned for p in CREATE_POINTS + DELETE_POINTS]
    return path, points, spec.name, spec.databricks.account_id if spec.databricks else None


def cycles(points: list[tuple[str, str]]) -> list[tuple[tuple[str, str] | None, tuple[str, str] | None]]:
    """Pair each step's delete points with its create points: (create point, delete point) per cycle."""
    creates = [p for p in points if p[1] in CREATE_POINTS]
    deletes = [p for p in points if p[1] in DELETE_POINTS]
    paired: list[tuple[tuple[str, str] | None, tuple[str, str] | None]] = []
    for create in creates:
        match = next((d for d in deletes if d[0] == create[0]), None)
        if match:
            deletes.remove(match)
        paired.append((create, match))
    paired.extend((None, d) for d in deletes)
    return paired


class Topology:
    def __init__(self, name: str):
        self.name = name
        self.path, self.points, self.deployment, self.account = points_for(name)
        self.reference: dict | None = None

    def run_cycle(self, runner: Runner, create: tuple[str, str] | None, delete: tuple[str, str] | None) -> list[str]:
        """One fresh sandbox: `up` (killed at `create`, then resumed), check, `teardown` (killed at `delete`,
        then run again), check zero. Returns the failed points' messages."""
        runner.reset()
        failures: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            up = ["up", "--config", str(self.path), "--sandbox"]
            if create:
                label = ":".join(create)
                killed = runner.cli(work, *up, failpoints=f"{label}=kill")
                if killed != -signal.SIGKILL:
                    return [f"{label}: up exited {killed}, expected SIGKILL"]
                if runner.cli(work, "resume") != 0:
                    return [f"{label}: resume failed: {runner.last_error}"]
                found = inventory(runner.info, account_id=self.account)
                if counts(found) != self.reference:
                    failures.append(f"{label}: inventory {dict(counts(found))} != {dict(self.reference or {})}")
                elif untagged(found, self.deployment):
                    failures.append(f"{label}: untagged resources {untagged(found, self.deployment)[:3]}")
            elif runner.cli(work, *up) != 0:
                return [f"{':'.join(delete or ())}: up failed"]
            # The teardown half: killed at the delete point if there is one, then run again.
            if delete:
                label = ":".join(delete)
                killed = runner.cli(work, "teardown", "--yes", failpoints=f"{label}=kill")
                if killed != -signal.SIGKILL:
                    return failures + [f"{label}: teardown exited {killed}, expected SIGKILL"]
            if runner.cli(work, "teardown", "--yes") != 0:
                return failures + [f"{':'.join(p)}: teardown failed: {runner.last_error}" for p in (create, delete) if p]
            left = counts(inventory(runner.info, account_id=self.account))
            if left:
                failures += [f"{':'.join(p)}: teardown left {dict(left)}" for p in (create, delete) if p]
        return failures


def measure_reference(runner: Runner, topology: Topology) -> str | None:
    runner.reset()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if runner.cli(work, "up", "--config", str(topology.path), "--sandbox") != 0:
            return "reference run failed"
        topology.reference = counts(inventory(runner.info, account_id=topology.account))
        runner.cli(work, "teardown", "--yes")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", choices=[*EXAMPLES, "all"], default="all")
    parser.add_argument("--sample", type=int, default=None, help="check N random points per topology instead of all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="sandboxes (and cycles) run at once")
    parser.add_argument("--only", action="append", default=[], metavar="STEP:POINT", help="check just these points (repeatable)")
    parser.add_argument("--output", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="crash-matrix-"))
    runners: list[Runner] = []
    idle: list[Runner] = []
    lock = threading.Lock()
    results = {}
    try:
        for index in range(max(1, args.workers)):
            runners.append(Runner(root / f"sandbox-{index}"))
        idle.extend(runners)
        for name in (EXAMPLES if args.topology == "all" else [args.topology]):
            started = time.monotonic()
            topology = Topology(name)
            points = topology.points
            if args.only:
                points = [p for p in points if ":".join(p) in args.only]
            if args.sample is not None and args.sample < len(points):
                points = rng.sample(points, args.sample)
            problem = measure_reference(runners[0], topology)
            failures: list[str] = [problem] if problem else []

            def work(pair, topology=topology):
                with lock:
                    runner = idle.pop()
                try:
                    return topology.run_cycle(runner, *pair)
                finally:
                    with lock:
                        idle.append(runner)

            if not problem:
                with ThreadPoolExecutor(max_workers=len(runners)) as pool:
                    for found in pool.map(work, cycles(points)):
                        failures.extend(found)
            failed = len({f.split(": ", 1)[0] for f in failures}) if not problem else len(points)
            ok = len(points) - failed
            results[name] = {"recovered": ok, "total": len(points), "failures": failures,
                             "seconds": round(time.monotonic() - started, 1)}
            if args.output == "text":
                print(f"{name}: recovered {ok}/{len(points)} crash points ({results[name]['seconds']}s)", flush=True)
                for failure in failures:
                    print(f"  FAILED {failure}", flush=True)
    finally:
        for runner in runners:
            runner.stop()
        shutil.rmtree(root, ignore_errors=True)
    if args.output == "json":
        print(json.dumps(results, indent=2))
    return 0 if all(r["recovered"] == r["total"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
