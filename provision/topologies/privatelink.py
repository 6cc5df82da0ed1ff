"""privatelink: `basic` plus back-end PrivateLink, in one run."""


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
from provision.clouds.aws.steps.endpoints import (
    InterfaceEndpoint,
    PrivateDns,
)
from provision.clouds.aws.steps.network import PrivateLinkRules, SecurityGroup, Subnet
from provision.clouds.aws.steps.routes import RouteTable
from provision.clouds.databricks import spec as dbx_spec
from provision.clouds.databricks import spec_security
from provision.clouds.databricks.steps.account import (
    PrivateAccessSettings,
    VpcEndpointRegistration,
)
from provision.orchestrator.step import Ref, Step
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


def privatelink(spec: Spec) -> list[Step]:
    """`basic` plus back-end PrivateLink, in one run: a subnet, route table and security group for the
    endpoints; the workspace (REST API) and relay endpoints; their registration with Databricks (which
    accepts them); private DNS once accepted; the network naming them; private access settings."""
    pl = spec.privatelink
    assert pl is not None
    layout = Layout()
    identity(spec, layout)
    aws_encryption.keys(spec, layout)
    storage(spec, layout)
    network(spec, layout)
    aws_netsec.network_security(spec, layout)
    workspace_subnets = list(layout.private_subnets)
    # From and to every workspace subnet (an existing subnet's CIDR is known only once it is read) and the endpoint subnet.
    endpoint_rules = PrivateLinkRules((*(Ref(s, "cidr") for s in workspace_subnets), pl.endpoint_subnet_cidr))

    layout.add(
        Subnet("subnet.endpoints", vpc="vpc", cidr=pl.endpoint_subnet_cidr, zone_of=workspace_subnets[0]),
        RouteTable("rt.endpoints", vpc="vpc", subnets=["subnet.endpoints"], default_route=None),
        SecurityGroup(
            "sg.endpoints", vpc="vpc", description="Databricks back-end PrivateLink endpoints",
            rules=endpoint_rules, needs=tuple(workspace_subnets),
        ),
    )
    for purpose, service in (("workspace", pl.workspace_service), ("relay", pl.relay_service)):
        layout.add(
            InterfaceEndpoint(
                f"vpce.{purpose}", vpc="vpc", service=service, subnets=["subnet.endpoints"],
                security_group="sg.endpoints", private_dns=False,
            ),
            VpcEndpointRegistration(f"dbx.vpce.{purpose}", endpoint=f"vpce.{purpose}", purpose=purpose),
            PrivateDns(f"vpce.{purpose}.dns", endpoint=f"vpce.{purpose}", registration=f"dbx.vpce.{purpose}"),
        )
    layout.network_after += ["vpce.workspace.dns", "vpce.relay.dns"]
    layout.add(PrivateAccessSettings(
        "dbx.pas", rest_registration="dbx.vpce.workspace",
        public_access_enabled=pl.public_access_enabled, private_access_level=pl.private_access_level,
    ))
    workspace(spec, layout, private_access="dbx.pas", vpc_endpoints=("dbx.vpce.workspace", "dbx.vpce.relay"))
    layout.add(*workspace_security.hardening(spec, "dbx.workspace"))
    layout.add(*aws_guardrails.guardrails(spec))
    layout.add(*governance.governance(spec, bucket_key=layout.bucket_key))
    return layout.steps


TOPOLOGY = Topology(
    name="privatelink", cloud="aws", summary="basic plus back-end PrivateLink (workspace and relay endpoints), in one run",
    sections=(
        AWS_ACCOUNT, aws_spec.EXISTING, aws_spec.NETWORK, aws_spec.PRIVATELINK,
        dbx_spec.section(default_tier="ENTERPRISE", required_tier="ENTERPRISE", required_why="PrivateLink"), aws_spec.STORAGE,
        ENCRYPTION, NETWORK_SECURITY, GUARDRAILS, spec_security.WORKSPACE_SECURITY,
        *governance.SECTIONS,
    ),
    build=privatelink, immutable=(*VPC_IMMUTABLE, "privatelink", *governance.GOVERNANCE_IMMUTABLE), workspaces=one_workspace,
    example="privatelink.toml", describe=vpc_lines, preflight=aws_preflight, changes=security_changes,
)
