"""The inventory composed from each cloud's listing declarations (provision/app/inventory.py) lists
exactly the kinds it always has, and a kind cannot be declared twice."""

from __future__ import annotations

import pytest
from sandbox_inventory import counts, inventory

import provision.clouds.aws.sandbox.listing as listing  # noqa: PLR0402
from provision.app.inventory import owned_kinds

ACCOUNT = "5a4db0c5-0000-4000-8000-00000000000b"

KINDS = [
    "vpc",
    "subnet",
    "internet_gateway",
    "nat_gateway",
    "elastic_ip",
    "route_table",
    "security_group",
    "vpc_endpoint",
    "bucket",
    "iam_role",
    "transit_gateway",
    "tgw_attachment",
    "tgw_route_table",
    "firewall",
    "firewall_policy",
    "rule_group",
    "secret",
    "kms_key",
    "kms_alias",
    "flow_log",
    "log_group",
    "network_acl",
    "guardduty_detector",
    "config_recorder",
    "delivery_channel",
    "config_rule",
    "budget",
    "databricks_credentials",
    "databricks_storage-configurations",
    "databricks_networks",
    "databricks_workspaces",
    "databricks_vpc-endpoints",
    "databricks_private-access-settings",
    "databricks_customer-managed-keys",
    "databricks_tokens",
    "databricks_metastores",
    "databricks_metastore-assignments",
    "databricks_users",
    "databricks_service-principals",
    "databricks_service-principal-secrets",
    "databricks_groups",
    "databricks_permission-assignments",
    "databricks_network-policies",
    "databricks_workspace-network-options",
    "databricks_network-connectivity-configs",
    "databricks_private-endpoint-rules",
    "databricks_cluster-policies",
    "databricks_catalogs",
    "databricks_schemas",
    "databricks_external-locations",
    "databricks_storage-credentials",
    "azure_resource_groups",
    "azure_virtual_networks",
    "azure_subnets",
    "azure_network_security_groups",
    "azure_private_endpoints",
    "azure_private_dns_zone_groups",
    "azure_private_dns_zones",
    "azure_virtual_network_links",
    "azure_workspaces",
]
OWNED = [
    "vpc", "subnet", "internet_gateway", "nat_gateway", "elastic_ip", "route_table", "security_group", "vpc_endpoint",
    "kms_key",
    "flow_log", "log_group", "network_acl",
    "guardduty_detector", "config_rule", "budget",
    # Azure: every taggable resource we create (subnets and zone groups have no tags; their parent is ours).
    "azure_resource_groups", "azure_virtual_networks", "azure_network_security_groups", "azure_private_endpoints",
    "azure_private_dns_zones", "azure_virtual_network_links", "azure_workspaces",
]


def test_composed_inventory_has_exactly_the_known_kinds(sandbox):
    found = inventory(sandbox, account_id=ACCOUNT)
    assert sorted(found) == sorted(KINDS)
    assert len(found) == len(KINDS)
    assert all(isinstance(items, list) for items in found.values())
    assert counts(found) == {}  # a fresh sandbox: the default VPC and its parts are not inventory


def test_owned_kinds_are_the_kinds_we_tag():
    assert sorted(owned_kinds()) == sorted(OWNED)


def test_a_kind_listed_twice_is_refused():
    before = listing.KINDS["vpc"]
    with pytest.raises(ValueError, match="'vpc' is listed twice"):
        listing.lists("vpc")(lambda clients: [])
    assert listing.KINDS["vpc"] is before


def test_a_new_kind_registers_once(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(listing, "KINDS", dict(listing.KINDS))
    listing.lists("test_widget", owned=True)(lambda clients: [{"id": 1}])
    assert listing.KINDS["test_widget"].listing(None) == [{"id": 1}]
    assert "test_widget" in owned_kinds()
    with pytest.raises(ValueError, match="listed twice"):
        listing.lists("test_widget")(lambda clients: [])
