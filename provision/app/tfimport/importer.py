"""`provision import --terraform-state`: take over a deployment that Terraform built, without rebuilding it.

In order: the spec is validated and its step graph built and checked; the Terraform state is read (ids and
names only) and mapped onto the steps (mapper.py); the target and clients are made; the state file must be new
(or hold nothing live) and is locked. Then, for each mapped AWS resource, it is checked to exist and tagged as
its step's (aws_tags.py); the names of what is found by name go into the state fact `names`; and each mapped
step's own `find` is run, in graph order, so the outputs recorded are exactly what a run of ours would have
recorded. A step whose find does not see the Terraform resource (or sees another) is not recorded, and the tags
put on the resource are taken off again: it is reported not imported (`up` will create the step's own).
Our state file is written once, at the end: a fact a `find` resolves (the AWS account id, say) is kept in memory
until then. The Terraform state file is never written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision import topologies
from provision.app import runner
from provision.app.tfimport import tfstate
from provision.app.tfimport.aws_tags import Tagger
from provision.clouds.aws.listing import listings_for
from provision.app.tfimport.mapper import Mapping, Match, map_state
from provision.app.tfimport.mapper_hub import map_hub_state
from provision.errors import OwnershipConflict, UsageError
from provision.orchestrator.clients import REAL, SANDBOX
from provision.orchestrator.graph import produced
from provision.orchestrator.step import DECLARED_READS, Context, Step
from provision.state.store import StateFile, Status, now_iso

SUPPORTED_TOPOLOGIES = ("basic", "privatelink", "hub-spoke")


@dataclass
class ImportReport:
    deployment: str
    terraform_state: str
    state_path: str
    imported: list[dict[str, Any]] = field(default_factory=list)  # {address, step, resource_id}
    absorbed: list[dict[str, str]] = field(default_factory=list)  # {address, step, note}
    not_imported: list[dict[str, str]] = field(default_factory=list)  # {address, reason}
    up_creates: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment, "terraform_state": self.terraform_state, "state": self.state_path,
            "imported": self.imported, "absorbed": self.absorbed, "not_imported": self.not_imported, "up_creates": self.up_creates,
        }

    def lines(self) -> list[str]:
        out = [f"imported {len(self.imported)} resources of {self.terraform_state} into {self.state_path} (deployment {self.deployment})"]
        out += [f"  {i['address']} -> {i['step']} ({i['resource_id']})" for i in self.imported]
        if self.absorbed:
            out.append("covered by the step that owns them:")
            out += [f"  {a['address']} -> {a['step']}: {a['note']}" for a in self.absorbed]
        if self.not_imported:
            out.append("not imported:")
            out += [f"  {n['address']}: {n['reason']}" for n in self.not_imported]
        out.append("`provision up` will still create: " + (", ".join(self.up_creates) or "nothing"))
        out.append("run `provision plan` to see what differs from the spec, then `provision up` to converge")
        return out


def _s3_reader(spec: Any, target: Any) -> Any:
    def make() -> Any:
        from provision.clouds.aws.clients import AwsClients
        from provision.orchestrator.clients import CallStats

        return AwsClients(region=spec.region, target=target, stats=CallStats()).client("s3")

    return make


def _fresh_state(backend: Any, spec: Any, target_kind: str, config: Path) -> StateFile:
    """A new state for the deployment: refused (exit 2) over a state that records anything live. (A state whose
    deployment is torn down is replaced: its lineage ends there.)"""
    existing = None
    if backend.exists():
        existing = StateFile.load(backend)
        live = existing.live_records()
        if live:
            raise UsageError(
                f"state {backend.describe()} already records a live deployment ({existing.deployment!r}, {len(live)} steps): "
                "import only into a new state (choose one with --state)"
            )
    return StateFile.new(backend, deployment=spec.name, cloud=spec.cloud, target=target_kind, spec=spec.to_json(), spec_path=str(config),
                         replacing=existing)


def _refuse_collisions(tf: Any, mapping: Any, steps: list[Any]) -> None:
    """Refuse (exit 2, before anything is tagged or written) an import after which `up` could only fail: a subnet our
    spec still has to create in an imported VPC whose CIDR overlaps a Terraform subnet there that did not map (the
    spec carves its subnets differently from the guide)."""
    import ipaddress

    from provision.clouds.aws.steps.network import Subnet

    vpcs = {m.step_id: m.resource_id for m in mapping.matches.values() if m.kind == "ec2.vpc"}
    theirs = [i for i in tf.of_type("aws_subnet") if i.id not in {m.resource_id for m in mapping.matches.values()}]
    problems = []
    for step in steps:
        if not isinstance(step, Subnet) or step.id in mapping.matches or step.vpc_id.step not in vpcs:
            continue
        ours = ipaddress.ip_network(step.cidr)
        for other in theirs:
            cidr = other.get("cidr_block")
            if other.get("vpc_id") == vpcs[step.vpc_id.step] and cidr and ours.overlaps(ipaddress.ip_network(cidr)):
                problems.append(f"{step.id} would create {step.cidr}, which overlaps {other.address} ({cidr})")
    if problems:
        raise UsageError(
            "after this import `up` could not create the spec's subnets in the imported VPC: " + "; ".join(problems)
            + ". Give the spec the Terraform subnets' CIDRs where its topology takes them (network.private_subnet_cidrs, network.public_subnet_cidrs), then import again"
        )


def _refuse_same_file(terraform_state: str, state_location: str) -> None:
    """Our state is never written over the Terraform state (exit 2)."""
    if terraform_state.startswith("s3://") or state_location.startswith("s3://"):
        same = terraform_state == state_location
    else:
        same = Path(terraform_state).resolve() == Path(state_location).resolve()
    if same:
        raise UsageError(f"--state {state_location} is the Terraform state itself: it is only read; choose another state file")


def _zones(spec: Any, mapping: Mapping, steps: list[Step]) -> list[str] | None:
    """The availability zones of the mapped private subnets, in step order, kept as the deployment's zones so
    a subnet `up` still creates goes where the spec's index says."""
    net = getattr(spec, "network", None)
    if net is None or net.availability_zones:
        return None
    zones = []
    for i in range(net.az_count):
        match = mapping.matches.get(f"subnet.private.{i}")
        zone = match.instance.get("availability_zone") if match else None
        if not zone:
            return None
        zones.append(zone)
    return zones


def _find(step: Step, ctx: Context) -> Any:
    token = DECLARED_READS.set(frozenset(step.reads()))
    try:
        return produced(step, ctx.call(lambda: step.find(ctx), f"import {step.id} find"))
    finally:
        DECLARED_READS.reset(token)


def _adopt(ctx: Context, tagger: Tagger, mapping: Mapping, steps: list[Step], report: ImportReport) -> dict[str, Any]:
    """Tag each mapped resource and run its step's find, in graph order; the outputs of what each step found.
    Nothing is written to our state here: a failed import leaves no state behind (its tags are harmless, and
    a second import puts the same ones). A resource the step's find does not confirm loses the tags put on it
    here: left tagged but unrecorded, `up` would create a second one and then find two."""
    found_outputs: dict[str, Any] = {}
    role = mapping.matches.get("iam.crossaccount")
    for step in steps:
        match: Match | None = mapping.matches.get(step.id)
        if match is None:
            continue
        address = match.instance.address
        try:
            if tagger.handles(step.kind):
                present = tagger.adopt(step.kind, step.id, match.resource_id, ctx.name_for(step.id), role=role.resource_id if role else None)
                if not present:
                    report.not_imported.append({"address": address, "reason": f"in the Terraform state but not found: `up` will create {step.id}"})
                    continue
            found = _find(step, ctx)
        except OwnershipConflict as exc:
            tagger.untag(step.id)
            report.not_imported.append({"address": address, "reason": f"not imported into {step.id}: {exc}"})
            continue
        if found is None or step.resource_id(found) != match.resource_id:
            tagger.untag(step.id)
            seen = step.resource_id(found) if found else "nothing"
            untagged = "our tags are taken off it again; " if tagger.handles(step.kind) else ""
            report.not_imported.append({"address": address, "reason": f"{step.id} finds {seen}, not {match.resource_id}: "
                                                                      f"{untagged}`up` will create {step.id}"})
            continue
        ctx.outputs[step.id] = found_outputs[step.id] = found
        report.imported.append({"address": address, "step": step.id, "resource_id": match.resource_id})
    return found_outputs


def run(terraform_state: str, config: Path, opts: runner.RunOptions, *, sandbox: bool) -> ImportReport:
    spec = topologies.load(config)
    if spec.topology not in SUPPORTED_TOPOLOGIES:
        raise UsageError(f"import maps onto topologies {', '.join(SUPPORTED_TOPOLOGIES)}; the spec's is {spec.topology!r}")
    target_kind = SANDBOX if sandbox else REAL
    run_ = runner.prepare(spec, target_kind)
    tf = tfstate.read(terraform_state, _s3_reader(spec, run_.target))
    mapping = (map_hub_state if spec.topology == "hub-spoke" else map_state)(tf, run_.steps, spec.region)
    _refuse_collisions(tf, mapping, run_.steps)
    runner.preflight(run_, str(config))
    backend = runner.state_backend(opts, spec, sandbox=sandbox)
    _refuse_same_file(terraform_state, backend.describe())
    report = ImportReport(spec.name, terraform_state, backend.describe())
    report.absorbed = [{"address": a, "step": s, "note": n} for a, s, n in mapping.absorbed]
    report.not_imported = [{"address": a, "reason": r} for a, r in mapping.unmapped]
    with runner.locked(backend, "import"):
        state = _fresh_state(backend, spec, target_kind, config)
        state.last_command = "import"
        state.ensure_steps([(s.id, s.kind) for s in run_.steps])
        state.facts["names"] = mapping.names
        zones = _zones(spec, mapping, run_.steps)
        if zones:
            state.facts["availability_zones"] = zones
        engine, reporter, log = runner.engine_for("import", run_, state, opts, None)
        ctx = engine.ctx
        # The engine's remember saves the state file; here a fact a find resolves waits in ctx.facts (the state's
        # own facts dict) for the one save at the end.
        facts = ctx.facts
        ctx.remember = lambda key, value: facts.__setitem__(key, value)
        retry = ctx.retry
        tagger = Tagger(run_.clients["aws"].client, lambda fn, what: retry.call(fn, what=what), deployment=spec.name, spec_tags=dict(spec.tags))
        outcome = "failed"
        try:
            # Each step's find must see the tags put on just before it: no shared listing made before them.
            listings_for(run_.clients["aws"]).enabled = False
            found = _adopt(ctx, tagger, mapping, run_.steps, report)
            finished = now_iso()
            for step_id, outputs in found.items():  # one write: the state appears whole or not at all
                record = state.record(step_id)
                record.status, record.outputs, record.finished_at = Status.DONE, outputs, finished
            state.save()
            outcome = "succeeded"
        finally:
            runner.finish(reporter, log, engine, outcome)
    imported = {i["step"] for i in report.imported}
    report.up_creates = [s.id for s in run_.steps if s.id not in imported and not s.external]
    return report
