"""The [network_security] fragment: flow logs and NACLs for the workspace network (after it is built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provision.spec import Spec

if TYPE_CHECKING:
    from provision.topologies.aws_common import Layout


def network_security(spec: Spec, layout: Layout) -> None:
    if spec.network_security is None:
        return
