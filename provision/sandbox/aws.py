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
   `deleted`, a transit gateway attachment that is not `deleted` or any network interface (interface
   VPC endpoints, NAT gateways, instances, transit gateway attachments, firewall endpoints).
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
    other describe calls and every TagSpecifications we use already work in moto, except the
    transit gateway ones: rule 14).
11. S3 requests are treated as made over https: bucket policy conditions on `aws:SecureTransport`
    (true) and `s3:TlsVersion` (1.3) are decided before moto evaluates the policy, so a statement
    that AWS would not apply over TLS (e.g. Deny s3:* when aws:SecureTransport is "false") no
    longer denies object writes and DeleteObjects here (moto ignores the `Bool` operator, so it
    applied that Deny to every request). Other conditions are left to moto as before.
12. Network interfaces of a NAT gateway that is `deleted`/`failed`, of an interface VPC endpoint that
    is gone, of a transit gateway attachment that is `deleted` (rule 14) or of a Network Firewall that
    is gone (rule 15) linger for `eni_release_seconds` after that moment (still listed by
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
14. Transit gateways (hub-and-spoke):
    - CreateTransitGateway: `pending` for `tgw_pending_seconds`, then `available`. The default route
      table exists only while DefaultRouteTableAssociation or DefaultRouteTablePropagation is enabled,
      and the options carry only the ids of the enabled ones (moto always makes one and names it in
      both). DeleteTransitGateway fails with IncorrectState "tgw-... has non-deleted VPC Attachments:
      tgw-attach-..." while any attachment is not `deleted`; otherwise `deleting` for
      `tgw_pending_seconds`, then `deleted` (still listed) with its route tables `deleted`. Unknown or
      deleted ids fail with InvalidTransitGatewayID.NotFound (moto: a 500).
    - CreateTransitGatewayVpcAttachment needs the gateway `available` (IncorrectState otherwise), its
      subnets in the VPC, at most one per zone (DuplicateSubnetsInSameZone), and no other non-deleted
      attachment of that VPC to that gateway. It is `pending` for `tgw_attachment_pending_seconds`,
      then `available`; each of its subnets gets a requester-managed `transit_gateway` network
      interface, so DeleteSubnet and DeleteVpc fail with DependencyViolation (rules 5 and 6) until the
      attachment is deleted and its interfaces are released (rule 12). Its TagSpecifications are kept
      (moto reads them under the wrong resource type). It is associated with (and propagates to) the
      default route table only when the gateway enables that. DeleteTransitGatewayVpcAttachment:
      `deleting` for `tgw_attachment_pending_seconds`, then `deleted` (still listed): its association
      and propagations go, static routes to it become blackholes, its interfaces are released.
    - TGW route tables: Associate / EnableTransitGatewayRouteTablePropagation need an `available`
      attachment of the same gateway (IncorrectState / InvalidTransitGatewayAttachmentID.NotFound);
      an attachment already associated with a route table fails with Resource.AlreadyAssociated.
      DisassociateTransitGatewayRouteTable works for every association (moto: only for ones it made
      by Associate). DeleteTransitGatewayRouteTable fails with IncorrectState while attachments are
      associated with it or it is the gateway's default route table. CreateTransitGatewayRoute to an
      attachment answers TransitGatewayAttachments as the list it is (moto: always empty) and refuses
      a destination the table already has (RouteAlreadyExists); DeleteTransitGatewayRoute of a route the
      table lacks fails with InvalidRoute.NotFound (moto: a 500); ReplaceTransitGatewayRoute (missing in
      moto) replaces or adds it. Tag filters work on DescribeTransitGateways (moto: a 500 with two tag
      filters), DescribeTransitGatewayVpcAttachments, DescribeTransitGatewayAttachments and
      DescribeTransitGatewayRouteTables (moto ignores them there).
    - VPC routes: CreateRoute / ReplaceRoute with TransitGatewayId fail with
      InvalidTransitGatewayID.NotFound unless the route table's VPC has an `available` attachment to
      that gateway (moto accepts any id, even an unknown one, and makes a route without a target).
      ReplaceRoute takes VpcEndpointId (a Gateway Load Balancer endpoint, e.g. a firewall's; moto
      ignores the parameter and leaves the route without a target).
    - DeleteVpc fails with DependencyViolation while a transit gateway attachment of the VPC is not
      `deleted`.
15. AWS Network Firewall: see network_firewall.py (its own rules), hooked in here: its requests are
    answered there, and its firewalls' states advance with this module's state machine.

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
    DuplicateTransitGatewayAttachmentError,
    EC2ClientError,
    InvalidNextToken,
    InvalidServiceName,
    ResourceAlreadyAssociatedError,
    RouteNotSupportedError,
)
from moto.ec2.models import EC2Backend, ec2_backends
from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend
from moto.ec2.models.transit_gateway_attachments import TransitGatewayVpcAttachment
from moto.ec2.models.transit_gateway_route_tables import TransitGatewayRelations
from moto.ec2.models.vpcs import MAX_NUMBER_OF_ENDPOINT_SERVICES_RESULTS
from moto.ec2.responses import EC2Response
from moto.ec2.utils import generic_filter
from moto.iam.access_control import IAMPolicy
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import FakeBucket
from moto.utilities.utils import str2bool

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
# name -> hook(EC2 backend, settings): more due transitions, run at the end of `_advance`.
_ADVANCE_HOOKS: dict[str, Callable[[Any, SandboxSettings], None]] = {}


def register_advance_hook(name: str, hook: Callable[[Any, SandboxSettings], None]) -> None:
    """Run `hook` wherever the lazy state machine advances an EC2 backend (e.g. network_firewall.py)."""
    _ADVANCE_HOOKS[name] = hook


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
            setattr(cls, name, _gated(fn, getattr(cls, name, None) or _not_implemented(name)))


def _not_implemented(name: str) -> Callable[..., Any]:
    """What moto does for an action it lacks, as the `original` of a patch that adds the action."""

    def missing(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"The {name} action has not been implemented")

    missing.__name__ = missing.__qualname__ = name
    return missing


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
        if nat.state == "pending" and (at := due(nat, settings.delay("nat_gateway_pending_seconds", nat.id))) is not None:
            if getattr(nat, "_sandbox_failure", None):
                _fail_nat(backend, nat, at)
            else:
                _enter(nat, "available", at)
        if nat.state == "failed" and (at := due(nat, settings.nat_gateway_failed_seconds)) is not None:
            _finish_nat_deletion(backend, nat, at)
        if nat.state == "deleting" and (at := due(nat, settings.delay("nat_gateway_deleting_seconds", nat.id))) is not None:
            _finish_nat_deletion(backend, nat, at)
    def pending_then_deleting(resources: dict[str, Any], delay: str, finish_deletion: Callable) -> None:
        """pending -> available and deleting -> finish_deletion, each once `delay` (a setting) has passed."""
        for resource in list(resources.values()):
            if not hasattr(resource, "_sandbox_since"):
                continue
            key = str(getattr(resource, "id", ""))
            if resource.state == "pending" and (at := due(resource, settings.delay(delay, key))) is not None:
                _enter(resource, "available", at)
            elif resource.state == "deleting" and (at := due(resource, settings.delay(delay, key + "/delete"))) is not None:
                finish_deletion(backend, resource, at)

    pending_then_deleting(backend.vpc_end_points, "vpc_endpoint_pending_seconds", _finish_endpoint_deletion)
    pending_then_deleting(backend.transit_gateways, "tgw_pending_seconds", _finish_tgw_deletion)
    pending_then_deleting(
        backend.transit_gateway_attachments, "tgw_attachment_pending_seconds", _finish_tgw_attachment_deletion
    )
    for hook in list(_ADVANCE_HOOKS.values()):
        hook(backend, settings)
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
        or any(
            getattr(att, "vpc_id", None) == vpc_id and att.state != "deleted"
            for att in self.transit_gateway_attachments.values()
        )
    )
    if blocked:
        raise DependencyViolationError(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
    return original(self, vpc_id)


@_patches(EC2Backend, "delete_subnet")
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


# --- rule 14: transit gateways ---------------------------------------------------------------------


def _split_filters(filters: Any, extra: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tag filters plus `extra`, applied here with generic_filter; the rest, left to moto)."""
    filters = filters or {}
    ours = {k: v for k, v in filters.items() if k.startswith("tag:") or k in ("tag-key", "tag-value", *extra)}
    return ours, {k: v for k, v in filters.items() if k not in ours}


def _invalid_state(resource_id: str) -> EC2ClientError:
    return EC2ClientError("IncorrectState", f"{resource_id} is in invalid state")


def _live_tgw(backend: Any, tgw_id: str | None) -> Any:
    tgw = backend.transit_gateways.get(tgw_id)
    if tgw is None or tgw.state == "deleted":
        raise EC2ClientError(
            "InvalidTransitGatewayID.NotFound", f"Transit Gateway {tgw_id} was deleted or does not exist."
        )
    return tgw


def _available_tgw(backend: Any, tgw_id: str | None) -> Any:
    tgw = _live_tgw(backend, tgw_id)
    if tgw.state != "available":
        raise _invalid_state(tgw.id)
    return tgw


def _live_tgw_attachment(backend: Any, attachment_id: str | None) -> Any:
    attachment = backend.transit_gateway_attachments.get(attachment_id)
    if attachment is None or attachment.state == "deleted":
        raise EC2ClientError(
            "InvalidTransitGatewayAttachmentID.NotFound",
            f"Transit Gateway Attachment {attachment_id} was deleted or does not exist.",
        )
    return attachment


def _live_tgw_route_table(backend: Any, table_id: str | None) -> Any:
    table = backend.transit_gateways_route_tables.get(table_id)
    if table is None or table.state == "deleted":
        raise EC2ClientError(
            "InvalidRouteTableID.NotFound", f"Transit Gateway Route Table {table_id} was deleted or does not exist."
        )
    return table


def _attachment_of_table(backend: Any, table: Any, attachment_id: str | None, available: bool = True) -> Any:
    """The attachment, which must belong to the table's gateway (AWS: as if it did not exist otherwise)."""
    attachment = _live_tgw_attachment(backend, attachment_id)
    if attachment.transit_gateway_id != table.transit_gateway_id:
        raise EC2ClientError(
            "InvalidTransitGatewayAttachmentID.NotFound",
            f"Transit Gateway Attachment {attachment_id} was deleted or does not exist.",
        )
    if available and attachment.state != "available":
        raise _invalid_state(attachment.id)
    return attachment


def _associate_tgw_route_table(backend: Any, attachment: Any, table: Any) -> None:
    backend.set_route_table_association(attachment.id, table.id)
    backend.set_attachment_association(attachment.id, table.id)
    attachment.transit_gateway_route_table = table  # what DescribeTransitGatewayAttachments shows


def _route_attachment_ids(route: dict[str, Any]) -> list[str]:
    listed = route.get("transitGatewayAttachments") or []
    listed = [listed] if isinstance(listed, dict) else listed
    return [entry.get("transitGatewayAttachmentId") for entry in listed]


def _finish_tgw_deletion(backend: Any, tgw: Any, since: float) -> None:
    for table in backend.transit_gateways_route_tables.values():
        if table.transit_gateway_id == tgw.id:
            table.state = "deleted"
    _enter(tgw, "deleted", since)


def _finish_tgw_attachment_deletion(backend: Any, attachment: Any, since: float) -> None:
    for table in backend.transit_gateways_route_tables.values():
        table.route_table_associations.pop(attachment.id, None)
        table.route_table_propagation = [
            p for p in table.route_table_propagation if p.transitGatewayAttachmentId != attachment.id
        ]
        for route in table.routes.values():
            if attachment.id in _route_attachment_ids(route):
                route["state"], route["transitGatewayAttachments"] = "blackhole", []
    backend.transit_gateway_associations.pop(attachment.id, None)
    backend.transit_gateway_propagations.pop(attachment.id, None)
    attachment._association_data, attachment.propagation, attachment.transit_gateway_route_table = {}, {}, None
    _release_enis(backend, getattr(attachment, "_sandbox_enis", []), (), since)
    _enter(attachment, "deleted", since)


@_patches(EC2Backend, "create_transit_gateway")
def _create_transit_gateway(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    description: str | None,
    options: dict[str, Any] | None = None,
    tags: list[dict[str, str]] | None = None,
) -> Any:
    tgw = original(self, description, options, tags)
    _enter(tgw, "pending")
    table = tgw.default_route_table
    association = tgw.options.get("DefaultRouteTableAssociation") == "enable"
    propagation = tgw.options.get("DefaultRouteTablePropagation") == "enable"
    if not association:
        tgw.options.pop("AssociationDefaultRouteTableId", None)
        table.default_association_route_table = False
    if not propagation:
        tgw.options.pop("PropagationDefaultRouteTableId", None)
        table.default_propagation_route_table = False
    if not (association or propagation):
        self.transit_gateways_route_tables.pop(table.id, None)
        tgw.default_route_table = None
    return tgw


@_patches(EC2Backend, "delete_transit_gateway")
def _delete_transit_gateway(self: Any, original: Callable, settings: SandboxSettings, transit_gateway_id: str) -> Any:
    tgw = _live_tgw(self, transit_gateway_id)
    if tgw.state == "deleting":
        return tgw
    attached = [
        att
        for att in self.transit_gateway_attachments.values()
        if att.transit_gateway_id == tgw.id and att.state != "deleted"
    ]
    if attached:
        kind = {"vpc": "VPC", "peering": "Transit Gateway Cross Region Peering", "vpn": "VPN"}.get(
            attached[0].resource_type, "Transit Gateway"
        )
        ids = ", ".join(att.id for att in attached)
        raise EC2ClientError("IncorrectState", f"{tgw.id} has non-deleted {kind} Attachments: {ids}.")
    _enter(tgw, "deleting")
    return tgw


@_patches(EC2Backend, "describe_transit_gateways")
def _describe_transit_gateways(
    self: Any, original: Callable, settings: SandboxSettings, filters: Any, transit_gateway_ids: list[str] | None
) -> list[Any]:
    ours, theirs = _split_filters(filters)
    return generic_filter(ours, original(self, theirs, transit_gateway_ids))


@_patches(EC2Backend, "create_transit_gateway_vpc_attachment")
def _create_transit_gateway_vpc_attachment(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateway_id: str,
    vpc_id: str,
    subnet_ids: list[str],
    tags: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> Any:
    tgw = _available_tgw(self, transit_gateway_id)
    self.get_vpc(vpc_id)  # InvalidVpcID.NotFound
    subnets = [self.get_subnet(subnet_id) for subnet_id in subnet_ids or []]  # InvalidSubnetID.NotFound
    if not subnets:
        raise EC2ClientError("MissingParameter", "The request must contain the parameter SubnetIds.")
    for subnet in subnets:
        if subnet.vpc_id != vpc_id:
            raise EC2ClientError("InvalidSubnetID.NotFound", f"Subnet {subnet.id} was deleted or does not exist.")
    zones = [subnet.availability_zone for subnet in subnets]
    if len(set(zones)) != len(zones):
        raise EC2ClientError("DuplicateSubnetsInSameZone", "Duplicate Subnets for same AZ")
    if any(
        getattr(att, "vpc_id", None) == vpc_id and att.transit_gateway_id == tgw.id and att.state != "deleted"
        for att in self.transit_gateway_attachments.values()
    ):
        raise DuplicateTransitGatewayAttachmentError(tgw.id)
    # Made here, not by moto: moto counts deleted attachments as duplicates and always associates the
    # attachment with the default route table, whatever the gateway's options say.
    attachment = TransitGatewayVpcAttachment(
        self, transit_gateway=tgw, vpc_id=vpc_id, subnet_ids=list(subnet_ids), tags=tags, options=options
    )
    attachment.transit_gateway_route_table = None
    self.transit_gateway_attachments[attachment.id] = attachment
    _enter(attachment, "pending")
    attachment._sandbox_enis = []
    for subnet in subnets:
        eni = self.create_network_interface(
            subnet, None, description=f"Network Interface for Transit Gateway Attachment {attachment.id}"
        )
        eni.interface_type, eni.requester_managed = "transit_gateway", True
        attachment._sandbox_enis.append(eni.id)
    if tgw.options.get("DefaultRouteTableAssociation") == "enable":
        table = self.transit_gateways_route_tables.get(tgw.options.get("AssociationDefaultRouteTableId"))
        if table is not None:
            _associate_tgw_route_table(self, attachment, table)
    if tgw.options.get("DefaultRouteTablePropagation") == "enable":
        table = self.transit_gateways_route_tables.get(tgw.options.get("PropagationDefaultRouteTableId"))
        if table is not None:
            self.set_route_table_propagation(attachment.id, table.id)
            self.set_attachment_propagation(attachment.id, table.id)
    return attachment


@_patches(EC2Response, "create_transit_gateway_vpc_attachment")
def _create_transit_gateway_vpc_attachment_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    result = original(self)
    tags = self._parse_tag_specification().get("transit-gateway-attachment", {})
    result.result["TransitGatewayVpcAttachment"].add_tags(tags)
    return result


@_patches(EC2Backend, "delete_transit_gateway_vpc_attachment")
def _delete_transit_gateway_vpc_attachment(
    self: Any, original: Callable, settings: SandboxSettings, transit_gateway_attachment_id: str
) -> Any:
    attachment = _live_tgw_attachment(self, transit_gateway_attachment_id)
    if attachment.state != "deleting":
        _enter(attachment, "deleting")
    return attachment


@_patches(EC2Backend, "describe_transit_gateway_vpc_attachments")
def _describe_transit_gateway_vpc_attachments(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateways_attachment_ids: list[str] | None = None,
    filters: Any = None,
) -> list[Any]:
    ours, theirs = _split_filters(filters)
    found = original(self, transit_gateways_attachment_ids=transit_gateways_attachment_ids, filters=theirs)
    return generic_filter(ours, found)


@_patches(EC2Backend, "describe_transit_gateway_attachments")
def _describe_transit_gateway_attachments(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateways_attachment_ids: list[str] | None = None,
    filters: Any = None,
) -> list[Any]:
    ours, theirs = _split_filters(filters, extra=("state",))  # moto ignores `state` here too
    found = original(self, transit_gateways_attachment_ids=transit_gateways_attachment_ids, filters=theirs)
    return generic_filter(ours, found)


@_patches(EC2Response, "create_transit_gateway_route_table")
def _create_transit_gateway_route_table_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    _available_tgw(self.ec2_backend, self._get_param("TransitGatewayId"))
    return original(self)


@_patches(EC2Backend, "get_all_transit_gateway_route_tables")
def _describe_transit_gateway_route_tables(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateway_route_table_ids: list[str] | None = None,
    filters: Any = None,
) -> list[Any]:
    ours, theirs = _split_filters(filters)
    return generic_filter(ours, original(self, transit_gateway_route_table_ids, theirs))


@_patches(EC2Backend, "delete_transit_gateway_route_table")
def _delete_transit_gateway_route_table(
    self: Any, original: Callable, settings: SandboxSettings, transit_gateway_route_table_id: str
) -> Any:
    table = _live_tgw_route_table(self, transit_gateway_route_table_id)
    tgw = self.transit_gateways.get(table.transit_gateway_id)
    options = tgw.options if tgw is not None and tgw.state != "deleted" else {}
    if table.id in (options.get("AssociationDefaultRouteTableId"), options.get("PropagationDefaultRouteTableId")):
        raise EC2ClientError("IncorrectState", f"{table.id} is set as default association route table for {tgw.id}")
    if table.route_table_associations:
        raise EC2ClientError("IncorrectState", f"{table.id} has associated attachments")
    return original(self, transit_gateway_route_table_id)


@_patches(EC2Backend, "associate_transit_gateway_route_table")
def _associate_transit_gateway_route_table(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateway_attachment_id: str,
    transit_gateway_route_table_id: str,
) -> Any:
    table = _live_tgw_route_table(self, transit_gateway_route_table_id)
    attachment = _attachment_of_table(self, table, transit_gateway_attachment_id)
    if attachment.transit_gateway_route_table is not None:
        raise EC2ClientError(
            "Resource.AlreadyAssociated",
            f"Transit Gateway Attachment {attachment.id} is already associated to a route table.",
        )
    relation = original(
        self,
        transit_gateway_attachment_id=transit_gateway_attachment_id,
        transit_gateway_route_table_id=transit_gateway_route_table_id,
    )
    attachment.transit_gateway_route_table = table
    return relation


@_patches(EC2Backend, "disassociate_transit_gateway_route_table")
def _disassociate_transit_gateway_route_table(
    self: Any, original: Callable, settings: SandboxSettings, tgw_attach_id: str, tgw_rt_id: str
) -> Any:
    table = _live_tgw_route_table(self, tgw_rt_id)
    attachment = _attachment_of_table(self, table, tgw_attach_id, available=False)
    if tgw_attach_id not in table.route_table_associations:
        raise EC2ClientError(
            "InvalidParameterValue",
            f"Transit Gateway Attachment {tgw_attach_id} is not associated with route table {tgw_rt_id}.",
        )
    # moto's own disassociation knows only associations made by AssociateTransitGatewayRouteTable.
    relation = self.transit_gateway_associations.pop(tgw_attach_id, None) or TransitGatewayRelations(
        self, tgw_attach_id, tgw_rt_id, state="associated"
    )
    relation.state = "disassociated"
    del table.route_table_associations[tgw_attach_id]
    attachment._association_data, attachment.transit_gateway_route_table = {}, None
    return relation


def _propagates(table: Any, attachment_id: str) -> bool:
    return any(p.transitGatewayAttachmentId == attachment_id for p in table.route_table_propagation)


@_patches(EC2Backend, "enable_transit_gateway_route_table_propagation")
def _enable_transit_gateway_route_table_propagation(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateway_attachment_id: str,
    transit_gateway_route_table_id: str,
) -> Any:
    table = _live_tgw_route_table(self, transit_gateway_route_table_id)
    _attachment_of_table(self, table, transit_gateway_attachment_id)
    if _propagates(table, transit_gateway_attachment_id):
        raise EC2ClientError(
            "TransitGatewayRouteTablePropagation.Duplicate",
            f"Propagation {transit_gateway_attachment_id} already exists in Transit Gateway Route Table {table.id}.",
        )
    return original(
        self,
        transit_gateway_attachment_id=transit_gateway_attachment_id,
        transit_gateway_route_table_id=transit_gateway_route_table_id,
    )


@_patches(EC2Backend, "disable_transit_gateway_route_table_propagation")
def _disable_transit_gateway_route_table_propagation(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateway_attachment_id: str,
    transit_gateway_route_table_id: str,
) -> Any:
    table = _live_tgw_route_table(self, transit_gateway_route_table_id)
    _attachment_of_table(self, table, transit_gateway_attachment_id, available=False)
    if not _propagates(table, transit_gateway_attachment_id):
        raise EC2ClientError(
            "InvalidParameterValue",
            f"Propagation {transit_gateway_attachment_id} does not exist in Transit Gateway Route Table {table.id}.",
        )
    # A default-table propagation has no relation in moto's book, which moto's disabling expects.
    self.transit_gateway_propagations.setdefault(
        transit_gateway_attachment_id,
        TransitGatewayRelations(self, transit_gateway_attachment_id, table.id, state="enabled"),
    )
    return original(
        self,
        transit_gateway_attachment_id=transit_gateway_attachment_id,
        transit_gateway_route_table_id=transit_gateway_route_table_id,
    )


@_patches(EC2Backend, "create_transit_gateway_route")
def _create_transit_gateway_route(
    self: Any,
    original: Callable,
    settings: SandboxSettings,
    transit_gateway_route_table_id: str,
    destination_cidr_block: str,
    transit_gateway_attachment_id: str | None = None,
    blackhole: bool = False,
) -> dict[str, Any]:
    table = _live_tgw_route_table(self, transit_gateway_route_table_id)
    if destination_cidr_block in table.routes:
        raise EC2ClientError(
            "RouteAlreadyExists",
            f"Route {destination_cidr_block} already exists in Transit Gateway Route Table {table.id}.",
        )
    if not blackhole:
        if not transit_gateway_attachment_id:
            raise EC2ClientError(
                "MissingParameter", "The request must contain the parameter TransitGatewayAttachmentId or Blackhole."
            )
        _attachment_of_table(self, table, transit_gateway_attachment_id, available=False)
    route = original(
        self,
        transit_gateway_route_table_id=transit_gateway_route_table_id,
        destination_cidr_block=destination_cidr_block,
        transit_gateway_attachment_id=None if blackhole else transit_gateway_attachment_id,
        blackhole=blackhole,
    )
    # moto keeps the one attachment as a dict, which the response shape (a list) drops.
    single = route.get("transitGatewayAttachments")
    route["transitGatewayAttachments"] = [single] if isinstance(single, dict) else list(single or [])
    return route


@_patches(EC2Backend, "delete_transit_gateway_route")
def _delete_transit_gateway_route(
    self: Any, original: Callable, settings: SandboxSettings, transit_gateway_route_table_id: str, destination_cidr_block: str
) -> dict[str, Any]:
    # moto raises KeyError (a 500) for a route that is not there; AWS answers InvalidRoute.NotFound, which is
    # what a teardown repeating a delete that a killed run already made must meet.
    table = _live_tgw_route_table(self, transit_gateway_route_table_id)
    if destination_cidr_block not in table.routes:
        raise EC2ClientError(
            "InvalidRoute.NotFound",
            f"Route {destination_cidr_block} does not exist in Transit Gateway Route Table {table.id}.",
        )
    return original(
        self, transit_gateway_route_table_id=transit_gateway_route_table_id, destination_cidr_block=destination_cidr_block
    )


@_patches(EC2Response, "replace_transit_gateway_route")
def _replace_transit_gateway_route(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    backend = self.ec2_backend
    table = _live_tgw_route_table(backend, self._get_param("TransitGatewayRouteTableId"))
    destination = self._get_param("DestinationCidrBlock")
    blackhole = bool(str2bool(self._get_param("Blackhole")))
    attachment_id = self._get_param("TransitGatewayAttachmentId")
    if not blackhole:
        _attachment_of_table(backend, table, attachment_id, available=False)  # before anything changes
    previous = table.routes.pop(destination, None)  # replaced, or added if the table lacked it
    try:
        route = backend.create_transit_gateway_route(
            transit_gateway_route_table_id=table.id,
            destination_cidr_block=destination,
            transit_gateway_attachment_id=attachment_id,
            blackhole=blackhole,
        )
    except EC2ClientError:
        if previous is not None:
            table.routes[destination] = previous
        raise
    return ActionResult({"Route": route})


def _check_route_to_tgw(backend: Any, route_table_id: str, tgw_id: str) -> None:
    """EC2 knows a transit gateway as a route target only once the table's VPC is attached to it."""
    table = backend.get_route_table(route_table_id)  # InvalidRouteTableID.NotFound first
    tgw = backend.transit_gateways.get(tgw_id)
    attached = (
        tgw is not None
        and tgw.state == "available"
        and any(
            att.transit_gateway_id == tgw_id
            and getattr(att, "vpc_id", None) == table.vpc_id
            and att.state == "available"
            for att in backend.transit_gateway_attachments.values()
        )
    )
    if not attached:
        raise EC2ClientError("InvalidTransitGatewayID.NotFound", f"The transitGateway ID '{tgw_id}' does not exist.")


@_patches(EC2Response, "create_route")
def _create_route_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    tgw_id = self._get_param("TransitGatewayId")
    if tgw_id:
        _check_route_to_tgw(self.ec2_backend, self._get_param("RouteTableId"), tgw_id)
    return original(self)


@_patches(EC2Response, "replace_route")
def _replace_route_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    backend = self.ec2_backend
    table_id = self._get_param("RouteTableId")
    tgw_id, vpce_id = self._get_param("TransitGatewayId"), self._get_param("VpcEndpointId")
    if tgw_id:
        _check_route_to_tgw(backend, table_id, tgw_id)
    if vpce_id and backend.get_vpc_end_point(vpce_id).vpc_endpoint_type != "GatewayLoadBalancer":
        raise RouteNotSupportedError(vpce_id)  # as CreateRoute: Gateway Load Balancer endpoints only
    result = original(self)
    destination = (
        self._get_param("DestinationCidrBlock")
        or self._get_param("DestinationIpv6CidrBlock")
        or self._get_param("DestinationPrefixListId")
    )
    for route in backend.get_route_table(table_id).routes:
        if destination in (
            route.destination_cidr_block,
            route.destination_ipv6_cidr_block,
            getattr(route.destination_prefix_list, "id", None),
        ):
            route.vpc_endpoint_id = vpce_id or None  # moto ignores VpcEndpointId and keeps the old one
    return result


# Network Firewall (rule 15) registers its patch and its advance hook on import; it needs the machinery
# above, so it comes last.
from provision.sandbox import network_firewall as _network_firewall  # noqa: E402,F401
