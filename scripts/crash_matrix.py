"""Crash matrix: SIGKILL `provision` at every step and failpoint, recover, and compare with the sandbox.

For each topology:
  1. A reference run: `up` uninterrupted; its sandbox inventory (counts per resource kind) is the target.
  2. For every owned step and every create point (before_create, after_create, after_checkpoint): a
     fresh sandbox, `up` killed there with SIGKILL, then `resume`. The inventory must equal the
     reference exactly and every EC2 resource must carry our tags. Then `teardown` must leave zero.
  3. For every owned step and every delete point (before_delete, after_delete): `up`, `teardown` killed
     there, then `teardown` again: zero left.
It prints `recovered N/N crash points` per topology and exits 1 if any point did not recover.

    python scripts/crash_matrix.py                          # every topology, every point (minutes)
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provision import spec as specs  # noqa: E402
from provision.sandbox import daemon  # noqa: E402
from provision.sandbox.inventory import counts, inventory, untagged  # noqa: E402
from provision.steps.topologies import build  # noqa: E402

EXAMPLES = {"basic": "basic.toml", "privatelink": "privatelink.toml", "hub-spoke": "hub-spoke.toml"}
CREATE_POINTS = ("before_create", "after_create", "after_checkpoint")
DELETE_POINTS = ("before_delete", "after_delete")
FAST = {
    "iam_propagation_seconds": 0.2, "workspace_provisioning_seconds": 0.2, "nat_gateway_pending_seconds": 0.1,
    "nat_gateway_deleting_seconds": 0.1, "vpc_endpoint_pending_seconds": 0.05, "eni_release_seconds": 0.05,
    "firewall_provisioning_seconds": 0.2, "firewall_deleting_seconds": 0.2, "tgw_pending_seconds": 0.1,
    "tgw_attachment_pending_seconds": 0.1,
}


def provision_cmd() -> list[str]:
    script = Path(sys.executable).parent / "provision"
    return [str(script)] if script.exists() else [sys.executable, "-m", "provision.cli"]


class Runner:
    def __init__(self, sandbox_dir: Path):
        self.sandbox_dir = sandbox_dir
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
        return result.returncode

    def stop(self) -> None:
        daemon.stop(self.sandbox_dir)


def points_for(topology: str) -> tuple[Path, list[tuple[str, str]], str, str]:
    path = REPO / "examples" / EXAMPLES[topology]
    spec = specs.load(path)
    owned = [s.id for s in build(spec) if not s.external]
    points = [(sid, p) for sid in owned for p in CREATE_POINTS + DELETE_POINTS]
    return path, points, spec.name, spec.databricks.account_id


def run_topology(runner: Runner, topology: str, sample: int | None, rng: random.Random) -> tuple[int, int, list[str]]:
    path, points, deployment, account = points_for(topology)
    if sample is not None and sample < len(points):
        points = rng.sample(points, sample)
    runner.reset()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if runner.cli(work, "up", "--config", str(path), "--sandbox") != 0:
            return 0, len(points), ["reference run failed"]
        reference = counts(inventory(runner.info, account_id=account))
        runner.cli(work, "teardown", "--yes")
    failures = []
    for step_id, point in points:
        runner.reset()
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            label = f"{step_id}:{point}"
            failpoint = f"{label}=kill"
            if point in CREATE_POINTS:
                killed = runner.cli(work, "up", "--config", str(path), "--sandbox", failpoints=failpoint)
                if killed != -signal.SIGKILL:
                    failures.append(f"{label}: up exited {killed}, expected SIGKILL")
                    continue
                if runner.cli(work, "resume") != 0:
                    failures.append(f"{label}: resume failed")
                    continue
                found = inventory(runner.info, account_id=account)
                if counts(found) != reference:
                    failures.append(f"{label}: inventory {dict(counts(found))} != {dict(reference)}")
                    continue
                if untagged(found, deployment):
                    failures.append(f"{label}: untagged resources {untagged(found, deployment)[:3]}")
                    continue
                runner.cli(work, "teardown", "--yes")
            else:
                if runner.cli(work, "up", "--config", str(path), "--sandbox") != 0:
                    failures.append(f"{label}: up failed")
                    continue
                killed = runner.cli(work, "teardown", "--yes", failpoints=failpoint)
                if killed != -signal.SIGKILL:
                    failures.append(f"{label}: teardown exited {killed}, expected SIGKILL")
                    continue
                if runner.cli(work, "teardown", "--yes") != 0:
                    failures.append(f"{label}: second teardown failed")
                    continue
            left = counts(inventory(runner.info, account_id=account))
            if left:
                failures.append(f"{label}: teardown left {dict(left)}")
    return len(points) - len(failures), len(points), failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", choices=[*EXAMPLES, "all"], default="all")
    parser.add_argument("--sample", type=int, default=None, help="check N random points per topology instead of all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    sandbox_dir = Path(tempfile.mkdtemp(prefix="crash-matrix-"))
    runner = Runner(sandbox_dir)
    results = {}
    try:
        for topology in (EXAMPLES if args.topology == "all" else [args.topology]):
            started = time.monotonic()
            ok, total, failures = run_topology(runner, topology, args.sample, rng)
            results[topology] = {"recovered": ok, "total": total, "failures": failures, "seconds": round(time.monotonic() - started, 1)}
            if args.output == "text":
                print(f"{topology}: recovered {ok}/{total} crash points ({results[topology]['seconds']}s)", flush=True)
                for failure in failures:
                    print(f"  FAILED {failure}", flush=True)
    finally:
        runner.stop()
        shutil.rmtree(sandbox_dir, ignore_errors=True)
    if args.output == "json":
        print(json.dumps(results, indent=2))
    return 0 if all(r["recovered"] == r["total"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
