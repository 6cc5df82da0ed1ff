"""AWS half of the sandbox cloud: moto's server plus the fidelity moto 5.2.5 lacks, so teardown ordering
and idempotency bugs fail here exactly as they would on real AWS.

The rules apply only to requests that come through an app made by `make_aws_app`; moto used any other
way in the same process (e.g. `mock_aws` in unit tests) behaves exactly as stock. One module per
fidelity family, each registering its patches (patching.py) and its timers (lifecycle.py):

- idempotency.py    rule 1: ClientToken idempotency
- nat.py            rules 2, 3, 10: NAT gateways and Elastic IPs
- dependencies.py   rules 4 to 8: dependency checks on delete
- endpoints.py      rules 9, 13: VPC endpoint lifecycle, Databricks PrivateLink services and acceptance
- s3.py             rule 11: S3 requests arrive over TLS
- lifecycle.py      rule 12: lingering network interfaces, and the lazy state machine itself
- transit.py        rule 14: transit gateways
- network_firewall  rule 15: AWS Network Firewall (its own rules)
- iam.py, secretsmanager.py   nothing patched: only their inventory listings

Each family also declares the resource kinds it lists for the inventory (listing.py, `@lists`), which
app/inventory.py composes into the ground truth the tests and scripts/crash_matrix.py check for leaks.

IAM propagation is the Databricks emulator's rule (a new role cannot be assumed yet): there is nothing
to patch on the AWS side for it.
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
