"""Azure: resource groups, VNets, NSGs, private endpoints, private DNS and Azure Databricks workspaces, all
through ARM with the official SDKs, and the sandbox's own ARM emulator."""

from __future__ import annotations

from typing import Any

from provision.clouds.azure.errors import ERRORS
from provision.clouds.azure.spec import parse_region, parse_tags
from provision.clouds.base import Cloud


def _clients(spec: Any, target: Any, stats: Any, on_call: Any) -> Any:
    from provision.clouds.azure.clients import AzureClients

    return AzureClients(subscription_id=spec.azure.subscription_id, target=target, stats=stats, on_call=on_call)


def _check_credentials(spec: Any, clients: Any, call: Any) -> str:
    clients.check_credentials()  # a CredentialsError names the sources azure-identity tried
    return f"Azure subscription {spec.azure.subscription_id}"


CLOUD = Cloud("azure", ERRORS, _clients, parse_region=parse_region, parse_tags=parse_tags, check_credentials=_check_credentials)
