"""The sandbox listing (provision/app/inventory.py) and what each example is expected to build."""

from __future__ import annotations

from collections import Counter

from provision.app.inventory import counts, inventory, untagged  # noqa: F401  (re-exported for the tests)

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

# The privatelink example (new VPC): basic plus the endpoint subnet, its route table and security group,
# the workspace and relay endpoints and their registrations, and the private access settings.
PRIVATELINK_NEW_VPC = BASIC_SINGLE_NAT + Counter(
    {
        "subnet": 1,  # the endpoint subnet
        "route_table": 1,
        "security_group": 1,
        "vpc_endpoint": 2,  # workspace (REST API) and relay
        "databricks_vpc-endpoints": 2,
        "databricks_private-access-settings": 1,
    }
)

# The enterprise example: privatelink with a NAT gateway per zone, plus every security section: a customer-managed
# key (one for both use cases) and its Databricks registration, flow logs (log group and delivery role), a NACL on
# the private subnets, GuardDuty, AWS Config (recorder, channel, bucket, role, the guide's 8 rules) and a budget; then
# governed: the catalog bucket, its storage credential, UC role and external location, a second group, the service
# principal's OAuth secret (in Secrets Manager), and the guide's three cluster policies.
# What the governance sections of the enterprise and serverless examples make alike: the region's metastore (when
# the account had none) assigned to the workspace, a catalog with three schemas, one service principal, one group,
# their workspace permissions and the deploying principal's ADMIN, a network policy bound to the workspace.
GOVERNED = Counter(
    {
        "databricks_metastores": 1,
        "databricks_metastore-assignments": 1,
        "databricks_catalogs": 1,
        "databricks_schemas": 3,
        "databricks_service-principals": 1,
        "databricks_groups": 1,
        "databricks_permission-assignments": 3,
        "databricks_network-policies": 1,
        "databricks_workspace-network-options": 1,
    }
)

# The serverless example: a serverless workspace and the governance above; no AWS resource at all.
SERVERLESS = GOVERNED + Counter({"databricks_workspaces": 1})

ENTERPRISE = PRIVATELINK_NEW_VPC + Counter(
    {
        "nat_gateway": 1,
        "elastic_ip": 1,
        "route_table": 1,  # a private route table per NAT gateway
        "kms_key": 1,
        "kms_alias": 1,
        "databricks_customer-managed-keys": 1,
        "flow_log": 1,
        "log_group": 1,
        "network_acl": 1,
        "iam_role": 3,  # flow-log delivery, AWS Config, and the Unity Catalog role
        "bucket": 2,  # AWS Config's delivery bucket and the catalog bucket
        "guardduty_detector": 1,
        "config_recorder": 1,
        "delivery_channel": 1,
        "config_rule": 8,
        "budget": 1,
    }
) + GOVERNED + Counter({"secret": 1, "databricks_service-principal-secrets": 1, "databricks_cluster-policies": 3,
                        "databricks_external-locations": 1, "databricks_storage-credentials": 1, "databricks_groups": 1,
                        "databricks_permission-assignments": 1})

# The hub-spoke example: a hub VPC (firewall, NAT, TGW) and two spokes, each with a workspace and a token.
HUB_SPOKE_TWO_SPOKES = Counter(
    {
        "vpc": 3,
        "subnet": 14,
        "internet_gateway": 1,
        "nat_gateway": 1,
        "elastic_ip": 1,
        "route_table": 7,
        "security_group": 2,
        "vpc_endpoint": 6,
        "transit_gateway": 1,
        "tgw_attachment": 3,
        "tgw_route_table": 2,
        "firewall": 1,
        "firewall_policy": 1,
        "rule_group": 4,
        "secret": 2,
        "bucket": 2,
        "iam_role": 1,
        "databricks_credentials": 2,
        "databricks_storage-configurations": 2,
        "databricks_networks": 2,
        "databricks_workspaces": 2,
        "databricks_tokens": 2,
    }
)

# The azure-privatelink example: resource group (plus the workspace's managed one, Azure Databricks' own), VNet,
# three subnets, NSG, workspace, the databricks_ui_api endpoint and its DNS zone group, the zone and its link.
AZURE_PRIVATELINK = Counter(
    {
        "azure_resource_groups": 2,
        "azure_virtual_networks": 1,
        "azure_subnets": 3,
        "azure_network_security_groups": 1,
        "azure_workspaces": 1,
        "azure_private_endpoints": 1,
        "azure_private_dns_zones": 1,
        "azure_virtual_network_links": 1,
        "azure_private_dns_zone_groups": 1,
    }
)
