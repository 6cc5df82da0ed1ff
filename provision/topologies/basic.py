"""basic: a workspace in a customer-managed VPC (new, or the user's existing one)."""


from __future__ import annotations

import provision.topologies.aws_encryption as aws_encryption  # noqa: PLR0402  (the module, not its package)
import provision.topologies.aws_guardrails as aws_guardrails  # noqa: PLR0402
import provision.topologies.aws_netsec as aws_netsec  # noqa: PLR0402
import provision.topologies.governance as governance  # noqa: PLR0402
import provision.topologies.workspace_security as workspace_security  # noqa: PLR0402
from provision.clouds.aws import spec as aws_spec
from provision.clouds.aws.spec_account import AWS_ACCOUNT
from provision.clouds.aws.spec_encryption import ENCRYPTION
from provision.clouds.aws.spec_guardrails import GUARDRAILS
from provision.clouds.aws.spec_netsec import NETWORK_SECURITY
from provision.clouds.databricks import spec as dbx_spec
from provision.clouds.databricks import spec_security
from provision.orchestrator.step import Step
from provision.spec import Spec
from provision.topologies.aws_common import (
    VPC_IMMUTABLE,
    Layout,
    aws_preflight,
    identity,
    network,
    one_workspace,
    security_changes,
    storage,
    vpc_lines,
    workspace,
)
from provision.topologies.registry import Topology


def basic(spec: Spec) -> list[Step]:
    """A workspace in a customer-managed VPC (new, or the user's existing one)."""
    layout = Layout()
    identity(spec, layout)
    aws_encryption.keys(spec, layout)
    storage(spec, layout)
    network(spec, layout)
    aws_netsec.network_security(spec, layout)
    workspace(spec, layout)
    layout.add(*workspace_security.hardening(spec, "dbx.workspace"))
    layout.add(*aws_guardrails.guardrails(spec))
    layout.add(*governance.governance(spec, bucket_key=layout.bucket_key))
    return layout.steps


TOPOLOGY = Topology(
    name="basic", cloud="aws", summary="a workspace in a customer-managed VPC (new, or an existing one)",
    sections=(
        AWS_ACCOUNT, aws_spec.EXISTING, aws_spec.NETWORK, dbx_spec.section(), aws_spec.STORAGE,
        ENCRYPTION, NETWORK_SECURITY, GUARDRAILS, spec_security.WORKSPACE_SECURITY,
        *governance.SECTIONS,
    ),
    build=basic, immutable=(*VPC_IMMUTABLE, *governance.GOVERNANCE_IMMUTABLE), workspaces=one_workspace, example="basic.toml",
    describe=vpc_lines, preflight=aws_preflight, changes=security_changes,
)
