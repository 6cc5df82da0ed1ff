"""serverless: a workspace with serverless compute only. Databricks runs the compute and keeps the workspace's
default storage, so there is no VPC, no cross-account role, no root bucket and no network configuration: the
run is the workspace wait plus the governance sections (Unity Catalog on default storage, identities,
serverless egress)."""

from __future__ import annotations

import provision.topologies.governance as governance  # noqa: PLR0402  (the module, not its package)
from provision.clouds.databricks import spec as dbx_spec
from provision.clouds.databricks import spec_identity, spec_serverless, spec_unity
from provision.clouds.databricks.steps.account import Workspace
from provision.orchestrator.step import Step
from provision.spec import Spec
from provision.topologies.aws_common import one_workspace
from provision.topologies.registry import Topology


def serverless(spec: Spec) -> list[Step]:
    steps: list[Step] = [
        *governance.connectivity(spec),
        Workspace("dbx.workspace", workspace_name=spec.databricks.workspace_name, pricing_tier=spec.databricks.pricing_tier,
                  compute_mode="SERVERLESS", after=governance.workspace_after(spec)),
    ]
    return steps + governance.governance(spec)


def _describe(d: dict) -> list[str]:
    return ["serverless compute only: no VPC, credentials, root bucket or network configuration", *governance.describe_lines(d)]


_NO_CLASSIC = "a serverless workspace has no {what}: Databricks runs its compute (use topology \"basic\" or \"privatelink\" for classic compute)"

TOPOLOGY = Topology(
    name="serverless", cloud="aws", summary="a workspace with serverless compute only: no VPC, role, bucket or network",
    sections=(
        dbx_spec.section(), spec_unity.section(storage=False), spec_identity.IDENTITY, spec_serverless.SERVERLESS,
    ),
    build=serverless, immutable=("region", "topology", "databricks.account_id", "databricks.workspace_name", *governance.GOVERNANCE_IMMUTABLE),
    workspaces=one_workspace, example="serverless.toml", describe=_describe, changes=governance.changes,
    refusals=tuple(
        (table, _NO_CLASSIC.format(what=what)) for table, what in (
            ("network", "VPC of yours"), ("existing", "VPC, role or bucket of yours"), ("privatelink", "back-end PrivateLink"),
            ("storage", "root bucket of yours"), ("cluster_policies", "classic clusters for cluster policies to govern"),
            ("network_security", "VPC for flow logs or NACLs"), ("encryption", "customer-managed keys in this topology yet"),
        )
    ),
)
