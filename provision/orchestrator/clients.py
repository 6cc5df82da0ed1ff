"""The run's API clients, cloud-neutral: where they point (the target), what they count, and one client
set per cloud, made by that cloud's own `clients` module (`provision/clouds/<cloud>/clients.py`).

Every cloud's clients have their SDK's own retries off: each retry goes through the one classifier
(orchestrator/retry.py), where it is logged with its reason and where a retried create re-reads first.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

READ_PREFIXES = ("Describe", "Get", "List", "Head", "Search")
REAL, SANDBOX = "real", "sandbox"
# What a call reports to the run's log: service, operation, seconds, HTTP status (or error name).
OnCall = Callable[[str, str, float, Any], None]


@dataclass(frozen=True)
class Target:
    """Where the clients point: `real` uses each cloud's default credential chain; `sandbox` points every
    client at the local cloud on 127.0.0.1 (`endpoints` per cloud)."""

    kind: str  # REAL or SANDBOX
    endpoints: Mapping[str, str] = field(default_factory=dict)
    # The sandbox's own local tokens, per cloud (its emulators' fixed tokens); never a user's credential.
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    # A sandbox running a latency profile at this time scale (0: none); waits and backoff scale alike.
    time_scale: float = 0.0
    # Service principals the sandbox accepts for OAuth M2M (its `oauth_clients` setting).
    oauth_client_ids: frozenset[str] = frozenset()

    @property
    def is_sandbox(self) -> bool:
        return self.kind == SANDBOX

    def endpoint(self, cloud: str) -> str | None:
        return self.endpoints.get(cloud)

    def token(self, cloud: str) -> str | None:
        return self.tokens.get(cloud)


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
    """One client set per cloud, by cloud name (`ctx.clients["aws"]`), sharing the target and the counts."""

    def __init__(self, target: Target, clouds: Mapping[str, Any], stats: CallStats):
        self.target = target
        self.stats = stats
        self._clouds = dict(clouds)

    def __getitem__(self, cloud: str) -> Any:
        return self._clouds[cloud]

    def __contains__(self, cloud: str) -> bool:
        return cloud in self._clouds
