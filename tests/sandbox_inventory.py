"""The sandbox listing (provision/sandbox/inventory.py) and what each example is expected to build."""

from __future__ import annotations

from collections import Counter

from provision.sandbox.inventory import counts, inventory, untagged  # noqa: F401  (re-exported for the tests)

# What the basic example (2 zones, one NAT) builds, resource by resource.
BASIC_SINGLE_NAT = Counter(
    {
        "vpc": 1,
        "subnet": 4,
        "internet_gateway": 1,
        "nat_gateway": 1,
        "elastic_ip": 1,
        "route_table": 2,
        "security_group": 1,
        "vpc_endpoint": 3,
        "bucket": 1,
        "iam_role": 1,
        "databricks_credentials": 1,
        "databricks_storage-configurations": 1,
        "databricks_networks": 1,
        "databricks_workspaces": 1,
    }
)
