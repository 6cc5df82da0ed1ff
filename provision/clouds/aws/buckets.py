"""Databricks' own regional S3 buckets that classic compute reads or writes through the S3 gateway endpoint.

Source: databricks/terraform-databricks-sra, `aws/tf/variables.tf` (`artifact_storage_bucket`,
`system_table_bucket_config`, `shared_datasets_bucket`, `log_storage_bucket_config`, commit 72a96ea),
which its restrictive S3 gateway endpoint policy (`aws/tf/privatelink.tf`) grants. The values are kept as SRA
has them, including its cross-region ones (us-west-1's artifacts and logs live in Oregon; ap-southeast-3's sample
data too). Commercial regions only, as the spec accepts.

A region Databricks runs in but SRA does not list (eu-central-2, eu-north-1, ap-northeast-3) has no entry:
an endpoint policy there would silently cut clusters off from Databricks' artifacts, so the spec refuses
`network_security.endpoint_policies` in such a region instead of guessing names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegionalBuckets:
    artifacts: tuple[str, ...]  # runtime images, libraries, init artifacts (read)
    system_tables: str  # Unity Catalog system tables (read)
    sample_data: str  # /databricks-datasets (read)
    logs: str  # cluster and service logs Databricks collects (write)


def _region(artifacts: tuple[str, ...], system_tables: str, sample_data: str, logs: str) -> RegionalBuckets:
    return RegionalBuckets(artifacts, system_tables, sample_data, logs)


def _uc(region: str) -> str:
    return f"system-tables-prod-{region}-uc-metastore-bucket"


DATABRICKS_BUCKETS: dict[str, RegionalBuckets] = {
    "ap-northeast-1": _region(("databricks-prod-artifacts-ap-northeast-1",), _uc("ap-northeast-1"), "databricks-datasets-tokyo", "databricks-prod-storage-tokyo"),
    "ap-northeast-2": _region(("databricks-prod-artifacts-ap-northeast-2",), _uc("ap-northeast-2"), "databricks-datasets-seoul", "databricks-prod-storage-seoul"),
    "ap-south-1": _region(("databricks-prod-artifacts-ap-south-1",), _uc("ap-south-1"), "databricks-datasets-mumbai", "databricks-prod-storage-mumbai"),
    "ap-southeast-1": _region(("databricks-prod-artifacts-ap-southeast-1",), _uc("ap-southeast-1"), "databricks-datasets-singapore", "databricks-prod-storage-singapore"),
    "ap-southeast-2": _region(("databricks-prod-artifacts-ap-southeast-2",), _uc("ap-southeast-2"), "databricks-datasets-sydney", "databricks-prod-storage-sydney"),
    "ap-southeast-3": _region(("databricks-prod-artifacts-ap-southeast-3",), _uc("ap-southeast-3"), "databricks-datasets-oregon", "databricks-prod-storage-jakarta"),
    "ca-central-1": _region(("databricks-prod-artifacts-ca-central-1",), _uc("ca-central-1"), "databricks-datasets-montreal", "databricks-prod-storage-montreal"),
    "eu-central-1": _region(("databricks-prod-artifacts-eu-central-1",), _uc("eu-central-1"), "databricks-datasets-frankfurt", "databricks-prod-storage-frankfurt"),
    "eu-west-1": _region(("databricks-prod-artifacts-eu-west-1",), _uc("eu-west-1"), "databricks-datasets-ireland", "databricks-prod-storage-ireland"),
    "eu-west-2": _region(("databricks-prod-artifacts-eu-west-2",), _uc("eu-west-2"), "databricks-datasets-london", "databricks-prod-storage-london"),
    "eu-west-3": _region(("databricks-prod-artifacts-eu-west-3",), _uc("eu-west-3"), "databricks-datasets-paris", "databricks-prod-storage-paris"),
    "sa-east-1": _region(("databricks-prod-artifacts-sa-east-1",), _uc("sa-east-1"), "databricks-datasets-saopaulo", "databricks-prod-storage-saopaulo"),
    "us-east-1": _region(("databricks-prod-artifacts-us-east-1",), _uc("us-east-1"), "databricks-datasets-virginia", "databricks-prod-storage-virginia"),
    "us-east-2": _region(("databricks-prod-artifacts-us-east-2",), _uc("us-east-2"), "databricks-datasets-ohio", "databricks-prod-storage-ohio"),
    "us-west-1": _region(("databricks-prod-artifacts-us-west-2",), _uc("us-west-1"), "databricks-datasets-oregon", "databricks-prod-storage-oregon"),
    "us-west-2": _region(
        ("databricks-prod-artifacts-us-west-2", "databricks-update-oregon"), _uc("us-west-2"), "databricks-datasets-oregon",
        "databricks-prod-storage-oregon",
    ),
}


def regional_buckets(region: str) -> RegionalBuckets | None:
    """Databricks' buckets for `region`, or None where no source lists them."""
    return DATABRICKS_BUCKETS.get(region)
