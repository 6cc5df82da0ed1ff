"""databricks-sdk clients for one run: the Account API and each workspace's own REST API.

databricks.sdk is imported lazily (it takes about a second), so `provision --help` never loads it. The
SDK's retries are off and every call is counted, through `sdk_adapter`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from provision.clouds.databricks.sdk_adapter import count_calls, no_resends
from provision.orchestrator.clients import CallStats, OnCall, Target

ACCOUNTS_HOST = "https://accounts.cloud.databricks.com"


class DatabricksClients:
    def __init__(
        self, *, account_id: str, host: str | None, profile: str | None, target: Target, stats: CallStats,
        on_call: OnCall | None = None,
    ):
        self.account_id = account_id
        self.host = host
        self.profile = profile
        self.target = target
        self.stats = stats
        self._on_call = on_call
        self._account: Any = None
        self._workspaces: dict[str, Any] = {}
        self._lock = threading.RLock()

    @property
    def account(self) -> Any:
        with self._lock:
            if self._account is None:
                from databricks.sdk import AccountClient
                from databricks.sdk.config import Config

                if self.target.is_sandbox:
                    config = Config(
                        host=self.target.endpoint("databricks"), account_id=self.account_id, **self._sandbox_auth(),
                        # A dead local host must fail in seconds, not after the SDK's default 300 s.
                        retry_timeout_seconds=15, http_timeout_seconds=10,
                    )
                else:
                    host = self.host or (None if self.profile else ACCOUNTS_HOST)
                    config = Config(host=host, account_id=self.account_id, profile=self.profile, retry_timeout_seconds=60)
                account = AccountClient(config=config)
                self._adapt(account.api_client)
                self._account = account
            return self._account

    def workspace(self, deployment_name: str) -> Any:
        """A client of one workspace's own REST API, with the same credentials as the account client."""
        with self._lock:
            client = self._workspaces.get(deployment_name)
            if client is None:
                from databricks.sdk import WorkspaceClient
                from databricks.sdk.config import Config

                if self.target.is_sandbox:
                    # The emulator serves each workspace under /workspaces/<deployment name>.
                    config = Config(
                        host=f"{self.target.endpoint('databricks')}/workspaces/{deployment_name}", **self._sandbox_auth(),
                        retry_timeout_seconds=15, http_timeout_seconds=10,
                    )
                else:
                    config = Config(host=workspace_url(deployment_name), profile=self.profile, retry_timeout_seconds=60)
                client = self._workspaces[deployment_name] = WorkspaceClient(config=config)
                self._adapt(client.api_client)
            return client

    def _adapt(self, api_client: Any) -> None:
        no_resends(api_client)
        count_calls(api_client, self.stats, self._on_call)

    @property
    def signs_in_with_sandbox_token(self) -> bool:
        """A sandbox run on the sandbox's own fixed token, which the daemon handed out as it started: nothing to check."""
        return self.target.is_sandbox and self._sandbox_auth()["auth_type"] == "pat"

    def _sandbox_auth(self) -> dict[str, Any]:
        """A service principal from DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET that the sandbox knows signs in
        with OAuth M2M, as it would against Databricks. Any other run uses the sandbox's own local token: a user's
        real principal in the environment must not break `up --sandbox`."""
        client_id, secret = os.environ.get("DATABRICKS_CLIENT_ID"), os.environ.get("DATABRICKS_CLIENT_SECRET")
        if client_id and secret and client_id in self.target.oauth_client_ids:
            return {"client_id": client_id, "client_secret": secret, "auth_type": "oauth-m2m"}
        return {"token": self.target.token("databricks"), "auth_type": "pat"}


def workspace_url(deployment_name: str) -> str:
    """A Databricks-on-AWS workspace's URL, from its deployment name."""
    return f"https://{deployment_name}.cloud.databricks.com"
