"""AWS half of the sandbox cloud: moto's server plus the fidelity moto 5.2.5 lacks, so teardown ordering
and idempotency bugs fail here exactly as they would on real AWS.

The rules apply only to requests that come through an app made by `make_aws_app`; moto used any other
way in the same process (e.g. `mock_aws` in unit tests) behaves exactly as stock. One module per
fidelity family, each registering its patches (patching.py) and its timers (lifecycle.py):

- idempotency.py    rule 1: ClientToken idempotency
- nat.py            rules 2, 3, 10: NAT gateways and Elastic IPs
- dependencies.py   rules 4 to 8: dependency checks on delete
- endpoints.py      rules 9, 13, 36: VPC endpoint lifecycle, Databricks PrivateLink services and acceptance, ResetPolicy
- s3.py             rule 11: S3 requests arrive over TLS
- lifecycle.py      rule 12: lingering network interfaces, and the lazy state machine itself
- transit.py        rule 14: transit gateways
- network_firewall  rule 15: AWS Network Firewall (its own rules, strict rule order among them); evaluate.py, used
                    by tests only, says whether a live policy passes or drops a flow
- iam.py            a role's inline policies are capped at 10,240 characters (LimitExceeded)
- kms.py            key policies name only principals that exist (and have propagated), the 7-30 day deletion
                    window, PendingDeletion, rotation only on enabled keys
- guardrails.py     rules 20 to 28: one GuardDuty detector and one Config recorder per account-region, Config's
                    delivery checks, Budgets' tags and updates, AWS managed IAM policies
- flowlogs.py       rules 30 to 35: flow-log delivery roles, log-group retention and KMS keys, network ACLs
- secretsmanager.py nothing patched: only its inventory listing

Each family also declares the resource kinds it lists for the inventory (listing.py, `@lists`), which
app/inventory.py composes into the ground truth the tests and scripts/crash_matrix.py check for leaks.

IAM propagation (a new role cannot be assumed or named yet, for `iam_propagation_seconds`) is checked where
a service would meet it: the Databricks emulator's credentials, KMS key policies (kms.py) and flow-log
delivery (flowlogs.py).
"""

from provision.clouds.aws.sandbox.app import SandboxAWSApp, make_aws_app
from provision.clouds.aws.sandbox.endpoints import (
    accept_vpc_endpoint,
    databricks_service_kind,
    set_endpoint_acceptance_policy,
    vpc_endpoint_snapshot,
)
from provision.clouds.aws.sandbox.patching import PatchContractError

__all__ = [
    "PatchContractError",
    "SandboxAWSApp",
    "accept_vpc_endpoint",
    "databricks_service_kind",
    "make_aws_app",
    "set_endpoint_acceptance_policy",
    "vpc_endpoint_snapshot",
]
