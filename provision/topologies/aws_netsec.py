"""The [network_security] fragment: flow logs and NACLs for the workspace network (after it is built).

The restrictive endpoint policies belong to the endpoints themselves, so `aws_common.new_network` passes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from provision.clouds.aws.steps.flowlogs import FlowLog, FlowLogRole, LogGroup
from provision.clouds.aws.steps.nacl import NetworkAcl
from provision.spec import Spec

if TYPE_CHECKING:
    from provision.topologies.aws_common import Layout


def network_security(spec: Spec, layout: Layout) -> None:
    ns = spec.network_security
    if ns is None:
        return
    if ns.flow_logs:
        layout.add(
            # Encrypted with the deployment's logs key when [encryption] makes one.
            LogGroup("logs.flowlogs", retention_days=ns.flow_log_retention_days, kms_key=layout.logs_key),
            FlowLogRole("iam.flowlogs", log_group="logs.flowlogs"),
            FlowLog("flowlogs.vpc", vpc="vpc", log_group="logs.flowlogs", role="iam.flowlogs", traffic_type=ns.flow_log_traffic),
        )
    if ns.nacls:
        layout.add(NetworkAcl("nacl.private", vpc="vpc", subnets=list(layout.private_subnets)))
        # Databricks validates the subnets' ACL with the network: it must be in place first.
        layout.network_after.append("nacl.private")
