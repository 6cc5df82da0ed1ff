"""basic: a workspace in a customer-managed VPC (new, or the user's existing one)."""


from __future__ import annotations

from provision.clouds.aws import spec as aws_spec
from provision.clouds.databricks import spec as dbx_spec
from provision.orchestrator.step import Step
from provision.spec import Spec
from provision.topologies.aws_common import (
    VPC_IMMUTABLE,
    Layout,
    aws_preflight,
    identity,
    network,
    one_workspace,
    vpc_lines,
    workspace,
)
from provision.topologies.registry import Topology


def basic(spec: Spec) -> list[Step]:
    """A workspace in a customer-managed VPC (new, or the user's existing one)."""
    layout = Layout()
    identity(spec, layout)
    network(spec, layout)
    workspace(spec, layout)
    return layout.steps


TOPOLOGY = Topology(
    name="basic", cloud="aws", summary="a workspace in a customer-managed VPC (new, or an existing one)",
    sections=(aws_spec.EXISTING, aws_spec.NETWORK, dbx_spec.section(), aws_spec.STORAGE),
    build=basic, immutable=VPC_IMMUTABLE, workspaces=one_workspace, example="basic.toml",
    describe=vpc_lines, preflight=aws_preflight,
)
