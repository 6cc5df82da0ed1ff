"""The [encryption] fragment: customer-managed KMS keys and their Databricks key configurations.

Called after the identity (a storage key's policy names the cross-account role) and before the root
bucket and the workspace, which read the key steps it records on the layout.

One key serves both use cases (`kms.workspace`, registered once as `dbx.key`), or each has its own
(`kms.managed_services` / `kms.storage`, registered as `dbx.key.managed_services` / `dbx.key.storage`);
a spec with one use case on has only that one's key. The storage key also encrypts the root bucket
(SSE-KMS) and, failing that, the managed-services key the flow-log group. Only a key that the flow-log
group will use ([network_security] with flow logs on) lets CloudWatch Logs use it, for that group alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from provision.clouds.aws.spec_encryption import USE_CASES
from provision.clouds.aws.steps.kms import ExistingKey, KmsKey, logs_use_case
from provision.clouds.databricks.steps.keys import CustomerManagedKey
from provision.spec import Spec

if TYPE_CHECKING:
    from provision.topologies.aws_common import Layout

# Spec field of a use case -> (its step id suffix, its KMS alias suffix).
_NAMES = {"managed_services": ("managed_services", "managed-services"), "workspace_storage": ("storage", "storage")}


def keys(spec: Spec, layout: Layout) -> None:
    enc = spec.encryption
    if enc is None:
        return
    on = enc.use_cases()
    existing = enc.existing
    if len(on) == 2 and not enc.separate_keys:
        # One key (new, or the same existing ARN named for both) for both use cases.
        groups = [("kms.workspace", "dbx.key", "workspace", on)]
    else:
        groups = [(f"kms.{_NAMES[use][0]}", f"dbx.key.{_NAMES[use][0]}", _NAMES[use][1], (use,)) for use in on]
    logs_case = logs_use_case(tuple(USE_CASES[u] for u in on))
    flow_logs = spec.network_security is not None and spec.network_security.flow_logs
    for kms_step, dbx_step, alias, uses in groups:
        use_cases = tuple(USE_CASES[u] for u in uses)
        serves_storage = "workspace_storage" in uses
        holds_logs = logs_case in use_cases
        if existing is not None:
            arn = getattr(existing, f"{uses[0]}_key_arn")
            assert arn is not None, "the spec requires an existing key for every use case that is on"
            layout.add(ExistingKey(kms_step, arn))
        else:
            layout.add(KmsKey(
                kms_step, use=alias, use_cases=use_cases, role="iam.crossaccount" if serves_storage else None,
                logs=flow_logs and holds_logs, deletion_window_days=enc.deletion_window_days,
            ))
        layout.add(CustomerManagedKey(dbx_step, key=kms_step, use_cases=use_cases))
        if serves_storage:
            layout.bucket_key, layout.storage_key = kms_step, dbx_step
        if "managed_services" in uses:
            layout.managed_services_key = dbx_step
        if holds_logs:
            layout.logs_key = kms_step
