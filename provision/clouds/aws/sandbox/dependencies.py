"""Dependency rules on delete (rules 4 to 8), so teardown ordering bugs fail here as on AWS.

4. DetachInternetGateway fails with DependencyViolation while the VPC has mapped public addresses (a
   network interface in the VPC holding a public IP, e.g. a NAT's Elastic IP).
5. DeleteVpc fails with DependencyViolation while an internet gateway is attached, or the VPC holds a
   non-default security group, a VPC endpoint, a NAT gateway that is not `deleted`, a transit gateway
   attachment that is not `deleted` or any network interface (on top of moto's own subnet / route table
   / VPN gateway checks).
6. DeleteSubnet fails with DependencyViolation while the subnet holds a NAT gateway that is not
   `deleted`, a transit gateway attachment that is not `deleted` or any network interface (interface VPC
   endpoints, NAT gateways, instances, transit gateway attachments, firewall endpoints).
7. DeleteSecurityGroup fails with DependencyViolation while another group's rule references it, or a
   network interface (also one still lingering, rule 12) or a VPC endpoint that is not deleted uses it.
8. DeleteBucket of a non-empty bucket: moto already answers BucketNotEmpty (nothing patched).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from moto.ec2.exceptions import DependencyViolationError
from moto.ec2.models import EC2Backend

from provision.clouds.aws.sandbox.lifecycle import lingering
from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings


def _eni_vpc_id(eni: Any) -> str | None:
    return getattr(eni.subnet, "vpc_id", None)


@patch(EC2Backend, "detach_internet_gateway")
def _detach_internet_gateway(
    self: Any, original: Callable, settings: SandboxSettings, internet_gateway_id: str, vpc_id: str
) -> None:
    igw = self.get_internet_gateway(internet_gateway_id)
    attached_here = igw.vpc is not None and igw.vpc.id == vpc_id
    if attached_here and any(eni.public_ip and _eni_vpc_id(eni) == vpc_id for eni in self.enis.values()):
        raise DependencyViolationError(
            f"Network {vpc_id} has some mapped public address(es). "
            "Please unmap those public address(es) before detaching the gateway."
        )
    return original(self, internet_gateway_id, vpc_id)


@patch(EC2Backend, "delete_vpc")
def _delete_vpc(self: Any, original: Callable, settings: SandboxSettings, vpc_id: str) -> Any:
    self.get_vpc(vpc_id)  # InvalidVpcID.NotFound before any dependency answer
    blocked = (
        any(igw.vpc is not None and igw.vpc.id == vpc_id for igw in self.internet_gateways.values())
        or any(not group.is_default for group in self.groups.get(vpc_id, {}).values())
        or any(ep.vpc_id == vpc_id and ep.state != "deleted" for ep in self.vpc_end_points.values())
        or any(nat.vpc_id == vpc_id and nat.state != "deleted" for nat in self.nat_gateways.values())
        or any(_eni_vpc_id(eni) == vpc_id for eni in self.enis.values())
        or any(
            getattr(att, "vpc_id", None) == vpc_id and att.state != "deleted"
            for att in self.transit_gateway_attachments.values()
        )
    )
    if blocked:
        raise DependencyViolationError(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
    return original(self, vpc_id)


@patch(EC2Backend, "delete_subnet")
def _delete_subnet(self: Any, original: Callable, settings: SandboxSettings, subnet_id: str) -> Any:
    self.get_subnet(subnet_id)  # InvalidSubnetID.NotFound first
    blocked = (
        any(nat.subnet_id == subnet_id and nat.state != "deleted" for nat in self.nat_gateways.values())
        or any(getattr(eni.subnet, "id", None) == subnet_id for eni in self.enis.values())
        or any(
            subnet_id in (getattr(att, "subnet_ids", None) or []) and att.state != "deleted"
            for att in self.transit_gateway_attachments.values()
        )
    )
    if blocked:
        raise DependencyViolationError(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
    return original(self, subnet_id)


def _security_group_in_use(backend: Any, group: Any) -> bool:
    for other in itertools.chain.from_iterable(groups.values() for groups in backend.groups.values()):
        if other is group:
            continue  # a self-reference never blocks deletion
        for rule in itertools.chain(other.ingress_rules, other.egress_rules):
            ref = rule.source_group or {}
            if ref.get("GroupId") == group.id or (
                ref.get("GroupName") == group.name and other.vpc_id == group.vpc_id
            ):
                return True
    if any(group.id in {g.id for g in eni.group_set} for eni in backend.enis.values()):
        return True
    if any(group.id in groups for _since, groups in lingering(backend).values()):
        return True
    return any(group.id in ep.security_group_ids for ep in backend.vpc_end_points.values() if ep.state != "deleted")


@patch(EC2Backend, "delete_security_group")
def _delete_security_group(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    name: str | None = None,
    group_id: str | None = None,
) -> None:
    group = self.get_security_group_from_id(group_id) if group_id else None
    if group is None and name and not group_id:
        group = self.get_security_group_by_name_or_id(name)
    if group is not None and _security_group_in_use(self, group):
        raise DependencyViolationError(f"resource {group.id} has a dependent object")
    return original(self, name=name, group_id=group_id)


# --- inventory (listing.py): the account's default VPC and what comes with it are not ours ------------


def _default_vpcs(clients: Clients) -> set[str]:
    return {v["VpcId"] for v in clients("ec2").describe_vpcs()["Vpcs"] if v.get("IsDefault")}


@lists("vpc", owned=True)
def _list_vpcs(clients: Clients) -> list[dict]:
    default = _default_vpcs(clients)
    return [v for v in clients("ec2").describe_vpcs()["Vpcs"] if v["VpcId"] not in default]


@lists("subnet", owned=True)
def _list_subnets(clients: Clients) -> list[dict]:
    default = _default_vpcs(clients)
    return [s for s in clients("ec2").describe_subnets()["Subnets"] if s["VpcId"] not in default]


@lists("internet_gateway", owned=True)
def _list_internet_gateways(clients: Clients) -> list[dict]:
    default = _default_vpcs(clients)
    return [
        g for g in clients("ec2").describe_internet_gateways()["InternetGateways"]
        if not any(a["VpcId"] in default for a in g.get("Attachments", []))
    ]


@lists("route_table", owned=True)
def _list_route_tables(clients: Clients) -> list[dict]:
    default = _default_vpcs(clients)
    return [
        t for t in clients("ec2").describe_route_tables()["RouteTables"]
        if t["VpcId"] not in default and not any(a.get("Main") for a in t.get("Associations", []))
    ]


@lists("security_group", owned=True)
def _list_security_groups(clients: Clients) -> list[dict]:
    default = _default_vpcs(clients)
    return [
        g for g in clients("ec2").describe_security_groups()["SecurityGroups"]
        if g["VpcId"] not in default and g["GroupName"] != "default"
    ]
