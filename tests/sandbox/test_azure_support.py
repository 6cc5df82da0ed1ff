"""Shared pieces of the ARM emulator tests (test_azure_emulator.py, test_azure_fidelity.py): the emulator served
in-process with zero delays, real azure-mgmt clients for it (provision's AzureClients with the sandbox
target), a builder of the usual topology (resource group, NSG, VNet with two Databricks subnets and an
endpoints subnet, workspace, private endpoint, private DNS zone), and assertions on ARM errors. Its own tests
check the rule registry, and that every rule has a fidelity test."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from sandbox_helpers import serve

from provision.clouds.azure import sandbox as emulator
from provision.clouds.azure.clients import AzureClients
from provision.clouds.azure.sandbox import rules
from provision.orchestrator.clients import SANDBOX, CallStats, Target
from provision.sandbox.settings import SandboxSettings

POLL = 0.01  # the SDK poller's polling_interval in these tests
ZERO = {
    "azure_workspace_provisioning_seconds": 0.0,
    "azure_workspace_deleting_seconds": 0.0,
    "azure_resource_seconds": 0.0,
    "azure_endpoint_seconds": 0.0,
    "azure_resource_group_deleting_seconds": 0.0,
}
DELEGATION = [{"name": "databricks", "properties": {"serviceName": "Microsoft.Databricks/workspaces"}}]
OWN_RULES = [
    {"name": "to-aad", "properties": {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "443",
        "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": "AzureActiveDirectory", "access": "Allow",
        "priority": 100, "direction": "Outbound"}},
]


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    values = SandboxSettings()
    values.update(ZERO)
    return values


@pytest.fixture(scope="module")
def arm_url(settings: SandboxSettings) -> Iterator[str]:
    yield from serve(emulator.make_azure_app(settings))


def arm_clients(url: str, settings: SandboxSettings, token: str | None = None, subscription: str | None = None) -> AzureClients:
    target = Target(SANDBOX, {"azure": url}, {"azure": settings.azure_token if token is None else token})
    return AzureClients(subscription_id=subscription or settings.azure_subscription_id, target=target, stats=CallStats())


@pytest.fixture
def az(arm_url: str, settings: SandboxSettings) -> AzureClients:
    """Clients on a reset emulator."""
    emulator.reset()
    return arm_clients(arm_url, settings)


@pytest.fixture
def world(az: AzureClients) -> World:
    return World(az)


def refused(call: Callable[[], Any], status: int, code: str, phrase: str = "") -> HttpResponseError:
    """The call is refused at once with this HTTP status, ARM error code and a phrase of the message."""
    with pytest.raises(HttpResponseError) as info:
        call()
    error = info.value
    assert (error.status_code, error.error.code if error.error else None) == (status, code), error.message
    assert phrase in error.error.message, error.error.message
    return error


def failed(call: Callable[[], Any], code: str, phrase: str = "") -> HttpResponseError:
    """The call is accepted, and the SDK's poller reports the operation Failed with this error."""
    with pytest.raises(HttpResponseError) as info:
        call()
    error = info.value
    assert error.status_code == 200 and error.error is not None and error.error.code == code, error.message
    assert phrase in error.message, error.message
    return error


class World:
    """Builds resources through the SDKs (each LRO waited for by the SDK's own poller)."""

    def __init__(self, az: AzureClients) -> None:
        self.az = az
        self.sub = az.subscription_id

    def group_id(self, rg: str = "rg") -> str:
        return f"/subscriptions/{self.sub}/resourceGroups/{rg}"

    def rg(self, name: str = "rg", location: str = "eastus") -> dict:
        return self.az.resource.resource_groups.create_or_update(name, {"location": location}).as_dict()

    def nsg(self, name: str = "nsg", rg: str = "rg", security_rules: list | None = None) -> dict:
        body = {"location": "eastus", "properties": {"securityRules": OWN_RULES if security_rules is None else security_rules}}
        return self.az.network.network_security_groups.begin_create_or_update(rg, name, body, polling_interval=POLL).result().as_dict()

    def vnet_body(self, subnets: list[dict], prefix: str = "10.1.0.0/16") -> dict:
        return {"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": [prefix]}, "subnets": subnets}}

    def vnet(self, name: str = "vnet", rg: str = "rg", subnets: list[dict] | None = None, prefix: str = "10.1.0.0/16") -> dict:
        body = self.vnet_body(subnets or [], prefix)
        return self.az.network.virtual_networks.begin_create_or_update(rg, name, body, polling_interval=POLL).result().as_dict()

    def subnet(self, name: str, prefix: str, nsg: dict | None = None, delegated: bool = False) -> dict:
        props: dict[str, Any] = {"addressPrefix": prefix}
        if nsg:
            props["networkSecurityGroup"] = {"id": nsg["id"]}
        if delegated:
            props["delegations"] = DELEGATION
        return {"name": name, "properties": props}

    def network(self, rg: str = "rg", name: str = "vnet") -> dict:
        """The usual Databricks network: NSG, VNet with delegated public/private subnets and an endpoints subnet."""
        self.rg(rg)
        nsg = self.nsg(rg=rg)
        return self.vnet(name, rg, [
            self.subnet("public", "10.1.0.0/24", nsg, delegated=True),
            self.subnet("private", "10.1.1.0/24", nsg, delegated=True),
            self.subnet("endpoints", "10.1.2.0/24"),
        ])

    def workspace_body(self, vnet: dict | None = None, sku: str = "premium", public: str = "public", private: str = "private",
                       managed: str = "rg-managed", **props: Any) -> dict:
        properties: dict[str, Any] = {"managedResourceGroupId": self.group_id(managed), "computeMode": "Hybrid", **props}
        if vnet is not None:
            properties["parameters"] = {
                "customVirtualNetworkId": {"value": vnet["id"]},
                "customPublicSubnetName": {"value": public},
                "customPrivateSubnetName": {"value": private},
                "enableNoPublicIp": {"value": True},
            }
        return {"location": "eastus", "sku": {"name": sku}, "properties": {k: v for k, v in properties.items() if v is not None}}

    def put_workspace(self, body: dict, name: str = "ws", rg: str = "rg", **kwargs: Any) -> Any:
        return self.az.databricks.workspaces.begin_create_or_update(rg, name, body, polling_interval=POLL, **kwargs)

    def workspace(self, vnet: dict | None = None, name: str = "ws", rg: str = "rg", **body: Any) -> dict:
        return self.put_workspace(self.workspace_body(vnet, **body), name, rg).result().as_dict()

    def pe_body(self, vnet: dict, workspace: dict | str, subnet: str = "endpoints", group: Any = "databricks_ui_api") -> dict:
        target = workspace if isinstance(workspace, str) else workspace["id"]
        groups = group if isinstance(group, list) else [group]
        return {"location": "eastus", "properties": {
            "subnet": {"id": f"{vnet['id']}/subnets/{subnet}"},
            "privateLinkServiceConnections": [{"name": "conn", "properties": {"privateLinkServiceId": target, "groupIds": groups}}],
        }}

    def put_pe(self, body: dict, name: str = "pe", rg: str = "rg", **kwargs: Any) -> Any:
        return self.az.network.private_endpoints.begin_create_or_update(rg, name, body, polling_interval=POLL, **kwargs)

    def zone(self, name: str = "privatelink.azuredatabricks.net", rg: str = "rg") -> dict:
        return self.az.dns.private_zones.begin_create_or_update(rg, name, {"location": "global"}, polling_interval=POLL).result().as_dict()

    def link(self, zone: dict, vnet: dict, name: str = "link", rg: str = "rg") -> dict:
        body = {"location": "global", "properties": {"virtualNetwork": {"id": vnet["id"]}, "registrationEnabled": False}}
        return self.az.dns.virtual_network_links.begin_create_or_update(rg, zone["name"], name, body, polling_interval=POLL).result().as_dict()


# --- the rule registry ----------------------------------------------------------------------------------


def test_rules_switch_off_and_back_and_reject_unknown_names():
    assert rules.enforced("in-use-subnet-delete")
    with rules.disabled("in-use-subnet-delete", "dns-zone-delete-with-links"):
        assert not rules.enforced("in-use-subnet-delete") and not rules.enforced("dns-zone-delete-with-links")
        with rules.disabled("in-use-subnet-delete"):
            pass
        assert not rules.enforced("in-use-subnet-delete")  # an inner block does not re-enable what the outer disabled
    assert rules.enforced("in-use-subnet-delete")
    with pytest.raises(KeyError):
        rules.enforced("no-such-rule")
    with pytest.raises(KeyError), rules.disabled("no-such-rule"):
        pass


def test_every_rule_has_a_fidelity_test_that_disables_it():
    source = (Path(__file__).parent / "test_azure_fidelity.py").read_text()
    disabled = set(re.findall(r'rules\.disabled\("([a-z0-9-]+)"\)', source)) | set(re.findall(r'RULE = "([a-z0-9-]+)"', source))
    assert set(rules.RULES) - disabled == set()
    assert disabled - set(rules.RULES) == set()
