"""The official Azure SDK clients for one run: real ARM with azure-identity's default chain, or the sandbox's
ARM emulator on 127.0.0.1 with its fixed local token.

Imported lazily (azure-* loads only when a step first asks for a client), so `provision --help` loads no SDK.
azure-core's own retries are off (our one classifier retries), the SDK's 30 s poll interval is never used
(steps start a long-running operation with `polling=False` and wait with our own poll policy), and a
pipeline policy counts and times every call.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from provision.errors import CredentialsError
from provision.orchestrator.clients import CallStats, OnCall, Target

ARM_ENDPOINT = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
SIGN_IN_HELP = (
    "sign in to Azure first: `az login` (and `az account set --subscription <id>`), or set AZURE_CLIENT_ID, "
    "AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) for a service principal, or run "
    "where a managed identity is assigned; AZURE_TOKEN_CREDENTIALS narrows which of these are tried"
)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StaticToken:
    """A TokenCredential for the sandbox's fixed local token (it opens only the emulator on 127.0.0.1)."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + 3600)


def _policies() -> tuple[type, type]:
    """The two pipeline policies, made on first use so azure-core is imported only then."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

    class LoopbackBearerPolicy(ARMChallengeAuthenticationPolicy):
        """ARM's bearer-token policy, which refuses to send a token over plain HTTP; here it may, to a
        loopback address only (the sandbox). Every other URL keeps azure-core's https check."""

        def on_request(self, request: Any) -> Any:
            if is_loopback(request.http_request.url):
                request.context["enforce_https"] = False
            return super().on_request(request)

    class CallCounter(SansIOHTTPPolicy):
        """Counts and times every HTTP call into CallStats, named `<METHOD> <resource type>`."""

        def __init__(self, service: str, stats: CallStats, on_call: OnCall | None):
            self._service, self._stats, self._on_call = service, stats, on_call

        def on_request(self, request: Any) -> None:
            request.context["provision_started"] = time.monotonic()

        def on_response(self, request: Any, response: Any) -> None:
            operation = f"{request.http_request.method} {operation_type(request.http_request.url)}"
            began = request.context.get("provision_started")
            self._stats.add(self._service, operation)
            if self._on_call:
                self._on_call(self._service, operation, time.monotonic() - began if began else 0.0, response.http_response.status_code)

    return LoopbackBearerPolicy, CallCounter


def operation_type(url: str) -> str:
    """The resource type a URL addresses, for call counts: ".../virtualNetworks/v/subnets/s" -> "subnets"."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if "providers" in parts:
        after = parts[parts.index("providers") + 2:] if len(parts) > parts.index("providers") + 1 else []
        types = after[0::2]
        return "/".join(types) if types else parts[-1]
    if parts and parts[-1].lower() == "resources":
        return "resources"
    return "resourceGroups" if "resourcegroups" in (p.lower() for p in parts) else (parts[-1] if parts else "")


class AzureClients:
    """One client per Azure SDK for the run's subscription, made on first use and shared by every step."""

    def __init__(self, *, subscription_id: str, target: Target, stats: CallStats, on_call: OnCall | None = None):
        self.subscription_id = subscription_id
        self.target = target
        self.stats = stats
        self._on_call = on_call
        self._credential: Any = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.RLock()

    @property
    def base_url(self) -> str:
        return self.target.endpoint("azure") or ARM_ENDPOINT

    @property
    def credential(self) -> Any:
        with self._lock:
            if self._credential is None:
                if self.target.is_sandbox:
                    # The sandbox's own token: a sandbox run never signs with, or leaks, a user's credential.
                    self._credential = StaticToken(self.target.token("azure") or "")
                else:
                    from azure.identity import DefaultAzureCredential

                    self._credential = DefaultAzureCredential()
            return self._credential

    def check_credentials(self) -> None:
        """Raise CredentialsError, saying how to sign in, unless a token for ARM can be had."""
        if self.target.is_sandbox:
            return
        import logging

        from azure.core.exceptions import ClientAuthenticationError

        # azure-identity logs its own multi-line warning; the error below says it once, with what to do.
        identity_log = logging.getLogger("azure.identity")
        level = identity_log.level
        identity_log.setLevel(logging.CRITICAL)
        try:
            self.credential.get_token(ARM_SCOPE)
        except ClientAuthenticationError as exc:
            tried = [line.strip() for line in str(exc).splitlines() if line.startswith("\t")]
            detail = "; ".join(tried) if tried else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CredentialsError("azure", f"no Azure credentials found ({detail}); {SIGN_IN_HELP}") from None
        finally:
            identity_log.setLevel(level)

    def _make(self, name: str) -> Any:
        from azure.core.pipeline.policies import RetryPolicy

        bearer, counter = _policies()
        options = dict(
            base_url=self.base_url,
            retry_policy=RetryPolicy.no_retries(),
            authentication_policy=bearer(self.credential, ARM_SCOPE),
            custom_hook_policy=counter(f"azure.{name}", self.stats, self._on_call),
            connection_timeout=10,
            read_timeout=60,
            # Only for callers that use the SDK's own pollers (tests, a user's script): steps poll with our
            # policy. The SDK's default of 30 s between polls when ARM sends no Retry-After is far too slow.
            polling_interval=0.05 if self.target.is_sandbox else 2,
        )
        if name == "resource":
            from azure.mgmt.resource.resources import ResourceManagementClient

            return ResourceManagementClient(self.credential, self.subscription_id, **options)
        if name == "network":
            from azure.mgmt.network import NetworkManagementClient

            return NetworkManagementClient(self.credential, self.subscription_id, **options)
        if name == "dns":
            from azure.mgmt.privatedns import PrivateDnsManagementClient

            return PrivateDnsManagementClient(self.credential, self.subscription_id, **options)
        if name == "databricks":
            from azure.mgmt.databricks import AzureDatabricksManagementClient

            return AzureDatabricksManagementClient(self.credential, self.subscription_id, **options)
        raise KeyError(name)

    def client(self, name: str) -> Any:
        """"resource", "network", "dns" or "databricks"."""
        client = self._clients.get(name)
        if client is None:
            with self._lock:
                client = self._clients.get(name)
                if client is None:
                    client = self._clients[name] = self._make(name)
        return client

    @property
    def resource(self) -> Any:
        return self.client("resource")

    @property
    def network(self) -> Any:
        return self.client("network")

    @property
    def dns(self) -> Any:
        return self.client("dns")

    @property
    def databricks(self) -> Any:
        return self.client("databricks")
