"""The Azure spec: every bad field exits 2 naming it, nothing is created; without Azure credentials a real run
says how to sign in, before anything exists."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import specs
from cli_support import provision_command

from provision import topologies
from provision.errors import SpecError

EXAMPLE = "azure-privatelink"


def spec_with(**tables) -> dict:
    return specs.merged(specs.example(EXAMPLE), **tables)


def problems(data: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        topologies.from_dict(data, "spec.toml")
    return {p.field: p.reason for p in err.value.problems}


def test_example_derives_three_subnets_inside_the_vnet():
    spec = topologies.from_dict(specs.example(EXAMPLE))
    net = spec.azure.network
    assert (spec.cloud, spec.region) == ("azure", "eastus2")
    assert (net.host_subnet_cidr, net.container_subnet_cidr, net.endpoint_subnet_cidr) == ("10.60.0.0/24", "10.60.1.0/24", "10.60.2.0/26")
    assert spec.tags == {"Owner": "platform-team"}
    assert spec.azure.workspace.managed_resource_group == "managed-acme-azpl"


BAD = [
    ({"azure": {"location": "moon-east"}}, "azure.location", "not an Azure location"),
    ({"azure": {"subscription_id": "not-a-uuid"}}, "azure.subscription_id", "UUID"),
    ({"azure": {"resource_group": "bad/name"}}, "azure.resource_group", "1-90"),
    ({"azure": {"resource_group": "ends."}}, "azure.resource_group", "not ending"),
    ({"azure": {"network": {"vnet_cidr": "10.48.0.0/12"}}}, "azure.network.vnet_cidr", "/16 to /24"),
    ({"azure": {"network": {"vnet_cidr": "10.60.0.0/25"}}}, "azure.network.vnet_cidr", "/16 to /24"),
    ({"azure": {"network": {"vnet_cidr": "8.8.0.0/16"}}}, "azure.network.vnet_cidr", "private"),
    ({"azure": {"network": {"vnet_cidr": "10.60.0.1/22"}}}, "azure.network.vnet_cidr", "host bits"),
    ({"azure": {"network": {"host_subnet_size": 27}}}, "azure.network.host_subnet_size", "/26 or larger"),
    ({"azure": {"network": {"vnet_cidr": "10.60.0.0/24"}}}, "azure.network.vnet_cidr", "cannot hold"),
    ({"azure": {"network": {"host_subnet": "x"}}}, "azure.network.host_subnet", "existing_vnet_id"),
    ({"azure": {"network": {"existing_vnet_id": "/subscriptions/nope"}}}, "azure.network.existing_vnet_id", "not a VNet resource id"),
    ({"azure": {"workspace": {"sku": "standard"}}}, "azure.workspace.sku", "premium"),
    ({"azure": {"workspace": {"sku": "gold"}}}, "azure.workspace.sku", "one of"),
    ({"azure": {"workspace": {"name": "a b"}}}, "azure.workspace.name", "3-64"),
    ({"azure": {"workspace": {"managed_resource_group": "rg-acme-azpl"}}}, "azure.workspace.managed_resource_group", "differ"),
    ({"azure": {"tags": {"bad/key": "v"}}}, "azure.tags.bad/key", "cannot contain"),
    ({"azure": {"tags": {"provision:step": "v"}}}, "azure.tags.provision:step", "reserved"),
    ({"azure": {"tags": {"k": "v" * 257}}}, "azure.tags.k", "256"),
    ({"azure": {"browser_authentication": "yes"}}, "azure.browser_authentication", "true or false"),
    ({"azure": {"colour": "blue"}}, "azure.colour", "unknown field"),
    ({"region": "eastus2"}, "region", "azure.location"),
    ({"tags": {"a": "b"}}, "tags", "azure.tags"),
    ({"databricks": {"account_id": "x"}}, "databricks", "only applies"),
]


@pytest.mark.parametrize("tables,field,fragment", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_azure_spec_names_the_field(tables, field, fragment):
    found = problems(spec_with(**tables))
    assert field in found, found
    assert fragment in found[field]


def test_existing_vnet_needs_three_distinct_subnet_names():
    data = specs.example(EXAMPLE)
    data["azure"]["network"] = {
        "existing_vnet_id": "/subscriptions/5a4db0c5-0000-4000-8000-0000000000a2/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/hub",
        "host_subnet": "a", "container_subnet": "a", "endpoint_subnet": "b",
    }
    assert "three different subnets" in problems(data)["azure.network"]
    data["azure"]["network"]["existing_vnet_id"] = data["azure"]["network"]["existing_vnet_id"].replace("0000000000a2", "0000000000ff")
    data["azure"]["network"]["container_subnet"] = "c"
    assert "not azure.subscription_id" in problems(data)["azure.network.existing_vnet_id"]


def test_cli_exits_2_naming_the_field_and_creates_nothing(tmp_path: Path):
    spec = specs.write(tmp_path / "spec.toml", spec_with(azure={"network": {"host_subnet_size": 28}}))
    result = subprocess.run([*provision_command(), "up", "--config", str(spec)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "azure.network.host_subnet_size" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "provision.state.json").exists()


def test_a_real_run_without_azure_credentials_says_how_to_sign_in(tmp_path: Path):
    """No AZURE_* variables and only the environment credential tried (so no managed-identity probe leaves
    this machine): exit 2 before the state file or anything else exists."""
    spec = specs.write(tmp_path / "spec.toml", specs.example(EXAMPLE))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "ARM_", "MSI_", "IDENTITY_"))}
    env["AZURE_TOKEN_CREDENTIALS"] = "EnvironmentCredential"
    result = subprocess.run(
        [*provision_command(), "up", "--config", str(spec)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "az login" in result.stderr and "AZURE_CLIENT_ID" in result.stderr and "managed identity" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "provision.state.json").exists()
    assert not (tmp_path / "provision-logs").exists()
