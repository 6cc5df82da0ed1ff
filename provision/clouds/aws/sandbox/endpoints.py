"""VPC endpoints and Databricks PrivateLink endpoint services (rules 9, 13 and 36).

9. VPC endpoints (every type) are `pending` for `vpc_endpoint_pending_seconds`, then `available`.
   DeleteVpcEndpoints makes them `deleting` for the same number of seconds; then their network interfaces
   and gateway routes are removed and they are gone from DescribeVpcEndpoints (moto would list them as
   `deleted` forever). An endpoint whose service requires acceptance (rule 13) is `pendingAcceptance`
   instead of `pending` until `accept_vpc_endpoint` is called, and only then goes `pending` ->
   `available`; `set_endpoint_acceptance_policy` lets tests hold other endpoints the same way.
   Firewall endpoints (network_firewall) have no timer here: the firewall drives them.
13. Databricks PrivateLink endpoint services (back-end PrivateLink, the "apply twice" problem):
   - DescribeVpcEndpointServices knows every service of provision/regions.py in its own region (listed,
     or asked for by ServiceNames / service-name filter): Interface, AcceptanceRequired true,
     ManagesVpcEndpoints false, Owner 414351767826 (Databricks), the region's zones, a private DNS name
     (`<region>.privatelink.cloud.databricks.com` for the workspace service,
     `tunnel.privatelink.<region>.cloud.databricks.com` for the relay) and ServiceId = the vpce-svc-...
     part of the name. Other regions do not know them, as on AWS. The service-name and tag filters work
     (moto 5.2.5 fails them with a KeyError, i.e. a 500).
   - CreateVpcEndpoint to a `com.amazonaws.vpce.<region>.vpce-svc-...` name that is neither a Databricks
     service of the request's region nor an endpoint service made in moto fails with InvalidServiceName
     (moto accepts any name; AWS-owned `com.amazonaws.<region>.<svc>` names are still left to moto).
   - An endpoint to a Databricks service stays `pendingAcceptance` until the provider accepts it
     (`accept_vpc_endpoint`, which the Databricks emulator calls when the endpoint is registered), then
     goes `pending` -> `available` after `vpc_endpoint_pending_seconds` (rule 9).
   - Private DNS before acceptance is refused: CreateVpcEndpoint with PrivateDnsEnabled=true to a service
     that requires acceptance, and ModifyVpcEndpoint with PrivateDnsEnabled=true on an endpoint in
     `pendingAcceptance`, fail with InvalidParameter "Private DNS can only be enabled after the endpoint
     connection is accepted by the service owner.". PrivateDnsEnabled omitted on create means false for
     such a service (moto, like AWS's documented default, makes it true; that default cannot hold where
     private DNS cannot be enabled yet). Endpoints to AWS services keep moto's default (true).
   - ModifyVpcEndpoint applies PrivateDnsEnabled to interface endpoints (moto ignores the parameter).
36. Endpoint policies: a PolicyDocument given on create or modify is stored and returned as given, for gateway and
   interface endpoints alike (moto 5.2.5 already does; an endpoint made without one has the full-access policy).
   ModifyVpcEndpoint with ResetPolicy=true restores that full-access policy (moto ignores ResetPolicy).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moto.ec2.exceptions import EC2ClientError, InvalidNextToken, InvalidServiceName
from moto.ec2.models import EC2Backend, ec2_backends
from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend
from moto.ec2.models.vpcs import MAX_NUMBER_OF_ENDPOINT_SERVICES_RESULTS, VPCEndPoint
from moto.ec2.responses import EC2Response

from provision.clouds.aws.sandbox.idempotency import idempotent
from provision.clouds.aws.sandbox.lifecycle import (
    advance,
    advance_hook,
    enter,
    pending_then_deleting,
    release_enis,
)
from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.patching import STATE_LOCK, patch
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.regions import PRIVATELINK_SERVICES
from provision.sandbox.settings import SANDBOX_AWS_ACCOUNT_ID, SandboxSettings

_PRIVATE_DNS_BEFORE_ACCEPTANCE = (
    "Private DNS can only be enabled after the endpoint connection is accepted by the service owner."
)

# --- acceptance by the service provider (the API the Databricks emulator uses) --------------------------

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
    with STATE_LOCK:
        endpoint = ec2_backends[account_id][region].get_vpc_end_point(vpce_id)
        if endpoint.state == "pendingAcceptance":
            enter(endpoint, "pending")


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
    with STATE_LOCK:
        backend = ec2_backends[account_id].get(region)  # never instantiates a region (default VPC)
        if backend is None:
            return None
        if settings is not None:
            advance(backend, settings)
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


# --- rule 9: lifecycle ------------------------------------------------------------------------------------


@advance_hook("vpc_endpoints")
def _advance(backend: Any, settings: SandboxSettings, now: float) -> None:
    pending_then_deleting(backend, backend.vpc_end_points, settings, now, "vpc_endpoint_pending_seconds", _finish_deletion)


def _finish_deletion(backend: Any, endpoint: Any, since: float) -> None:
    if (endpoint.vpc_endpoint_type or "").lower() == "interface":
        release_enis(backend, endpoint.network_interface_ids, endpoint.security_group_ids, since, owner=endpoint.id)
    elif endpoint.destination_prefix_list_id:
        for route_table_id in endpoint.route_table_ids:
            try:
                backend.delete_route(route_table_id, None, destination_prefix_list_id=endpoint.destination_prefix_list_id)
            except EC2ClientError:
                pass  # route table or route already deleted
    endpoint.state = "deleted"
    backend.vpc_end_points.pop(endpoint.id, None)


@patch(EC2Backend, "create_vpc_endpoint")
def _create_vpc_endpoint(self: Any, original: Callable, settings: SandboxSettings, *args: Any, **kwargs: Any) -> Any:
    endpoint = original(self, *args, **kwargs)
    enter(endpoint, "pendingAcceptance" if _needs_acceptance(endpoint) else "pending")
    return endpoint


@patch(EC2Backend, "delete_vpc_endpoints")
def _delete_vpc_endpoints(self: Any, original: Callable, settings: SandboxSettings, vpce_ids: list[str] | None = None) -> None:
    # Network interfaces and routes stay until the endpoint is gone, as on AWS.
    for vpce_id in vpce_ids or []:
        endpoint = self.vpc_end_points.get(vpce_id)
        if endpoint is not None and endpoint.state not in ("deleting", "deleted"):
            enter(endpoint, "deleting")


# --- rule 13: Databricks endpoint services --------------------------------------------------------------


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


@patch(EC2Backend, "describe_vpc_endpoint_services")
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
        found += original(self, asked_theirs, filters, MAX_NUMBER_OF_ENDPOINT_SERVICES_RESULTS, None, region)[
            "servicesDetails"
        ]
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


_create_vpc_endpoint_idempotent = idempotent("VpcEndpoint", "vpc_end_points")


@patch(EC2Response, "create_vpc_endpoint")
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

    # Idempotency first, as on EC2 (rule 1): a retry with a used token is answered from the token.
    return _create_vpc_endpoint_idempotent(self, create, settings)


@patch(EC2Response, "modify_vpc_endpoint")
def _modify_vpc_endpoint_request(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    if self._get_bool_param("ResetPolicy"):
        # Rule 36: back to the full-access policy an endpoint starts with (moto ignores ResetPolicy).
        endpoint = self.ec2_backend.get_vpc_end_point(self._get_param("VpcEndpointId"))
        endpoint.policy_document = json.dumps(VPCEndPoint.DEFAULT_POLICY)
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


# --- inventory (listing.py) ------------------------------------------------------------------------


@lists("vpc_endpoint", owned=True)
def _list_vpc_endpoints(clients: Clients) -> list[dict]:
    # Firewall endpoints are the firewall's own (requester-managed); they are counted with it.
    return [
        e for e in clients("ec2").describe_vpc_endpoints()["VpcEndpoints"]
        if e["State"] not in ("deleted",) and e.get("VpcEndpointType") != "GatewayLoadBalancer"
    ]
