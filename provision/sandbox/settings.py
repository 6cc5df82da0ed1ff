"""Knobs of the local cloud. One mutable instance is shared by every app in the daemon and read at
request time, so tests can change a delay with POST /_sandbox/config without restarting anything."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from dataclasses import dataclass, field

from provision.sandbox.journal import Journal

# The sandbox's own Databricks account and its fixed local token. The token only opens the local
# emulator on 127.0.0.1, which is why `provision sandbox status` may print it.
SANDBOX_ACCOUNT_ID = "5a4db0c5-0000-4000-8000-00000000000a"
SANDBOX_TOKEN = "dapi-sandbox-local-token"
# moto's default AWS account.
SANDBOX_AWS_ACCOUNT_ID = "123456789012"
# The ARM emulator's only subscription, its tenant and its fixed local bearer token (like the Databricks
# token, it opens only the emulator on 127.0.0.1).
SANDBOX_AZURE_SUBSCRIPTION_ID = "5a4db0c5-0000-4000-8000-0000000000a2"
SANDBOX_AZURE_TENANT_ID = "5a4db0c5-0000-4000-8000-0000000000a3"
SANDBOX_AZURE_TOKEN = "azure-sandbox-local-token"
# Databricks' own AWS account, the principal a cross-account role must trust.
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID  # noqa: E402,F401  (re-exported for the emulator)

_RATES = frozenset({"fault_rate", "lost_response_rate", "latency_jitter"})
# What a refused call looks like (faults.py renders each in the service's own error shape).
REFUSAL_KINDS = ("access_denied", "invalid_parameter", "quota_exceeded")
_INTEGERS = frozenset({"fault_seed"})


@dataclass
class SandboxSettings:
    account_id: str = SANDBOX_ACCOUNT_ID
    token: str = SANDBOX_TOKEN
    # Databricks emulator
    workspace_provisioning_seconds: float = 2.0
    iam_propagation_seconds: float = 2.0
    # A workspace's own API answers "no worker environments" for this long after it turns RUNNING, and its
    # permission-assignment API refuses for this long after a metastore is assigned to it (identity
    # federation switching on).
    workspace_warmup_seconds: float = 1.0
    identity_federation_seconds: float = 1.0
    # AWS fidelity
    nat_gateway_pending_seconds: float = 1.0
    nat_gateway_deleting_seconds: float = 1.0
    vpc_endpoint_pending_seconds: float = 0.5
    # How long the network interfaces of a deleted NAT gateway / interface VPC endpoint linger.
    eni_release_seconds: float = 0.3
    # Number of upcoming NAT gateway creations that end `failed` (decremented by each creation),
    # and how long a failed NAT gateway stays listed as `failed` before it becomes `deleted`.
    nat_gateway_fail_next: float = 0.0
    nat_gateway_failed_seconds: float = 2.0
    # Network Firewall: PROVISIONING -> READY, and DELETING -> gone (clouds/aws/sandbox/network_firewall).
    firewall_provisioning_seconds: float = 1.0
    firewall_deleting_seconds: float = 1.0
    # Transit gateways: pending -> available and deleting -> deleted; VPC attachments likewise.
    tgw_pending_seconds: float = 0.5
    tgw_attachment_pending_seconds: float = 0.5
    # ARM emulator (clouds/azure/sandbox): its subscription and token (read-only), and how long each
    # long-running operation takes: a workspace Accepted -> Succeeded and Deleting -> gone; a VNet, subnet,
    # NSG, private DNS zone or VNet link PUT/DELETE; a private endpoint or DNS zone group; a resource group
    # deletion (with everything in it); and every ARM call's own latency.
    azure_subscription_id: str = SANDBOX_AZURE_SUBSCRIPTION_ID
    azure_token: str = SANDBOX_AZURE_TOKEN
    azure_workspace_provisioning_seconds: float = 2.0
    azure_workspace_deleting_seconds: float = 1.0
    azure_resource_seconds: float = 0.2
    azure_endpoint_seconds: float = 0.5
    azure_resource_group_deleting_seconds: float = 0.3
    azure_call_seconds: float = 0.0
    # Fault injection (faults.py), all off by default: the fraction of requests failed before the backend
    # (throttling, 500, dropped connection; Databricks 429/503), the fraction of mutating requests applied
    # but answered with a 503 or a dropped connection, and the seed of the one RNG deciding both.
    fault_rate: float = 0.0
    lost_response_rate: float = 0.0
    fault_seed: int = 0
    # Latency (latency.py): each resource's delay above is drawn once, per resource, from
    # delay x (1 +/- latency_jitter) with the seeded hash of its id; every API call first waits
    # aws_call_seconds / databricks_call_seconds (jittered the same way). time_scale is what a latency
    # profile was multiplied by: clients read it to scale their poll and backoff intervals alike.
    latency_jitter: float = 0.0
    aws_call_seconds: float = 0.0
    databricks_call_seconds: float = 0.0
    time_scale: float = 0.0
    # Rate limits (ratelimit.py), off by default. The Databricks Account API: a token bucket per account of
    # databricks_rate_burst requests (0: one second's worth) refilled at databricks_rate_limit a second (0: off);
    # beyond it 429 REQUEST_LIMIT_EXCEEDED with Retry-After. EC2: AWS's documented bucket per action
    # (provision/rate_limits.py), refill rates times ec2_rate_scale (0: off; 1: AWS's own) and capacities times
    # ec2_bucket_scale; beyond it 503 RequestLimitExceeded. A latency profile divides both rates by its time scale.
    databricks_rate_limit: float = 0.0
    databricks_rate_burst: float = 0.0
    ec2_rate_scale: float = 0.0
    ec2_bucket_scale: float = 1.0
    # Terminal refusals: operation -> one of REFUSAL_KINDS, refused on every call until removed. An operation
    # is an AWS action ("CreateNatGateway", "CreateRole", "CreateFirewall", "CreateBucket" for S3's PUT
    # bucket) or a Databricks "<collection>.<create|update|delete>" ("workspaces.create").
    refuse: dict = field(default_factory=dict)
    # OAuth service principals the emulator accepts (oauth.py): client_id -> SHA-256 hex of its secret.
    oauth_clients: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # Every delay drawn and every call's latency (journal.py; GET /_sandbox/journal).
    journal: Journal = field(default_factory=Journal, repr=False, compare=False)

    def delay(self, name: str, key: str) -> float:
        """The delay setting `name` for the resource `key`: fixed without jitter; with it, drawn once per
        resource (a seeded hash of the key, so a resource's ready time never moves between reads)."""
        base = float(getattr(self, name))
        if self.latency_jitter and key:
            draw = int(hashlib.sha256(f"{self.fault_seed}/{name}/{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            base *= 1 + self.latency_jitter * (2 * draw - 1)
        self.journal.delay(name, key, base)
        return base

    def public_fields(self) -> dict:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_") and f.name != "journal"}
        return {**fields, "refuse": dict(self.refuse), "oauth_clients": dict(self.oauth_clients)}

    def update(self, values: dict) -> dict:
        """Apply known numeric fields; raises ValueError naming an unknown or bad field."""
        known = {f.name: f for f in dataclasses.fields(self) if not f.name.startswith("_") and f.name != "journal"}
        with self._lock:
            for key, value in values.items():
                if key not in known or key in ("account_id", "token", "azure_subscription_id", "azure_token"):
                    raise ValueError(f"unknown or read-only sandbox setting: {key}")
                if key == "refuse":
                    self.refuse = _refusals(value)
                    continue
                if key == "oauth_clients":
                    self.oauth_clients = _oauth_clients(value)
                    continue
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"sandbox setting {key} must be a number >= 0")
                if key in _RATES and value > 1:
                    raise ValueError(f"sandbox setting {key} must be between 0 and 1")
                if key in _INTEGERS:
                    if value != int(value):
                        raise ValueError(f"sandbox setting {key} must be an integer")
                    setattr(self, key, int(value))
                else:
                    setattr(self, key, float(value))
        return self.public_fields()


def _refusals(value: object) -> dict:
    if not isinstance(value, dict):
        raise ValueError("sandbox setting refuse must be an object of operation -> kind")
    for operation, kind in value.items():
        if not isinstance(operation, str) or not operation:
            raise ValueError("sandbox setting refuse: operations must be non-empty strings")
        if kind not in REFUSAL_KINDS:
            raise ValueError(f"sandbox setting refuse.{operation} must be one of {', '.join(REFUSAL_KINDS)}")
    return dict(value)


def _oauth_clients(value: object) -> dict:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for k, v in value.items()
    ):
        raise ValueError("sandbox setting oauth_clients must map client ids to the SHA-256 hex digest of their secrets")
    return dict(value)
