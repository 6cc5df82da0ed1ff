"""Where the run's API clients come from: real AWS and Databricks, or the local sandbox.

boto3 and databricks.sdk are imported here, lazily, so `provision --help` never loads them. botocore's own
retries are off: every retry goes through our one classifier (orchestrator/retry.py), where it is logged
with its reason and where a retried create re-reads before creating again.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

READ_PREFIXES = ("Describe", "Get", "List", "Head", "Search")
ACCOUNTS_HOST = "https://accounts.cloud.databricks.com"


@dataclass(frozen=True)
class Target:
    """`aws` uses the default credential chains; `sandbox` points every client at 127.0.0.1."""

    kind: str  # "aws" or "sandbox"
    aws_endpoint_url: str | None = None
    databricks_host: str | None = None
    databricks_token: str | None = field(default=None, repr=False)
    # A sandbox running a latency profile at this time scale (0: none); waits and backoff scale alike.
    time_scale: float = 0.0
    # Service principals the sandbox accepts for OAuth M2M (its `oauth_clients` setting).
    oauth_client_ids: frozenset[str] = frozenset()

    @property
    def is_sandbox(self) -> bool:
        return self.kind == "sandbox"


@dataclass
class CallStats:
    """API calls per service and operation, for logs and benchmarks."""

    calls: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, service: str, operation: str) -> None:
        with self._lock:  # steps run on several threads
            self.calls[(service, operation)] += 1

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (service, operation), count in sorted(self.calls.items()):
            kind = "reads" if operation.startswith(READ_PREFIXES) or operation.startswith("GET ") else "writes"
            out.setdefault(service, {"reads": 0, "writes": 0})[kind] += count
        return out


class Clients:
    def __init__(
        self,
        *,
        region: str,
        target: Target,
        account_id: str,
        databricks_host: str | None,
        databricks_profile: str | None,
        on_call: Callable[[str, str, float, Any], None] | None = None,
    ):
        self.region = region
        self.target = target
        self.account_id = account_id
        self.databricks_host = databricks_host
        self.databricks_profile = databricks_profile
        self.stats = CallStats()
        self._on_call = on_call
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._account: Any = None
        self._workspaces: dict[str, Any] = {}
        # Steps run on several threads: clients are shared (boto3 clients are thread-safe), but making one
        # from the session is not, so creation is serialized.
        self._lock = threading.RLock()

    # AWS ----------------------------------------------------------------------------------------
    def aws(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    client = self._clients[service] = self._make_aws(service)
        return client

    def _make_aws(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        if self._session is None:
            if self.target.is_sandbox:
                # Fixed dummy keys: a sandbox run must never sign with, or leak, a user's real credentials.
                self._session = boto3.session.Session(
                    aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=self.region
                )
            else:
                self._session = boto3.session.Session(region_name=self.region)
        # A connection per concurrent step, so parallel steps never wait on botocore's pool of 10.
        config = Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=60, max_pool_connections=64)
        client = self._session.client(service, endpoint_url=self.target.aws_endpoint_url, config=config)
        self._register_hooks(client)
        return client

    def _register_hooks(self, client: Any) -> None:
        events = client.meta.events
        def before(params: Any = None, context: Any = None, model: Any = None, **_: Any) -> None:
            if context is not None:
                context["provision_started"] = time.monotonic()

        def after(http_response: Any = None, parsed: Any = None, model: Any = None, context: Any = None, **_: Any) -> None:
            service = client.meta.service_model.service_name
            operation = model.name if model is not None else "?"
            began = (context or {}).get("provision_started")
            duration = time.monotonic() - began if began else 0.0
            self.stats.add(service, operation)
            if self._on_call:
                status = getattr(http_response, "status_code", None)
                self._on_call(service, operation, duration, status)

        events.register("before-call.*.*", before)
        events.register("after-call.*.*", after)

    # Databricks ---------------------------------------------------------------------------------
    @property
    def account(self) -> Any:
        with self._lock:
            return self._account_locked()

    def _account_locked(self) -> Any:
        if self._account is None:
            from databricks.sdk import AccountClient
            from databricks.sdk.config import Config

            if self.target.is_sandbox:
                config = Config(
                    host=self.target.databricks_host,
                    account_id=self.account_id,
                    **self._sandbox_auth(),
                    # A dead local host must fail in seconds, not after the SDK's default 300 s.
                    retry_timeout_seconds=15,
                    http_timeout_seconds=10,
                )
            else:
                host = self.databricks_host or (None if self.databricks_profile else ACCOUNTS_HOST)
                config = Config(host=host, account_id=self.account_id, profile=self.databricks_profile, retry_timeout_seconds=60)
            account = AccountClient(config=config)
            self._hook_databricks(account.api_client)
            self._account = account
        return self._account

    def workspace(self, deployment_name: str) -> Any:
        """A client of one workspace's own REST API, with the same credentials as the account client."""
        with self._lock:
            return self._workspace_locked(deployment_name)

    def _workspace_locked(self, deployment_name: str) -> Any:
        client = self._workspaces.get(deployment_name)
        if client is None:
            from databricks.sdk import WorkspaceClient
            from databricks.sdk.config import Config

            if self.target.is_sandbox:
                # The emulator serves each workspace under /workspaces/<deployment name>.
                config = Config(
                    host=f"{self.target.databricks_host}/workspaces/{deployment_name}", **self._sandbox_auth(),
                    retry_timeout_seconds=15, http_timeout_seconds=10,
                )
            else:
                config = Config(host=f"https://{deployment_name}.cloud.databricks.com", profile=self.databricks_profile, retry_timeout_seconds=60)
            client = self._workspaces[deployment_name] = WorkspaceClient(config=config)
            self._hook_databricks(client.api_client)
        return client

    def _sandbox_auth(self) -> dict[str, Any]:
        """A service principal from DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET that the sandbox knows signs in
        with OAuth M2M, as it would against Databricks. Any other run uses the sandbox's own local token: a user's
        real principal in the environment must not break `up --sandbox`."""
        client_id, secret = os.environ.get("DATABRICKS_CLIENT_ID"), os.environ.get("DATABRICKS_CLIENT_SECRET")
        if client_id and secret and client_id in self.target.oauth_client_ids:
            return {"client_id": client_id, "client_secret": secret, "auth_type": "oauth-m2m"}
        return {"token": self.target.databricks_token, "auth_type": "pat"}

    def _hook_databricks(self, api_client: Any) -> None:
        """Count and log every Account API call, as the botocore hooks do for AWS. And stop the SDK from
        re-sending a request after a connection error or timeout: a POST whose response was lost would be
        created twice. Our retry policy re-reads by name before creating again."""
        base = getattr(api_client, "_api_client", None)
        if base is not None and hasattr(base, "_is_retryable"):
            base._is_retryable = lambda err: None
            perform = base._perform

            def perform_once(method: str, *args: Any, **kwargs: Any) -> Any:
                try:
                    return perform(method, *args, **kwargs)
                except Exception as exc:
                    # The SDK re-sends any request whose error carries Retry-After (429/503). A 503 on a
                    # create may come after the create happened; our retry re-reads by name first instead.
                    if method.upper() != "GET" and getattr(exc, "retry_after_secs", None) is not None:
                        exc.retry_after_secs = None
                    raise

            base._perform = perform_once
        do = api_client.do

        def counted(method: str, path: str | None = None, *args: Any, **kwargs: Any) -> Any:
            # /api/2.0/accounts/<id>/workspaces/123 -> "GET workspaces"; /api/2.0/token/create -> "POST token/create"
            if "/accounts/" in (path or ""):
                parts = path.split("/accounts/", 1)[1].split("/")[1:]
                operation = f"{method} {parts[0] if parts else path}"
            else:
                operation = f"{method} {(path or '').split('/api/2.0/', 1)[-1]}"
            began = time.monotonic()
            status: Any = None
            try:
                result = do(method, path, *args, **kwargs)
                status = 200
                return result
            except Exception as exc:
                status = getattr(getattr(exc, "_response", None), "status_code", type(exc).__name__)
                raise
            finally:
                self.stats.add("databricks", operation)
                if self._on_call:
                    self._on_call("databricks", operation, time.monotonic() - began, status)

        api_client.do = counted
