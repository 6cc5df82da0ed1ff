"""NAT gateways and Elastic IPs (rules 2, 3 and 10).

2. NAT gateways are `pending` for `nat_gateway_pending_seconds`, then `available`. Deleting one makes it
   `deleting` for `nat_gateway_deleting_seconds`, then `deleted` (still listed). Only then is its Elastic
   IP disassociated and its network interface released (lifecycle.py, rule 12). Deleting an unknown NAT
   gateway fails with NatGatewayNotFound; creating one with an Elastic IP that is already associated
   fails up front (moto would leak a network interface first). While `nat_gateway_fail_next` > 0, each
   creation decrements it and that NAT gateway goes `pending` -> `failed` (after
   `nat_gateway_pending_seconds`) with FailureCode/FailureMessage (Gateway.NotAttached if its VPC had no
   internet gateway attached, else InternalError), its Elastic IP disassociated and its interface
   released; `nat_gateway_failed_seconds` later it becomes `deleted` by itself (DeleteNatGateway also
   works on a failed one).
3. ReleaseAddress of an associated Elastic IP fails with InvalidIPAddress.InUse.
10. `tag:<key>` / `tag-key` / `tag-value` filters on DescribeNatGateways (moto ignores them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError, ResourceAlreadyAssociatedError
from moto.ec2.models import EC2Backend
from moto.ec2.utils import generic_filter

from provision.clouds.aws.sandbox.lifecycle import (
    advance_hook,
    due,
    enter,
    release_enis,
    tracked,
)
from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings


@advance_hook("nat_gateways")
def _advance(backend: Any, settings: SandboxSettings, now: float) -> None:
    for nat in list(backend.nat_gateways.values()):
        if not tracked(nat):
            continue
        # Plain `if`s, not `elif`: a NAT noticed late may pass several due states in one go.
        if nat.state == "pending" and (at := due(nat, settings.delay("nat_gateway_pending_seconds", nat.id), now)) is not None:
            if getattr(nat, "_sandbox_failure", None):
                _fail(backend, nat, at)
            else:
                enter(nat, "available", at)
        if nat.state == "failed" and (at := due(nat, settings.nat_gateway_failed_seconds, now)) is not None:
            _finish_deletion(backend, nat, at)
        if nat.state == "deleting" and (at := due(nat, settings.delay("nat_gateway_deleting_seconds", nat.id), now)) is not None:
            _finish_deletion(backend, nat, at)


def _release_resources(backend: Any, nat: Any, since: float) -> None:
    for eip in list(backend.addresses):
        if eip.eni is not None and eip.eni.id == nat._eni.id:
            backend.disassociate_address(address=eip.public_ip)
    for address in nat.address_set:
        address["associationId"] = None
    release_enis(backend, [nat._eni.id], (), since, owner=nat.id)


def _fail(backend: Any, nat: Any, since: float) -> None:
    nat.failure_code, nat.failure_message = nat._sandbox_failure
    _release_resources(backend, nat, since)
    enter(nat, "failed", since)


def _finish_deletion(backend: Any, nat: Any, since: float) -> None:
    _release_resources(backend, nat, since)  # a no-op for a NAT that failed first
    enter(nat, "deleted", since)
    nat.delete_time = utcnow()


@patch(EC2Backend, "create_nat_gateway")
def _create_nat_gateway(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    subnet_id: str,
    allocation_id: str,
    tags: dict[str, str] | None = None,
    connectivity_type: str = "public",
) -> Any:
    if allocation_id and connectivity_type != "private":
        eip = self.address_by_allocation([allocation_id])[0]
        if eip.eni is not None or eip.instance is not None:
            raise ResourceAlreadyAssociatedError(allocation_id)
    nat = original(self, subnet_id, allocation_id, tags, connectivity_type)
    enter(nat, "pending")
    if _take_failure(settings):
        attached = any(igw.vpc is not None and igw.vpc.id == nat.vpc_id for igw in self.internet_gateways.values())
        if connectivity_type != "private" and not attached:
            nat._sandbox_failure = ("Gateway.NotAttached", f"Network {nat.vpc_id} has no Internet gateway attached")
        else:
            nat._sandbox_failure = (
                "InternalError",
                f"Network interface {nat._eni.id}, created and used internally by this NAT gateway is in an "
                "invalid state. Please try again.",
            )
    return nat


def _take_failure(settings: SandboxSettings) -> bool:
    with settings._lock:  # the lock settings.update holds, so a concurrent update is not lost
        if settings.nat_gateway_fail_next <= 0:
            return False
        settings.nat_gateway_fail_next = max(0.0, settings.nat_gateway_fail_next - 1)
        return True


@patch(EC2Backend, "delete_nat_gateway")
def _delete_nat_gateway(self: Any, original: Callable, settings: SandboxSettings, nat_gateway_id: str) -> Any:
    nat = self.nat_gateways.get(nat_gateway_id)
    if nat is None:
        raise EC2ClientError("NatGatewayNotFound", f"The Nat Gateway {nat_gateway_id} was not found")
    if nat.state not in ("deleting", "deleted"):
        enter(nat, "deleting")
    return nat


@patch(EC2Backend, "describe_nat_gateways")
def _describe_nat_gateways(
    self: Any, original: Callable, settings: SandboxSettings, filters: Any, nat_gateway_ids: list[str] | None
) -> list[Any]:
    tag_filters = {k: v for k, v in (filters or {}).items() if k.startswith("tag:") or k in ("tag-key", "tag-value")}
    return generic_filter(tag_filters, original(self, filters, nat_gateway_ids))


@patch(EC2Backend, "release_address")
def _release_address(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    address: str | None = None,
    allocation_id: str | None = None,
) -> None:
    if address or allocation_id:
        eip = (self.address_by_ip([address]) if address else self.address_by_allocation([allocation_id]))[0]
        if eip.eni is not None or eip.instance is not None or eip.association_id:
            raise EC2ClientError("InvalidIPAddress.InUse", "Address is in use")
    return original(self, address=address, allocation_id=allocation_id)


# --- inventory (listing.py) ------------------------------------------------------------------------


@lists("nat_gateway", owned=True)
def _list_nat_gateways(clients: Clients) -> list[dict]:
    # `deleted` and `failed` NAT gateways are still listed by AWS: history, not inventory.
    return [n for n in clients("ec2").describe_nat_gateways()["NatGateways"] if n["State"] not in ("deleted", "failed")]


@lists("elastic_ip", owned=True)
def _list_elastic_ips(clients: Clients) -> list[dict]:
    return clients("ec2").describe_addresses()["Addresses"]
