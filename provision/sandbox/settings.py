"""Knobs of the local cloud. One mutable instance is shared by every app in the daemon and read at
request time, so tests can change a delay with POST /_sandbox/config without restarting anything."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

# The sandbox's own Databricks account and its fixed local token. The token only opens the local
# emulator on 127.0.0.1, which is why `provision sandbox status` may print it.
SANDBOX_ACCOUNT_ID = "5a4db0c5-0000-4000-8000-00000000000a"
SANDBOX_TOKEN = "dapi-sandbox-local-token"
# moto's default AWS account.
SANDBOX_AWS_ACCOUNT_ID = "123456789012"
# Databricks' own AWS account, the principal a cross-account role must trust.
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID  # noqa: E402,F401  (re-exported for the emulator)

_RATES = frozenset({"fault_rate", "lost_response_rate"})
_INTEGERS = frozenset({"fault_seed"})


@dataclass
class SandboxSettings:
    account_id: str = SANDBOX_ACCOUNT_ID
    token: str = SANDBOX_TOKEN
    # Databricks emulator
    workspace_provisioning_seconds: float = 2.0
    iam_propagation_seconds: float = 2.0
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
    # Network Firewall: PROVISIONING -> READY, and DELETING -> gone (network_firewall.py).
    firewall_provisioning_seconds: float = 1.0
    firewall_deleting_seconds: float = 1.0
    # Transit gateways: pending -> available and deleting -> deleted; VPC attachments likewise.
    tgw_pending_seconds: float = 0.5
    tgw_attachment_pending_seconds: float = 0.5
    # Fault injection (faults.py), all off by default: the fraction of requests failed before the backend
    # (throttling, 500, dropped connection; Databricks 429/503), the fraction of mutating requests applied
    # but answered with a 503 or a dropped connection, and the seed of the one RNG deciding both.
    fault_rate: float = 0.0
    lost_response_rate: float = 0.0
    fault_seed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def public_fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}

    def update(self, values: dict) -> dict:
        """Apply known numeric fields; raises ValueError naming an unknown or bad field."""
        known = {f.name: f for f in dataclasses.fields(self) if not f.name.startswith("_")}
        with self._lock:
            for key, value in values.items():
                if key not in known or key in ("account_id", "token"):
                    raise ValueError(f"unknown or read-only sandbox setting: {key}")
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
