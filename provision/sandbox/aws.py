"""AWS half of the sandbox cloud: moto's server plus the fidelity moto 5.2.5 lacks, so teardown
ordering and idempotency bugs fail here exactly as they would on real AWS.

Fidelity rules (only for requests that come through an app made by `make_aws_app`; moto used any
other way in the same process, e.g. `mock_aws` in unit tests, behaves exactly as stock):

1. ClientToken idempotency for CreateNatGateway, CreateVpcEndpoint and CreateRouteTable: a retry
   with the same token returns the same resource; the same token with other parameters fails
   with IdempotentParameterMismatch. As on EC2 the token keeps its result after the resource is
   deleted: a NAT gateway is answered as it is now (`deleted`/`failed`, still listed); a route
   table or VPC endpoint that is gone is answered with the original creation response (kept as
   a snapshot). Nothing new is ever made for a token already used.
2. NAT gateways are `pending` for `nat_gateway_pending_seconds`, then `available`. Deleting one
   makes it `deleting` for `nat_gateway_deleting_seconds`, then `deleted` (still listed). Only
   then is its Elastic IP disassociated and its network interface released (see rule 12).
   Deleting an unknown NAT gateway fails with NatGatewayNotFound; creating one with an Elastic IP
   that is already associated fails up front (moto would leak a network interface first).
   While `nat_gateway_fail_next` > 0, each creation decrements it and that NAT gateway goes
   `pending` -> `failed` (after `nat_gateway_pending_seconds`) with FailureCode/FailureMessage
   (Gateway.NotAttached if its VPC had no internet gateway attached, else InternalError), its
   Elastic IP disassociated and its interface released; `nat_gateway_failed_seconds` later it
   becomes `deleted` by itself (DeleteNatGateway also works on a failed one).
3. ReleaseAddress of an associated Elastic IP fails with InvalidIPAddress.InUse.
4. DetachInternetGateway fails with DependencyViolation while the VPC has mapped public
   addresses (a network interface in the VPC holding a public IP, e.g. a NAT's Elastic IP).
5. DeleteVpc fails with DependencyViolation while an internet gateway is attached, or the VPC
   holds a non-default security group, a VPC endpoint or a NAT gateway that is not `deleted`
   (on top of moto's own subnet / route table / VPN gateway checks).
6. DeleteSubnet fails with DependencyViolation while the subnet holds a NAT gateway that is not
   `deleted` or any network interface (interface VPC endpoints, NAT gateways, instances).
7. DeleteSecurityGroup fails with DependencyViolation while another group's rule references it,
   or a network interface or a VPC endpoint that is not deleted uses it.
8. DeleteBucket of a non-empty bucket: moto already answers BucketNotEmpty (nothing patched).
9. VPC endpoints (every type) are `pending` for `vpc_endpoint_pending_seconds`, then `available`.
   DeleteVpcEndpoints makes them `deleting` for the same number of seconds; then their network
   interfaces and gateway routes are removed and they are gone from DescribeVpcEndpoints
   (moto would list them as `deleted` forever). An endpoint whose service requires acceptance
   (rule 13) is `pendingAcceptance` instead of `pending` until `accept_vpc_endpoint` is called,
   and only then goes `pending` -> `available`; `set_endpoint_acceptance_policy` lets tests hold
   other endpoints the same way.
10. `tag:<key>` / `tag-key` / `tag-value` filters on DescribeNatGateways (moto ignores them; the
    other describe calls and every TagSpecifications we use already work in moto).
11. S3 requests are treated as made over https: bucket policy conditions on `aws:SecureTransport`
    (true) and `s3:TlsVersion` (1.3) are decided before moto evaluates the policy, so a statement
    that AWS would not apply over TLS (e.g. Deny s3:* when aws:SecureTransport is "false") no
    longer denies object writes and DeleteObjects here (moto ignores the `Bool` operator, so it
    applied that Deny to every request). Other conditions are left to moto as before.
12. Network interfaces of a NAT gateway that is `deleted`/`failed` or of an interface VPC
    endpoint that is gone linger for `eni_release_seconds` after that moment (still listed by
    DescribeNetworkInterfaces): until they go, DeleteSubnet, DeleteSecurityGroup (the endpoint's
    groups) and DeleteVpc keep failing with DependencyViolation.
13. Databricks PrivateLink endpoint services (back-end PrivateLink, the "apply twice" problem):
    - DescribeVpcEndpointServices knows every service of provision/regions.py in its own region
      (listed, or asked for by ServiceNames / service-name filter): Interface, AcceptanceRequired
      true, ManagesVpcEndpoints false, Owner 414351767826 (Databricks), the region's zones, a
      private DNS name (`<region>.privatelink.cloud.databricks.com` for the workspace service,
      `tunnel.privatelink.<region>.cloud.databricks.com` for the relay) and ServiceId = the
      vpce-svc-... part of the name. Other regions do not know them, as on AWS. The service-name
      and tag filters work (moto 5.2.5 fails them with a KeyError, i.e. a 500).
    - CreateVpcEndpoint to a `com.amazonaws.vpce.<region>.vpce-svc-...` name that is neither a
      Databricks service of the request's region nor an endpoint service made in moto fails with
      InvalidServiceName (moto accepts any name; AWS-owned `com.amazonaws.<region>.<svc>` names are
      still left to moto). So another region's Databricks service name fails as on AWS.
    - An endpoint to a Databricks service stays `pendingAcceptance` until the provider accepts it
      (`accept_vpc_endpoint`, which the Databricks emulator calls when the endpoint is registered),
      then goes `pending` -> `available` after `vpc_endpoint_pending_seconds` (rule 9).
    - Private DNS before acceptance is refused: CreateVpcEndpoint with PrivateDnsEnabled=true to a
      service that requires acceptance, and ModifyVpcEndpoint with PrivateDnsEnabled=true on an
      endpoint in `pendingAcceptance`, fail with InvalidParameter "Private DNS can only be enabled
      after the endpoint connection is accepted by the service owner.". PrivateDnsEnabled omitted
      on create means false for such a service (moto, like AWS's documented default, makes it
      true; that default cannot hold where private DNS cannot be enabled yet, so it would
      otherwise make every Databricks endpoint created without the flag fail). Endpoints to AWS
      services keep moto's default (true).
    - ModifyVpcEndpoint applies PrivateDnsEnabled to interface endpoints (moto ignores the
      parameter), so DescribeVpcEndpoints shows it once enabled after acceptance.

Time-based states advance lazily at the start of every EC2 request (no background thread), and
the delays are read from the shared settings object at that moment. Each state counts from when
the previous one was due, not from the request that happened to notice it, so chained timers
(pending -> failed -> deleted, then the interface release) add up as they would on AWS. All
patched code and every sandbox EC2 request run under one re-entrant lock, because werkzeug serves
requests on threads and moto's backends are not thread-safe.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import (
    DependencyViolationError,
    EC2ClientError,
    InvalidNextToken,
    InvalidServiceName,
    ResourceAlreadyAssociatedError,
)
from moto.ec2.models import EC2Backend, ec2_backends
from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend
from moto.ec2.models.vpcs import MAX_NUMBER_OF_ENDPOINT_SERVICES_RESULTS
from moto.ec2.responses import EC2Response
from moto.ec2.utils import generic_filter
from moto.iam.access_control import IAMPolicy
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import FakeBucket

from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.regions import PRIVATELINK_SERVICES
from provision.sandbox.settings import SANDBOX_AWS_ACCOUNT_ID, SandboxSettings


# Settings of the sandbox app serving the current request; None means "plain moto".
_ACTIVE: contextvars.ContextVar[SandboxSettings | None] = contextvars.ContextVar("sandbox_aws", default=None)
_STATE_LOCK = threading.RLock()
_PATCH_LOCK = threading.Lock()
_PATCHED_MARK = "__sandbox_patched__"
# (class, attribute, replacement(self, original, settings, *args, **kwargs))
_PATCHES: list[tuple[type, str, Callable[..., Any]]] = []


class SandboxAWSApp:
    """Thin WSGI middleware: marks requests as sandbox requests so the patches apply to them."""

    def __init__(self, moto_app: DomainDispatcherApplication, settings: SandboxSettings) -> None:
        self.moto_app = moto_app
        self.settings = settings

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        token = _ACTIVE.set(self.settings)
        try:
            # moto builds the whole body inside this call, so resetting afterwards is safe.
            return self.moto_app(environ, start_response)
        finally:
            _ACTIVE.reset(token)


def make_aws_app(settings: SandboxSettings) -> SandboxAWSApp:
    """moto's server WSGI app (as ThreadedMotoServer builds it) with the sandbox fidelity rules."""
    _install_patches()
    return SandboxAWSApp(DomainDispatcherApplication(create_backend_app), settings)


# --- endpoints that need the provider's acceptance (rules 9 and 13) ---------------------------

_extra_acceptance: Callable[[Any], bool] = lambda endpoint: False


def set_endpoint_acceptance_policy(policy: Callable[[Any], bool] | None) -> None:
    """policy(moto VPCEndPoint) -> True also keeps that new endpoint in pendingAcceptance (on top of
    endpoints to Databricks services, which always wait); None removes the extra policy."""
    global _extra_acceptance
    _extra_acceptance = policy or (lambda endpoint: False)


def _needs_acceptance(endpoint: Any) -> bool:
    region = endpoint.ec2_backend.region_name
    return databricks_service_kind(endpoint.service_name, region) is not None or _extra_acceptance(endpoint)


def accept_vpc_endpoint(vpce_id: str, account_id: str = SANDBOX_AWS_ACCOUNT_ID, region: str = "us-east-1") -> None:
    """Move an endpoint out of pendingAcceptance; it then goes pending -> available as usual."""
    with _STATE_LOCK:
        endpoint = ec2_backends[account_id][region].get_vpc_end_point(vpce_id)
        if endpoint.state == "pendingAcceptance":
            _enter(endpoint, "pending")


def databricks_service_kind(service_name: str | None, region: str) -> str | None:
    """The kind of Databricks endpoint service ("workspace" or "relay") the name is in that region, or None."""
    services = PRIVATELINK_SERVICES.get(region)
    if services is None or not service_name:
        return None
    return {services.workspace: "workspace", services.relay: "relay"}.get(service_name)


def vpc_endpoint_snapshot(
    vpce_id: str, region: str, settings: SandboxSettings | None = None, account_id: str = SANDBOX_AWS_ACCOUNT_ID
) -> dict[str, Any] | None:
    """The endpoint as DescribeVpcEndpoints would show it now (due transitions applied first when
    settings are given), or None if the region or endpoint does not exist. For the emulator."""
    with _STATE_LOCK:
        backend = ec2_backends[account_id].get(region)  # never instantiates a region (default VPC)
        if backend is None:
            return None
        if settings is not None:
            _advance(backend, settings)
        endpoint = backend.vpc_end_points.get(vpce_id)
        if endpoint is None or endpoint.state == "deleted":
            return None
        return {
            "vpc_endpoint_id": endpoint.id,
            "vpc_id": endpoint.vpc_id,
            "service_name": endpoint.service_name,
            "type": endpoint.vpc_endpoint_type,
            "state": endpoint.state,
            "private_dns_enabled": bool(endpoint.private_dns_enabled),
        }


# --- patch machinery ---------------------------------------------------------------------------


def _patches(cls: type, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _PATCHES.append((cls, name, fn))
        return fn

    return register


def _gated(fn: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)  # keeps a plain function, so moto still finds response actions
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        settings = _ACTIVE.get()
        if settings is None:
            return original(self, *args, **kwargs)
        with _STATE_LOCK:
            return fn(self, original, settings, *args, **kwargs)

    setattr(wrapper, _PATCHED_MARK, True)
    return wrapper


def _install_patches() -> None:
    with _PATCH_LOCK:
        for cls, name, fn in _PATCHES:
            # The mark (not a module-level flag) also survives a reload of this module.
            if getattr(cls.__dict__.get(name), _PATCHED_MARK, False):
                continue
            setattr(cls, name, _gated(fn, getattr(cls, name)))


def _enter(resource: Any, state: str, since: float | None = None) -> None:
    resource.state = state
    resource._sandbox_since = time.monotonic() if since is None else since


# --- lazy state machine ------------------------------------------------------------------------


def _advance(backend: Any, settings: SandboxSettings) -> None:
    now = time.monotonic()

    def due(resource: Any, seconds: float) -> float | None:
        """When the resource's current state ends, if that moment has passed."""
        at = getattr(resource, "_sandbox_since", now) + seconds
        return at if at <= now else None

    for nat in list(backend.nat_gateways.values()):
        if not hasattr(nat, "_sandbox_since"):
            continue  # made outside the sandbox: leave moto's state alone
        # Plain `if`s, not `elif`: a NAT noticed late may pass several due states in one go.
        if nat.state == "pending" and (at := due(nat, settings.nat_gateway_pending_seconds)) is not None:
            if getattr(nat, "_sandbox_failure", None):
                _fail_nat(backend, nat, at)
            else:
                _enter(nat, "available", at)
        if nat.state == "failed" and (at := due(nat, settings.nat_gateway_failed_seconds)) is not None:
            _finish_nat_deletion(backend, nat, at)
        if nat.state == "deleting" and (at := due(nat, settings.nat_gateway_deleting_seconds)) is not None:
            _finish_nat_deletion(backend, nat, at)
    for endpoint in list(backend.vpc_end_points.values()):
        if not hasattr(endpoint, "_sandbox_since"):
            continue
        if endpoint.state == "pending" and (at := due(endpoint, settings.vpc_endpoint_pending_seconds)) is not None:
            _enter(endpoint, "available", at)
        elif endpoint.state == "deleting" and (at := due(endpoint, settings.vpc_endpoint_pending_seconds)) is not None:
            _finish_endpoint_deletion(backend, endpoint, at)
    lingering = _lingering(backend)
    for eni_id, (since, _groups) in list(lingering.items()):
        if now - since >= settings.eni_release_seconds:
            backend.enis.pop(eni_id, None)
            del lingering[eni_id]


def _lingering(backend: Any) -> dict[str, tuple[float, frozenset[str]]]:
    """Released network interfaces still present: id -> (released at, the groups they count for)."""
    return backend.__dict__.setdefault("_sandbox_lingering_enis", {})


def _release_enis(backend: Any, eni_ids: Iterable[str], groups: Iterable[str], since: float) -> None:
    lingering = _lingering(backend)
    for eni_id in eni_ids:
        if eni_id in backend.enis and eni_id not in lingering:
            lingering[eni_id] = (since, frozenset(groups))


def _release_nat_resources(backend: Any, nat: Any, since: float) -> None:
    for eip in list(backend.addresses):
        if eip.eni is not None and eip.eni.id == nat._eni.id:
            backend.disassociate_address(address=eip.public_ip)
    for address in nat.address_set:
        address["associationId"] = None
    _release_enis(backend, [nat._eni.id], (), since)


def _fail_nat(backend: Any, nat: Any, since: float) -> None:
    nat.failure_code, nat.failure_message = nat._sandbox_failure
    _release_nat_resources(backend, nat, since)
    _enter(nat, "failed", since)


def _finish_nat_deletion(backend: Any, nat: Any, since: float) -> None:
    _release_nat_resources(backend, nat, since)  # a no-op for a NAT that failed first
    _enter(nat, "deleted", since)
    nat.delete_time = utcnow()


def _finish_endpoint_deletion(backend: Any, endpoint: Any, since: float) -> None:
    if (endpoint.vpc_endpoint_type or "").lower() == "interface":
        _release_enis(backend, endpoint.network_interface_ids, endpoint.security_group_ids, since)
    elif endpoint.destination_prefix_list_id:
        for route_table_id in endpoint.route_table_ids:
            try:
                backend.delete_route(
                    route_table_id, None, destination_prefix_list_id=endpoint.destination_prefix_list_id
                )
            except EC2ClientError:
                pass  # route table or route already deleted
    endpoint.state = "deleted"
    backend.vpc_end_points.pop(endpoint.id, None)


@_patches(EC2Response, "call_action")
def _call_action(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    try:
        backend = self.ec2_backend
    except KeyError:
        backend = None  # unknown region: let moto produce its own error
    if backend is not None:
        _advance(backend, settings)
    return original(self)


# --- rule 1: ClientToken idempotency (response level: moto drops the token before the backend) --

_IGNORED_PARAMS = {"Action", "Version", "ClientToken"}


def _idempotent(result_key: str, store: str) -> Callable[..., Any]:
    def create(self: Any, original: Callable, settings: SandboxSettings) -> Any:
        token = self._get_param("ClientToken")
        if not token:
            return original(self)
        backend = self.ec2_backend
        tokens: dict = backend.__dict__.setdefault("_sandbox_client_tokens", {})
        params = sorted((k, tuple(v)) for k, v in self.querystring.items() if k not in _IGNORED_PARAMS)
        seen = tokens.get((result_key, token))
        if seen is not None:
            resource_id, seen_params, (status, headers, body) = seen
            if seen_params != params:
                raise EC2ClientError(
                    "IdempotentParameterMismatch",
                    f"The client token '{token}' was already used with different request parameters.",
                )
            resource = getattr(backend, store).get(resource_id)
            if resource is not None:
                return ActionResult({result_key: resource, "ClientToken": token})
            # Deleted since: EC2 still answers with the original result (moto sets a new RequestId).
            return status, dict(headers), body
        result = original(self)
        result.result["ClientToken"] = token
        snapshot = self.serialized(result)  # the creation response, frozen before anything changes
        tokens[(result_key, token)] = (result.result[result_key].id, params, snapshot)
        return result

    return create


_patches(EC2Response, "create_nat_gateway")(_idempotent("NatGateway", "nat_gateways"))
_patches(EC2Response, "create_route_table")(_idempotent("RouteTable", "route_tables"))
# Wrapped with rule 13's checks below (one patch per attribute).
_create_vpc_endpoint_idempotent = _idempotent("VpcEndpoint", "vpc_end_points")


# --- rule 2 and 10: NAT gateways ----------------------------------------------------------------


@_patches(EC2Backend, "create_nat_gateway")
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
    _enter(nat, "pending")
    if _take_nat_failure(settings):
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


def _take_nat_failure(settings: SandboxSettings) -> bool:
    with settings._lock:  # the lock settings.update holds, so a concurrent update is not lost
        if settings.nat_gateway_fail_next <= 0:
            return False
        settings.nat_gateway_fail_next = max(0.0, settings.nat_gateway_fail_next - 1)
        return True


@_patches(EC2Backend, "delete_nat_gateway")
def _delete_nat_gateway(self: Any, original: Callable, settings: SandboxSettings, nat_gateway_id: str) -> Any:
    nat = self.nat_gateways.get(nat_gateway_id)
    if nat is None:
        raise EC2ClientError("NatGatewayNotFound", f"The Nat Gateway {nat_gateway_id} was not found")
    if nat.state not in ("deleting", "deleted"):
        _enter(nat, "deleting")
    return nat


@_patches(EC2Backend, "describe_nat_gateways")
def _describe_nat_gateways(
    self: Any, original: Callable, settings: SandboxSettings, filters: Any, nat_gateway_ids: list[str] | None
) -> list[Any]:
    tag_filters = {k: v for k, v in (filters or {}).items() if k.startswith("tag:") or k in ("tag-key", "tag-value")}
    return generic_filter(tag_filters, original(self, filters, nat_gateway_ids))


# --- rules 3-7: dependency checks ----------------------------------------------------------------


@_patches(EC2Backend, "release_address")
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


def _eni_vpc_id(eni: Any) -> str | None:
    return getattr(eni.subnet, "vpc_id", None)


@_patches(EC2Backend, "detach_internet_gateway")
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


@_patches(EC2Backend, "delete_vpc")
def _delete_vpc(self: Any, original: Callable, settings: SandboxSettings, vpc_id: str) -> Any:
    self.get_vpc(vpc_id)  # InvalidVpcID.NotFound before any dependency answer
    blocked = (
        any(igw.vpc is not None and igw.vpc.id == vpc_id for igw in self.internet_gateways.values())
        or any(not group.is_default for group in self.groups.get(vpc_id, {}).values())
        or any(ep.vpc_id == vpc_id and ep.state != "deleted" for ep in self.vpc_end_points.values())
        or any(nat.vpc_id == vpc_id and nat.state != "deleted" for nat in self.nat_gateways.values())
        or any(_eni_vpc_id(eni) == vpc_id for eni in self.enis.values())
    )
    if blocked:
        raise DependencyViolationError(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
    return original(self, vpc_id)


@_patches(EC2Backend, "delete_subnet")
def _delete_subnet(self: Any, original: Callable, settings: SandboxSettings, subnet_id: str) -> Any:
    self.get_subnet(subnet_id)  # InvalidSubnetID.NotFound first
    blocked = any(
        nat.subnet_id == subnet_id and nat.state != "deleted" for nat in self.nat_gateways.values()
    ) or any(getattr(eni.subnet, "id", None) == subnet_id for eni in self.enis.values())
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
    if any(group.id in groups for _since, groups in _lingering(backend).values()):
        return True
    return any(group.id in ep.security_group_ids for ep in backend.vpc_end_points.values() if ep.state != "deleted")


@_patches(EC2Backend, "delete_security_group")
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


# --- rule 9: VPC endpoint lifecycle --------------------------------------------------------------


@_patches(EC2Backend, "create_vpc_endpoint")
def _create_vpc_endpoint(self: Any, original: Callable, settings: SandboxSettings, *args: Any, **kwargs: Any) -> Any:
    endpoint = original(self, *args, **kwargs)
    _enter(endpoint, "pendingAcceptance" if _needs_acceptance(endpoint) else "pending")
    return endpoint


@_patches(EC2Backend, "delete_vpc_endpoints")
def _delete_vpc_endpoints(
    self: Any, original: Callable, settings: SandboxSettings, vpce_ids: list[str] | None = None
) -> None:
    # Network interfaces and routes stay until the endpoint is gone, as on AWS.
    for vpce_id in vpce_ids or []:
        endpoint = self.vpc_end_points.get(vpce_id)
        if endpoint is not None and endpoint.state not in ("deleting", "deleted"):
            _enter(endpoint, "deleting")


# --- rule 13: Databricks PrivateLink endpoint services -----------------------------------------

_PRIVATE_DNS_BEFORE_ACCEPTANCE = (
    "Private DNS can only be enabled after the endpoint connection is accepted by the service owner."
)


def _databricks_service_details(region: str) -> list[dict[str, Any]]:
    """DescribeVpcEndpointServices entries of the region's Databricks services (moto's dict shape)."""
    services = PRIVATELINK_SERVICES.get(region)
    if services is None:
        return []
    zones = [zone.name for zone in RegionsAndZonesBackend.zones.get(region, [])]
    details = []
    for name, dns in (
        (services.workspace, f"{region}.privatelink.cloud.databricks.com"),
        (services.relay, f"tunnel.privatelink.{region}.cloud.databricks.com"),
    ):
        service_id = name.rsplit(".", 1)[-1]
        details.append(
            {
                "ServiceName": name,
                "ServiceId": service_id,
                "ServiceType": [{"ServiceType": "Interface"}],
                "ServiceRegion": region,
                "AvailabilityZones": zones,
                "Owner": DATABRICKS_AWS_ACCOUNT_ID,
                "BaseEndpointDnsNames": [f"{service_id}.{region}.vpce.amazonaws.com"],
                "PrivateDnsName": dns,
                "PrivateDnsNames": [{"PrivateDnsName": dns}],
                "PrivateDnsNameVerificationState": "verified",
                "VpcEndpointPolicySupported": False,
                "AcceptanceRequired": True,
                "ManagesVpcEndpoints": False,
                "SupportedIpAddressTypes": ["ipv4"],
                "Tags": [],
            }
        )
    return details


@_patches(EC2Backend, "describe_vpc_endpoint_services")
def _describe_vpc_endpoint_services(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    service_names: list[str],
    filters: Any,
    max_results: int,
    next_token: str | None,
    region: str,
) -> dict[str, Any]:
    # moto reads a filter's values from "Value" but parses the request into "Values" (KeyError).
    filters = [{**f, "Value": f.get("Value", f.get("Values", []))} for f in filters or []]
    ours = _databricks_service_details(region)
    if not ours:
        return original(self, service_names, filters, max_results, next_token, region)
    our_names = {service["ServiceName"] for service in ours}
    asked = list(service_names or [])
    asked_theirs = [name for name in asked if name not in our_names]
    asked_ours = [name for name in asked if name in our_names]
    found: list[dict[str, Any]] = []
    if asked_theirs or not asked:  # moto's own services (and its InvalidServiceName), unpaginated
        found += original(
            self, asked_theirs, filters, MAX_NUMBER_OF_ENDPOINT_SERVICES_RESULTS, None, region
        )["servicesDetails"]
    if asked_ours or not asked:
        found += self._filter_endpoint_services(asked_ours, filters, ours)
    found.sort(key=lambda service: service["ServiceName"])
    # moto's paging: the token is the ServiceId of the first service of the next page.
    ids = [service["ServiceId"] for service in found]
    start = 0
    if next_token:
        if next_token not in ids:
            raise InvalidNextToken(next_token)
        start = ids.index(next_token)
    if not max_results or max_results > MAX_NUMBER_OF_ENDPOINT_SERVICES_RESULTS:
        max_results = MAX_NUMBER_OF_ENDPOINT_SERVICES_RESULTS
    page = found[start : start + max_results]
    return {
        "servicesDetails": page,
        "serviceNames": [service["ServiceName"] for service in page],
        "nextToken": ids[start + max_results] if len(found) > start + max_results else None,
    }


@_patches(EC2Response, "create_vpc_endpoint")
def _create_vpc_endpoint_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    def create(response: Any) -> Any:
        service_name = response._get_param("ServiceName") or ""
        region = response.region
        databricks = databricks_service_kind(service_name, region) is not None
        if (
            service_name.startswith("com.amazonaws.vpce.")
            and not databricks
            and all(config.service_name != service_name for config in response.ec2_backend.configurations.values())
        ):
            raise InvalidServiceName(service_name)
        private_dns = response._get_bool_param("PrivateDnsEnabled")
        if databricks and private_dns:
            raise EC2ClientError("InvalidParameter", _PRIVATE_DNS_BEFORE_ACCEPTANCE)
        result = original(response)
        if databricks and private_dns is None:
            result.result["VpcEndpoint"].private_dns_enabled = False  # not moto's default of true
        return result

    # Idempotency first, as on EC2: a retry with a used token is answered from the token.
    return _create_vpc_endpoint_idempotent(self, create, settings)


@_patches(EC2Response, "modify_vpc_endpoint")
def _modify_vpc_endpoint_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    private_dns = self._get_bool_param("PrivateDnsEnabled")
    if private_dns is None:
        return original(self)
    endpoint = self.ec2_backend.get_vpc_end_point(self._get_param("VpcEndpointId"))  # NotFound first
    if private_dns and endpoint.state == "pendingAcceptance":
        raise EC2ClientError("InvalidParameter", _PRIVATE_DNS_BEFORE_ACCEPTANCE)
    result = original(self)
    if (endpoint.vpc_endpoint_type or "").lower() == "interface":
        endpoint.private_dns_enabled = private_dns
    return result


# --- rule 11: S3 requests arrive over TLS -------------------------------------------------------

# What AWS sees for a request to S3 over https (key names are case-insensitive in IAM).
_TRANSPORT = {"aws:securetransport": "true", "s3:tlsversion": "1.3"}
_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "NumericEquals": lambda actual, expected: actual == expected,
    "NumericLessThan": lambda actual, expected: actual < expected,
    "NumericLessThanEquals": lambda actual, expected: actual <= expected,
    "NumericGreaterThan": lambda actual, expected: actual > expected,
    "NumericGreaterThanEquals": lambda actual, expected: actual >= expected,
}


def _transport_condition(operator: str, actual: str, expected: Any) -> bool | None:
    """Whether `operator` holds for a transport key with value `actual`; None if not decided here."""
    base = operator.removesuffix("IfExists")  # the key always exists, so IfExists changes nothing
    values = [str(v).lower() for v in (expected if isinstance(expected, list) else [expected])]
    try:
        if base == "Bool":
            return actual in values
        if base == "Null":  # "true" asks for the key to be absent
            return "false" in values
        if base in _NUMERIC:
            return any(_NUMERIC[base](float(actual), float(v)) for v in values)
        if base == "NumericNotEquals":
            return all(float(actual) != float(v) for v in values)
    except ValueError:
        return None
    return None


def _over_https(statement: dict) -> dict | None:
    """The statement as it stands for an https request: None if a transport condition rules it out,
    else without the transport conditions it satisfies (the rest are left to moto)."""
    conditions = statement.get("Condition")
    if not isinstance(conditions, dict):
        return statement
    remaining: dict[str, Any] = {}
    for operator, keys in conditions.items():
        if not isinstance(keys, dict):
            remaining[operator] = keys
            continue
        left = {}
        for key, expected in keys.items():
            actual = _TRANSPORT.get(key.lower())
            holds = None if actual is None else _transport_condition(operator, actual, expected)
            if holds is False:
                return None
            if holds is None:
                left[key] = expected
        if left:
            remaining[operator] = left
    resolved = {k: v for k, v in statement.items() if k != "Condition"}
    if remaining:
        resolved["Condition"] = remaining
    return resolved


@_patches(FakeBucket, "get_permission")
def _bucket_permission(self: Any, original: Callable, settings: SandboxSettings, action: str, resource: str) -> Any:
    if self.policy is None:
        return original(self, action, resource)
    try:
        document = json.loads(self.policy)
        statements = document["Statement"]
    except (ValueError, KeyError, TypeError):
        return original(self, action, resource)
    listed = statements if isinstance(statements, list) else [statements]
    kept = [s for s in map(_over_https, listed) if s is not None]
    # What FakeBucket.get_permission does, on the statements that apply over https.
    return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(action, resource)
