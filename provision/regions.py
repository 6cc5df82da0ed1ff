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


# From the Databricks documentation's table of PrivateLink VPC endpoint services
# (https://docs.databricks.com/aws/en/resources/ip-domain-region#privatelink-vpc-endpoint-services); every
# region's pair agrees with SRA's (terraform-databricks-sra aws/tf/variables.tf workspace_config and
# scc_relay_config) but ap-southeast-3's workspace service, where SRA has vpce-svc-07a698e7e9ccfd04a: the value
# here is the one transcriptions of that docs table give (spec: privatelink.workspace_service overrides it).
PRIVATELINK_SERVICES: dict[str, PrivateLinkServices] = {
    region: _services(region, workspace, relay)
    for region, workspace, relay in (
        ("ap-northeast-1", "vpce-svc-02691fd610d24fd64", "vpce-svc-02aa633bda3edbec0"),
        ("ap-northeast-2", "vpce-svc-0babb9bde64f34d7e", "vpce-svc-0dc0e98a5800db5c4"),
        ("ap-south-1", "vpce-svc-0dbfe5d9ee18d6411", "vpce-svc-03fd4d9b61414f3de"),
        ("ap-southeast-1", "vpce-svc-02535b257fc253ff4", "vpce-svc-0557367c6fc1a0c5c"),
        ("ap-southeast-2", "vpce-svc-0b87155ddd6954974", "vpce-svc-0b4a72e8f825495f6"),
        ("ap-southeast-3", "vpce-svc-0fec4092997affd53", "vpce-svc-025ca447c232c6a1b"),
        ("ca-central-1", "vpce-svc-0205f197ec0e28d65", "vpce-svc-0c4e25bdbcbfbb684"),
        ("eu-central-1", "vpce-svc-081f78503812597f7", "vpce-svc-08e5dfca9572c85c4"),
        ("eu-west-1", "vpce-svc-0da6ebf1461278016", "vpce-svc-09b4eb2bc775f4e8c"),
        ("eu-west-2", "vpce-svc-01148c7cdc1d1326c", "vpce-svc-05279412bf5353a45"),
        ("eu-west-3", "vpce-svc-008b9368d1d011f37", "vpce-svc-005b039dd0b5f857d"),
        ("sa-east-1", "vpce-svc-0bafcea8cdfe11b66", "vpce-svc-0e61564963be1b43f"),
        ("us-east-1", "vpce-svc-09143d1e626de2f04", "vpce-svc-00018a8c3ff62ffdf"),
        ("us-east-2", "vpce-svc-041dc2b4d7796b8d3", "vpce-svc-090a8fab0d73e39a6"),
        ("us-west-1", "vpce-svc-09bb6ca26208063f2", "vpce-svc-04cb91f9372b792fe"),
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


@dataclass(frozen=True)
class EgressFacts:
    """What a data-exfiltration firewall must let through, per region (Databricks' supported-regions page)."""

    web_app: str  # the workspace web application host
    relay: str  # the secure cluster connectivity relay host
    metastore: str  # the legacy Hive metastore host
    control_plane_cidr: str  # the control plane's NAT addresses


EGRESS_FACTS: dict[str, EgressFacts] = {
    region: EgressFacts(*facts)
    for region, *facts in (
        ("ap-northeast-1", "tokyo.cloud.databricks.com", "tunnel.ap-northeast-1.cloud.databricks.com", "mddx5a4bpbpm05.cfrfsun7mryq.ap-northeast-1.rds.amazonaws.com", "35.72.28.0/28"),
        ("ap-northeast-2", "seoul.cloud.databricks.com", "tunnel.ap-northeast-2.cloud.databricks.com", "md1915a81ruxky5.cfomhrbro6gt.ap-northeast-2.rds.amazonaws.com", "3.38.156.176/28"),
        ("ap-south-1", "mumbai.cloud.databricks.com", "tunnel.ap-south-1.cloud.databricks.com", "mdjanpojt83v6j.c5jml0fhgver.ap-south-1.rds.amazonaws.com", "65.0.37.64/28"),
        ("ap-southeast-1", "singapore.cloud.databricks.com", "tunnel.ap-southeast-1.cloud.databricks.com", "md1n4trqmokgnhr.csnrqwqko4ho.ap-southeast-1.rds.amazonaws.com", "13.214.1.96/28"),
        ("ap-southeast-2", "sydney.cloud.databricks.com", "tunnel.ap-southeast-2.cloud.databricks.com", "mdnrak3rme5y1c.c5f38tyb1fdu.ap-southeast-2.rds.amazonaws.com", "3.26.4.0/28"),
        ("ca-central-1", "canada.cloud.databricks.com", "tunnel.ca-central-1.cloud.databricks.com", "md1w81rjeh9i4n5.co1tih5pqdrl.ca-central-1.rds.amazonaws.com", "3.96.84.208/28"),
        ("eu-central-1", "frankfurt.cloud.databricks.com", "tunnel.eu-central-1.cloud.databricks.com", "mdv2llxgl8lou0.ceptxxgorjrc.eu-central-1.rds.amazonaws.com", "18.159.44.32/28"),
        ("eu-west-1", "ireland.cloud.databricks.com", "tunnel.eu-west-1.cloud.databricks.com", "md15cf9e1wmjgny.cxg30ia2wqgj.eu-west-1.rds.amazonaws.com", "3.250.244.112/28"),
        ("eu-west-2", "london.cloud.databricks.com", "tunnel.eu-west-2.cloud.databricks.com", "mdio2468d9025m.c6fvhwk6cqca.eu-west-2.rds.amazonaws.com", "18.134.65.240/28"),
        ("eu-west-3", "paris.cloud.databricks.com", "tunnel.eu-west-3.cloud.databricks.com", "metastorerds-dbconsolidationmetastore-asda4em2u6eg.c2ybp3dss6ua.eu-west-3.rds.amazonaws.com", "13.39.141.128/28"),
        ("sa-east-1", "saopaulo.cloud.databricks.com", "tunnel.sa-east-1.cloud.databricks.com", "metastorerds-dbconsolidationmetastore-fqekf3pck8yw.cog1aduyg4im.sa-east-1.rds.amazonaws.com", "15.229.120.16/28"),
        ("us-east-1", "nvirginia.cloud.databricks.com", "tunnel.us-east-1.cloud.databricks.com", "mdb7sywh50xhpr.chkweekm4xjq.us-east-1.rds.amazonaws.com", "3.237.73.224/28"),
        ("us-east-2", "ohio.cloud.databricks.com", "tunnel.us-east-2.cloud.databricks.com", "md7wf1g369xf22.cluz8hwxjhb6.us-east-2.rds.amazonaws.com", "3.128.237.208/28"),
        ("us-west-1", "oregon.cloud.databricks.com", "tunnel.cloud.databricks.com", "mdzsbtnvk0rnce.c13weuwubexq.us-west-1.rds.amazonaws.com", "44.234.192.32/28"),
        ("us-west-2", "oregon.cloud.databricks.com", "tunnel.cloud.databricks.com", "mdpartyyphlhsp.caj77bnxuhme.us-west-2.rds.amazonaws.com", "44.234.192.32/28"),
    )
}
