"""Latency profiles for the sandbox: how long each kind of resource stays pending, and each call takes.

`provision sandbox start --latency realistic --time-scale S` sets every delay below times S, a jitter of
+/- JITTER (each resource draws its own ready time once, from a seeded hash of its id: settings.delay),
and `time_scale` = S, which `provision` reads to scale its poll and backoff intervals by the same S. The
run is then a time-scaled replica of a real one: the waiters, backoff caps and polling are exercised for
real, and every ratio (wall time to critical path, polls per wait) is the one a real run would show.

The profile also switches on the providers' rate limits (sandbox/ratelimit.py): a rate is divided by S, since
a run S times faster may make 1/S times as many requests per sandbox second within the same limit.

docs/latency-profile.md cites where each figure comes from. They are typical values, not guarantees, and
the jitter spreads them.
"""

from __future__ import annotations

from provision.rate_limits import DATABRICKS_ACCOUNT

JITTER = 0.25

# setting -> seconds at time scale 1
REALISTIC: dict[str, float] = {
    "iam_propagation_seconds": 10.0,  # a new role until STS (and so Databricks) can assume it
    "nat_gateway_pending_seconds": 100.0,
    "nat_gateway_deleting_seconds": 60.0,
    "vpc_endpoint_pending_seconds": 90.0,  # interface endpoint pending -> available (and deleting -> deleted)
    "eni_release_seconds": 20.0,  # interfaces of a deleted NAT/endpoint still blocking their subnet
    "tgw_pending_seconds": 120.0,  # transit gateway pending -> available (and deleting -> deleted)
    "tgw_attachment_pending_seconds": 60.0,
    "firewall_provisioning_seconds": 360.0,  # Network Firewall PROVISIONING -> READY
    "firewall_deleting_seconds": 1200.0,  # Network Firewall DELETING -> gone
    "workspace_provisioning_seconds": 360.0,  # Databricks workspace PROVISIONING -> RUNNING
    "aws_call_seconds": 0.1,  # one AWS API round trip
    "databricks_call_seconds": 0.3,  # one Databricks Account API round trip
    # Azure (the ARM emulator, clouds/azure/sandbox)
    "azure_workspace_provisioning_seconds": 300.0,  # Microsoft.Databricks/workspaces Accepted -> Succeeded
    "azure_workspace_deleting_seconds": 240.0,  # workspace (and its managed resource group) Deleting -> gone
    "azure_endpoint_seconds": 30.0,  # private endpoint / DNS zone group Updating -> Succeeded (and deletion)
    "azure_resource_seconds": 5.0,  # VNet, subnet, NSG, private DNS zone, VNet link PUT/DELETE
    "azure_resource_group_deleting_seconds": 90.0,  # resource group deletion, with what it holds
    "azure_call_seconds": 0.15,  # one ARM round trip
}

# setting -> requests per second at time scale 1 (provision/rate_limits.py). A rate is divided by the time scale:
# a run S times faster must meet the same limit in its own seconds, so it may make 1/S times as many a second.
REALISTIC_RATES: dict[str, float] = {
    "databricks_rate_limit": DATABRICKS_ACCOUNT[1],  # the Account API, per account
    "ec2_rate_scale": 1.0,  # EC2's documented refill rate of each action's bucket, times this
}
# setting -> a count of requests (a bucket's capacity): the same at every time scale.
REALISTIC_COUNTS: dict[str, float] = {"databricks_rate_burst": DATABRICKS_ACCOUNT[0]}

PROFILES = {"realistic": REALISTIC}
_RATES = {"realistic": (REALISTIC_RATES, REALISTIC_COUNTS)}


def settings_for(profile: str, time_scale: float) -> dict[str, float]:
    """The sandbox settings for `profile` at `time_scale` (0 < S; 1 is real time)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown latency profile {profile!r}; known: {', '.join(PROFILES)}")
    if not time_scale > 0:
        raise ValueError("time scale must be greater than 0")
    values = {name: seconds * time_scale for name, seconds in PROFILES[profile].items()}
    rates, counts = _RATES[profile]
    values.update({name: per_second / time_scale for name, per_second in rates.items()}, **counts)
    return {**values, "latency_jitter": JITTER, "time_scale": time_scale}
