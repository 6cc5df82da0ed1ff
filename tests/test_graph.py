"""Step wiring, checked before any API call: each Ref a step reads names a step it needs and a key that
step produces; a step returns only the outputs it declares, and reads only the Refs it declares."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_engine import FakeCloud, FakeStep, World

from provision import topologies
from provision.clouds.aws.context import Zones
from provision.clouds.aws.steps import existing, iam, network, storage
from provision.clouds.aws.steps.network import (
    WORKSPACE_SG_RULES,
    PrivateLinkRules,
    SecurityGroup,
    Subnet,
    Vpc,
)
from provision.errors import GraphError, StepFailed
from provision.orchestrator import graph
from provision.orchestrator.engine import Engine
from provision.orchestrator.step import Context, Outputs, Ref, Step
from provision.state.store import Status

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))


def network_steps(*, sg_needs: tuple[str, ...], cidr_key: str = "cidr") -> list[Step]:
    """A VPC, two subnets and an endpoint security group whose rules use the first subnet's CIDR."""
    zones = Zones(2)
    return [
        Vpc("vpc", "10.0.0.0/16"),
        Subnet("subnet.0", vpc="vpc", cidr="10.0.0.0/24", zones=zones, zone_index=0),
        Subnet("subnet.1", vpc="vpc", cidr="10.0.1.0/24", zones=zones, zone_index=1),
        SecurityGroup(
            "sg.endpoints", vpc="vpc", description="endpoints", needs=sg_needs,
            rules=PrivateLinkRules((Ref("subnet.0", cidr_key), "10.0.9.0/28")),
        ),
    ]


def test_a_correctly_wired_graph_passes() -> None:
    steps = network_steps(sg_needs=("subnet.0",))
    assert graph.check(steps) == steps
    assert Ref("subnet.0", "cidr") in steps[-1].reads()
    assert set(steps[-1].reads()) == {Ref("vpc", "vpc_id"), Ref("subnet.0", "cidr")}


def test_reading_an_output_of_a_step_not_needed_fails_naming_both_steps() -> None:
    with pytest.raises(GraphError, match=r"step sg\.endpoints reads 'cidr' of step subnet\.0, which it does not need"):
        graph.check(network_steps(sg_needs=("subnet.1",)))


def test_a_step_not_needed_fails_before_any_client_is_created(tmp_path: Path) -> None:
    world = World(path=tmp_path / "state.json", spec=topologies.load(REPO / "examples" / "basic.toml"))
    touched: list[str] = []

    class Clients:
        def __getattr__(self, name: str) -> object:
            touched.append(name)
            raise AssertionError(f"a client was used: {name}")

        def __getitem__(self, name: str) -> object:
            touched.append(name)
            raise AssertionError(f"a client was made: {name}")

    ctx = world.new_ctx()
    ctx.clients = Clients()  # type: ignore[assignment]
    with pytest.raises(GraphError, match="subnet.0"):
        Engine(network_steps(sg_needs=("subnet.1",)), world.state(), ctx)
    assert touched == []
    assert not world.path.exists()


def test_a_ref_to_a_key_its_producer_does_not_declare_fails_naming_the_key() -> None:
    with pytest.raises(GraphError, match=r"reads 'cidr_block' of step subnet\.0, which a Subnet does not produce"):
        graph.check(network_steps(sg_needs=("subnet.0",), cidr_key="cidr_block"))


def test_a_ref_to_a_step_that_does_not_exist_fails() -> None:
    steps = [Vpc("vpc", "10.0.0.0/16"), SecurityGroup("sg", vpc="vpc", description="x", rules=WORKSPACE_SG_RULES)]
    steps[1].extra = Ref("igw", "igw_id")  # type: ignore[attr-defined]
    with pytest.raises(GraphError, match=r"step sg reads 'igw_id' of step igw, which does not exist"):
        graph.check(steps)


def test_a_transitive_need_is_enough() -> None:
    cloud = FakeCloud()
    join = FakeStep("c", cloud, needs=("b",))
    join.grandparent = Ref("a", "res_id")  # type: ignore[attr-defined]
    graph.check([FakeStep("a", cloud), FakeStep("b", cloud, needs=("a",)), join])


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_topology_is_wired_correctly(example: Path) -> None:
    steps = graph.check(topologies.build(topologies.load(example)))
    assert all(step.produces for step in steps), [s.id for s in steps if not s.produces]


def test_existing_resources_produce_what_the_steps_they_stand_in_for_produce() -> None:
    def public(produces: tuple[str, ...]) -> tuple[str, ...]:
        # What a step saw last, for its own needs_converge: no other step reads it.
        return tuple(key for key in produces if key not in ("digest", "rules_digest"))

    assert existing.ExistingVpc.produces == network.Vpc.produces
    assert existing.ExistingSubnet.produces == network.Subnet.produces
    assert existing.ExistingSecurityGroup.produces == public(network.SecurityGroup.produces)
    assert existing.ExistingBucket.produces == public(storage.RootBucket.produces)
    assert existing.ExistingRole.produces == iam.CrossAccountRole.produces


# run time ----------------------------------------------------------------------------------------


class Chatty(FakeStep):
    """Returns an output it does not declare."""

    def create(self, ctx: Context) -> Outputs:
        return {**super().create(ctx), "secret": "x"}


class Sneaky(FakeStep):
    """Reads an output of a step it needs, but through a Ref it does not declare."""

    def create(self, ctx: Context) -> Outputs:
        ctx.out(Ref("vpc", "ready"))
        return super().create(ctx)


@pytest.mark.usefixtures("no_real_sleep")
def test_a_step_returning_an_output_it_does_not_declare_is_caught(tmp_path: Path) -> None:
    world = World(path=tmp_path / "state.json", spec=topologies.load(REPO / "examples" / "basic.toml"))
    steps = [FakeStep("vpc", world.cloud), Chatty("subnet.0", world.cloud, needs=("vpc",))]
    with pytest.raises(StepFailed) as failed:
        world.engine(steps=steps).up()
    assert failed.value.step_id == "subnet.0"
    assert isinstance(failed.value.cause, GraphError)
    assert "does not declare in `produces`: secret" in str(failed.value)
    assert world.statuses()["subnet.0"] is Status.FAILED


@pytest.mark.usefixtures("no_real_sleep")
def test_a_step_reading_a_ref_it_does_not_declare_is_refused(tmp_path: Path) -> None:
    world = World(path=tmp_path / "state.json", spec=topologies.load(REPO / "examples" / "basic.toml"))
    steps = [FakeStep("vpc", world.cloud), Sneaky("subnet.0", world.cloud, needs=("vpc",))]
    with pytest.raises(StepFailed) as failed:
        world.engine(steps=steps).up()
    assert isinstance(failed.value.cause, GraphError)
    assert "vpc:ready" in str(failed.value.cause)


# the steps themselves ----------------------------------------------------------------------------

STEP_SOURCES = sorted((REPO / "provision" / "clouds").glob("*/steps/*.py"))
# Deployment-wide facts a step may read from the spec; everything per resource comes from its constructor.
DEPLOYMENT_WIDE = {"name", "region", "tags", "databricks.account_id"}


@pytest.mark.parametrize("source", STEP_SOURCES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_steps_read_outputs_only_through_refs_and_the_spec_only_for_deployment_wide_facts(source: Path) -> None:
    text = source.read_text()
    assert "ctx.outputs" not in text
    for read in re.findall(r"ctx\.spec\.([A-Za-z_.]+)", text):
        assert read in DEPLOYMENT_WIDE or read.startswith("timeouts."), f"{source.name} reads ctx.spec.{read}"


def test_a_miswired_topology_fails_in_up_before_the_target_or_any_client_exists(tmp_path: Path, monkeypatch) -> None:
    """Through the composition root: a registered topology whose builder reads an output of a step it does
    not need fails `provision up` with a GraphError; no target was resolved, no client made, no file written."""
    import dataclasses

    from provision.app import runner

    def miswired(spec) -> list[Step]:
        return network_steps(sg_needs=("subnet.1",))

    basic = topologies.REGISTRY["basic"]
    monkeypatch.setitem(topologies.REGISTRY, "miswired", dataclasses.replace(basic, name="miswired", build=miswired))
    made: list[str] = []
    monkeypatch.setattr(runner, "resolve_target", lambda kind: made.append(f"target {kind}"))
    monkeypatch.setattr(runner, "make_clients", lambda *a, **k: made.append("clients"))
    config = tmp_path / "spec.toml"
    config.write_text((REPO / "examples" / "basic.toml").read_text().replace('topology = "basic"', 'topology = "miswired"'))
    assert 'topology = "miswired"' in config.read_text()
    state = tmp_path / "provision.state.json"
    with pytest.raises(GraphError, match=r"step sg\.endpoints reads 'cidr' of step subnet\.0, which it does not need"):
        runner.up(config, runner.RunOptions(state_path=state), sandbox=True)
    assert made == []
    assert list(tmp_path.iterdir()) == [config]
