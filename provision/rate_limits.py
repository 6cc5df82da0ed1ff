"""The providers' documented request rate limits, and the token bucket both sides of them use.

One table, read by the sandbox (sandbox/ratelimit.py, which refuses calls beyond it) and by the clients
(orchestrator/pacing.py, which keeps our calls slightly under it), so the two never drift apart. Figures are
per real second; docs/latency-profile.md cites where each comes from.

- Amazon EC2 ("Request throttling for the Amazon EC2 API"): a token bucket per API action, per account and
  Region. Non-mutating actions (Describe*, List*, Search*, Get*) hold 100 tokens and refill 20 a second; a few
  of them, called with neither a filter nor pagination, draw on a smaller bucket (50, 10 a second); mutating
  actions 50 and 5; and some actions have buckets of their own (CreateNatGateway 10 and 1, CreateVpcEndpoint
  4 and 0.3, ...). Beyond them EC2 answers HTTP 503 RequestLimitExceeded.
- Databricks Account API: the limits page publishes one account-scoped request rate, 20 a second (account
  SCIM reads); it publishes none for workspaces, credentials, networks or metastores, so the whole Account API
  of an account is taken to share that one bucket. Beyond it: HTTP 429 REQUEST_LIMIT_EXCEEDED with Retry-After.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection

# (bucket capacity, refill tokens per second)
Bucket = tuple[float, float]

EC2_NON_MUTATING: Bucket = (100.0, 20.0)
EC2_UNFILTERED: Bucket = (50.0, 10.0)
EC2_MUTATING: Bucket = (50.0, 5.0)  # resource-intensive actions have the same figures, in buckets of their own
EC2_NON_MUTATING_PREFIXES = ("Describe", "List", "Search", "Get")
# Called with neither a filter nor pagination, these draw on the smaller EC2_UNFILTERED bucket.
EC2_UNFILTERED_ACTIONS = frozenset({
    "DescribeInstances", "DescribeInstanceStatus", "DescribeNetworkInterfaces", "DescribeSecurityGroups",
    "DescribeSnapshots", "DescribeSpotInstanceRequests", "DescribeVolumes",
})
# The uncategorized actions this project calls (the docs list more): each has its own figures.
EC2_OWN_BUCKETS: dict[str, Bucket] = {
    "AssociateNatGatewayAddress": (10.0, 1.0),
    "CreateNatGateway": (10.0, 1.0),
    "DeleteNatGateway": (10.0, 1.0),
    "CreateVpcEndpoint": (4.0, 0.3),
    "DeleteVpcEndpoints": (4.0, 0.3),
    "CreateTags": (100.0, 10.0),
    "DeleteTags": (100.0, 10.0),
    "CreateNetworkInterface": (100.0, 5.0),
    "DeleteNetworkInterface": (100.0, 5.0),
    "ModifyNetworkInterfaceAttribute": (100.0, 5.0),
}

DATABRICKS_ACCOUNT: Bucket = (20.0, 20.0)


def ec2_bucket(action: str, parameters: Collection[str]) -> tuple[str, Bucket]:
    """The EC2 bucket a call of `action` draws on, as (its name, its figures). `parameters` are the names the
    call was made with (API names: Filters, MaxResults, NextToken; or their query forms, Filter.1.Name, ...)."""
    own = EC2_OWN_BUCKETS.get(action)
    if own is not None:
        return action, own
    if action.startswith(EC2_NON_MUTATING_PREFIXES):
        if action in EC2_UNFILTERED_ACTIONS and not any(p.startswith(("Filter", "MaxResults", "NextToken")) for p in parameters):
            return f"{action} (unfiltered)", EC2_UNFILTERED
        return action, EC2_NON_MUTATING
    return action, EC2_MUTATING


class TokenBucket:
    """`capacity` tokens, refilled at `rate` a second. Thread-safe; `clock` is injectable.

    `take` is the server's side: a token now, or how long until there is one (nothing taken). `reserve` is the
    client's side: the token is taken now, possibly ahead of its refill (the balance goes negative, a queue), and
    the caller is told how long to wait before using it, so no lock is held while anyone sleeps."""

    def __init__(self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity <= 0 or rate <= 0:
            raise ValueError("a token bucket needs a capacity and a rate above 0")
        self.capacity, self.rate, self._clock = float(capacity), float(rate), clock
        self._tokens, self._stamp = self.capacity, clock()
        self._lock = threading.Lock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return now

    def take(self) -> float:
        """0.0 with a token taken, or the seconds until one will be there (nothing taken)."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def reserve(self) -> float:
        """Take a token, now or ahead of time: the seconds to wait before using it."""
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def empty_until(self, at: float) -> None:
        """No token before `at` (the service refused us: its bucket is empty), then the normal refill."""
        with self._lock:
            now = self._refill()
            self._tokens = min(self._tokens, 0.0) - max(0.0, at - now) * self.rate
