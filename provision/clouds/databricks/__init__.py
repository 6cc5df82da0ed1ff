"""Databricks' Account API and workspace API (credentials, storage, networks, workspaces, tokens), and
the emulator of both that the sandbox serves."""

from __future__ import annotations

from typing import Any

from provision.clouds.base import Cloud
from provision.clouds.databricks.errors import ERRORS


def _clients(spec: Any, target: Any, stats: Any, on_call: Any) -> Any:
    from provision.clouds.databricks.clients import DatabricksClients

    dbx = spec.databricks
    return DatabricksClients(account_id=dbx.account_id, host=dbx.host, profile=dbx.profile, target=target, stats=stats, on_call=on_call)


def _check_credentials(spec: Any, clients: Any, call: Any) -> str:
    from provision.clouds.databricks import credentials

    return credentials.check(spec, clients, call)


CLOUD = Cloud("databricks", ERRORS, _clients, check_credentials=_check_credentials)
