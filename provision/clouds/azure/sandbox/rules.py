"""Named fidelity rules: every refusal (and the one side effect) of the ARM emulator that a lenient fake
would skip. Handlers ask `enforced(name)`; tests prove each rule matters by running the same call inside
`disabled(name)`, where it must be accepted.

Each rule names the ARM error it produces; tests/sandbox/test_azure_fidelity.py has one test per rule, and
docs of where each code and wording comes from are in the module docstrings of the family that raises it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

RULES: dict[str, str] = {
    # resources.py
    "rg-put-while-deleting": "409 ResourceGroupBeingDeleted: nothing can be created in a group being deleted",
    "rg-location-immutable": "409 InvalidResourceGroupLocation: a group's location cannot change",
    "rg-delete-blocked-by-external-use": "ResourceGroupDeletionBlocked: what another group still uses stays",
    "managed-rg-deny-assignment": "403 DenyAssignmentAuthorizationFailed on a workspace's managed group",
    # network.py
    "address-prefix-format": "400 InvalidAddressPrefixFormat: prefixes must be CIDR",
    "address-prefix-host-bits": "400 InvalidCIDRNotation: a prefix with host bits set",
    "subnet-inside-vnet": "400 NetcfgSubnetRangeOutsideVnet",
    "subnets-no-overlap": "400 NetcfgSubnetRangesOverlap",
    "subnet-minimum-size": "400 NetcfgInvalidSubnet: smaller than /29",
    "subnet-nsg-must-exist": "400 InvalidResourceReference for a missing NSG",
    "delegation-service-name": "400 InvalidServiceNameOnDelegation",
    "delegation-change-in-use": "400 SubnetDelegationsCannotChangeWhenSubnetUsedByResource",
    "in-use-subnet-delete": "400 InUseSubnetCannotBeDeleted (subnet DELETE, VNet DELETE, VNet PUT dropping it)",
    "nsg-removal-blocked-by-nip": "400 NetworkSecurityGroupCannotBeRemovedDueToNipOnSubnet",
    "in-use-nsg-delete": "400 InUseNetworkSecurityGroupCannotBeDeleted",
    "nsg-rule-validation": "400 SecurityRuleParametersMissing / InvalidPortRange / InvalidPriority / Conflict",
    "nsg-keeps-databricks-rules": "400 ConflictWithNetworkIntentPolicy: a workspace's NSG rules must stay",
    "one-operation-at-a-time": "409 AnotherOperationInProgress on a network resource with a pending operation",
    # endpoints.py
    "pe-subnet-must-exist": "400 InvalidResourceReference for a missing subnet",
    "pe-reference-provisioned": "429 RetryableError / ReferencedResourceNotProvisioned: the subnet is still Updating",
    "pe-not-in-delegated-subnet": "400 PrivateEndpointCreationNotAllowedAsSubnetIsDelegated",
    "pe-target-must-exist": "400 InvalidResourceReference for a missing private link resource",
    "pe-one-group-id": "400 OnlyOneGroupIdPermitted",
    "pe-group-id-valid": "400 PrivateEndpointConnectionProvisioningFailed: not databricks_ui_api/browser_authentication",
    "pe-workspace-premium": "400 PrivateEndpointConnectionProvisioningFailed: Private Link needs a premium workspace",
    "pe-workspace-not-busy": "409 ConcurrentUpdateError: the workspace (or another connection) is in progress",
    "zone-group-zone-must-exist": "400 InvalidResourceReference for a missing private DNS zone",
    # dns.py
    "dns-zone-location-global": "400 LocationNotAvailableForResourceType: private DNS zones are 'global'",
    "dns-link-vnet-must-exist": "400 BadRequest: Virtual network resource not found",
    "dns-link-once-per-vnet": "409 Conflict: a VNet links to a zone once",
    "dns-link-one-zone-per-namespace": "400 BadRequest: a VNet cannot be linked to two zones of the same name",
    "dns-zone-delete-with-links": "409 CannotDeleteResource: nested virtual network links",
    # workspaces.py
    "workspace-needs-compute-mode": "400 computeMode is required on create (api-version 2026-01-01 and later)",
    "workspace-compute-mode-immutable": "400 computeMode cannot change",
    "workspace-vnet-immutable": "400 VirtualNetworkIdChangeNotAllowed",
    "workspace-premium-for-nsg-rules": "400 NoAzureDatabricksRules needs the premium SKU",
    "workspace-premium-for-private-access": "400 publicNetworkAccess Disabled needs the premium SKU",
    "workspace-vnet-must-exist": "async Failed: the custom virtual network does not exist",
    "workspace-subnet-must-exist": "async Failed SubnetIsNotWithinVnetError (ARM's misleading answer to a wrong name)",
    "workspace-subnet-delegated": "400 SubnetMissingRequiredDelegation",
    "workspace-subnet-has-nsg": "400 the workspace subnets must have a network security group",
    "workspace-subnet-not-shared": "400 a subnet already used by another workspace",
    "workspace-managed-rg-must-not-exist": "async Failed ApplianceProvisioningFailed: managed group exists",
    "workspace-one-operation-at-a-time": "409 ConcurrentUpdateError on a workspace with a pending operation",
    "workspace-adds-nsg-rules": "(side effect) the workspace adds its Microsoft.Databricks-workspaces_UseOnly_* rules",
}

_disabled: set[str] = set()
_lock = threading.Lock()


def enforced(name: str) -> bool:
    if name not in RULES:
        raise KeyError(f"unknown ARM emulator rule {name!r}")
    return name not in _disabled


@contextlib.contextmanager
def disabled(*names: str) -> Iterator[None]:
    """Within the block the named rules are not enforced (process-wide: the emulator runs in-process)."""
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise KeyError(f"unknown ARM emulator rule(s): {', '.join(unknown)}")
    with _lock:
        added = [n for n in names if n not in _disabled]
        _disabled.update(added)
    try:
        yield
    finally:
        with _lock:
            _disabled.difference_update(added)
