"""The [encryption] fragment: customer-managed KMS keys and their Databricks key configurations.

Called after the identity (a storage key's policy names the cross-account role) and before the root
bucket and the workspace, which read the key steps it records on the layout."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provision.spec import Spec

if TYPE_CHECKING:
    from provision.topologies.aws_common import Layout


def keys(spec: Spec, layout: Layout) -> None:
    if spec.encryption is None:
        return
