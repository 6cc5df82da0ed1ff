"""databricks-sdk clients for one run: the Account API and each workspace's own REST API.

databricks.sdk is imported lazily (it takes about a second), so `provision --help` never loads it. The
SDK's retries are off and every call is counted and paced, through `sdk_adapter`: Account API calls share one
bucket per account slightly under its documented rate (provision/rate_limits.py), each workspace host its own
pause on Retry-After; both process-wide (orchestrator/pacing.py).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from provision.clouds.databricks.sdk_adapter import count_calls, no_resends, pace
from provision.orchestrator import pacing
from provision.orchestrator.clients import CallStats, OnCall, Target
from provision.rate_limits import DATABRICKS_ACCOUNT

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
                self._adapt(account.api_client, account_pacer(config.host or "", self.account_id, self.target))
                self._account = account
            return self._account

    def warm(self) -> None:
        """Make the account client on a background thread: databricks-sdk takes about two seconds of CPU to import,
        which a run's first Databricks step would otherwise spend on its critical path. A failure here is the
        first step's to report (it makes the client again)."""

        def make() -> None:
            try:
                self.account  # noqa: B018 (made for its side effect)
            except Exception:  # noqa: BLE001
                pass

        threading.Thread(target=make, name="databricks-sdk-import", daemon=True).start()

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
                self._adapt(client.api_client, workspace_pacer(config.host or "", self.target))
            return client

    def _adapt(self, api_client: Any, pacer: pacing.Pacer | None) -> None:
        if pacer is not None:
            pace(api_client, pacer)  # first: it must see a 429's Retry-After before no_resends drops it
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


def _scale(target: Target) -> float | None:
    """The time scale pacing runs at: 0 (real seconds) on a real target, the sandbox's latency profile's, or None
    in a sandbox without one (no rate limits there unless a test sets some, and then retries absorb them)."""
    if not target.is_sandbox:
        return 0.0
    return target.time_scale or None


def account_pacer(host: str, account_id: str, target: Target) -> pacing.Pacer | None:
    """The process's pacer for one account's Account API: one bucket at 90 % of the documented rate."""
    scale = _scale(target)
    if scale is None:
        return None
    figures = pacing.under(DATABRICKS_ACCOUNT, time_scale=scale)
    return pacing.shared.get(
        ("databricks-account", host, account_id, scale),
        lambda: pacing.Pacer(f"databricks account {account_id}", lambda op, params: ("account", figures), log_over=1.0 * (scale or 1.0)),
    )


def workspace_pacer(host: str, target: Target) -> pacing.Pacer | None:
    """The process's pacer for one workspace host: no steady rate (its APIs' limits differ per API and we make
    few calls to each), only the pause after a 429's Retry-After."""
    scale = _scale(target)
    if scale is None:
        return None
    return pacing.shared.get(("databricks-workspace", host, scale), lambda: pacing.Pacer(f"databricks {host}", lambda op, params: None))


def workspace_url(deployment_name: str) -> str:
    """A Databricks-on-AWS workspace's URL, from its deployment name."""
    return f"https://{deployment_name}.cloud.databricks.com"
