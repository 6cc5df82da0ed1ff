"""Per-region facts about Databricks on AWS, shipped with the tool and overridable in the spec."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrivateLinkServices:
    workspace: str  # the workspace (REST API) endpoint service, for back-end PrivateLink
    relay: str  # the secure cluster connectivity relay endpoint service


def _services(region: str, workspace: str, relay: str) -> PrivateLinkServices:
    prefix = f"com.amazonaws.vpce.{region}."
    return PrivateLinkServices(prefix + workspace, prefix + relay)


# From the Databricks PrivateLink documentation's table of regional endpoint services.
PRIVATELINK_SERVICES: dict[str, PrivateLinkServices] = {
    region: _services(region, workspace, relay)
    for region, workspace, relay in (
        ("ap-northeast-1", "vpce-svc-02691fd610d24fd64", "vpce-svc-02aa633bda3edbec0"),
        ("ap-northeast-2", "vpce-svc-0babb9bde64f34d7e", "vpce-svc-0dc0e98a5800db5c4"),
        ("ap-south-1", "vpce-svc-0dbfe5d9ee18d6411", "vpce-svc-03fd4d9b61414f3de"),
        ("ap-southeast-1", "vpce-svc-02535b257fc253ff4", "vpce-svc-0557367c6fc1a0c5c"),
        ("ap-southeast-2", "vpce-svc-0b87155ddd6954974", "vpce-svc-0b4a72e8f825495f6"),
        ("ca-central-1", "vpce-svc-0205f197ec0e28d65", "vpce-svc-0c4e25bdbcbfbb684"),
        ("eu-central-1", "vpce-svc-081f78503812597f7", "vpce-svc-08e5dfca9572c85c4"),
        ("eu-west-1", "vpce-svc-0da6ebf1461278016", "vpce-svc-09b4eb2bc775f4e8c"),
        ("eu-west-2", "vpce-svc-01148c7cdc1d1326c", "vpce-svc-05279412bf5353a45"),
        ("eu-west-3", "vpce-svc-008b9368d1d011f37", "vpce-svc-005b039dd0b5f857d"),
        ("sa-east-1", "vpce-svc-0bafcea8cdfe11b66", "vpce-svc-0e61564963be1b43f"),
        ("us-east-1", "vpce-svc-09143d1e626de2f04", "vpce-svc-00018a8c3ff62ffdf"),
        ("us-east-2", "vpce-svc-041dc2b4d7796b8d3", "vpce-svc-090a8fab0d73e39a6"),
        ("us-west-2", "vpce-svc-0129f463fcfbc46c5", "vpce-svc-0158114c0c730c3bb"),
    )
}


def all_databricks_services() -> dict[str, str]:
    """Every known Databricks endpoint service name -> "workspace" or "relay"."""
    out: dict[str, str] = {}
    for services in PRIVATELINK_SERVICES.values():
        out[services.workspace] = "workspace"
        out[services.relay] = "relay"
    return out
