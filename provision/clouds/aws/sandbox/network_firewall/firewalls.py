"""Network Firewall firewalls, their VPC endpoints, and tags (rules 5 to 8 of the package docstring)."""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.vpcs import VPCEndPoint
from moto.ec2.utils import random_vpc_ep_id

from provision.clouds.aws.sandbox.lifecycle import advance_hook, release_enis
from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.network_firewall.service import (
    STORE_KEY,
    Firewall,
    InvalidOperation,
    InvalidRequest,
    Request,
    Resource,
    ResourceNotFound,
    Store,
    check_token,
    find,
    operation,
    paginate,
    tags_of,
    unique_name,
)
from provision.sandbox.settings import SandboxSettings

# --- firewalls and their endpoints (rules 5, 6, 7) -------------------------------------------------------


def _subnets_of(req: Request, vpc_id: str, mappings: list[dict[str, Any]]) -> list[Any]:
    if not mappings:
        raise InvalidRequest("SubnetMappings must name at least one subnet.")
    subnets = []
    for mapping in mappings:
        try:
            subnet = req.backend.get_subnet(mapping["SubnetId"])
        except EC2ClientError:
            raise InvalidRequest(f"Subnet {mapping['SubnetId']} does not exist.") from None
        if subnet.vpc_id != vpc_id:
            raise InvalidRequest(f"Subnet {subnet.id} is not in VPC {vpc_id}.")
        subnets.append(subnet)
    zones = [subnet.availability_zone for subnet in subnets]
    if len(set(zones)) != len(zones):
        raise InvalidRequest("A firewall takes at most one subnet per Availability Zone.")
    return subnets


def _make_endpoint(backend: Any, firewall: Firewall, subnet: Any, service_name: str) -> str:
    """A GatewayLoadBalancer-type VPC endpoint with its network interface in the subnet."""
    vpce_id = random_vpc_ep_id()
    eni = backend.create_network_interface(subnet, None, description=f"VPC Endpoint Interface {vpce_id}")
    eni.interface_type = "gateway_load_balancer_endpoint"
    eni.requester_managed = True
    endpoint = VPCEndPoint(
        backend, vpce_id, firewall.vpc_id, service_name, "GatewayLoadBalancer", None, [],
        subnet_ids=[subnet.id], network_interface_ids=[eni.id], dns_entries=[], private_dns_enabled=False,
    )
    endpoint.policy_document = None  # Gateway Load Balancer endpoints have no endpoint policy
    endpoint.requester_managed = True  # managed by Network Firewall, as DescribeVpcEndpoints shows on AWS
    endpoint.state = "pending"  # no _sandbox_since: endpoints.py's lifecycle leaves it to the firewall
    endpoint._sandbox_firewall = firewall.arn
    backend.vpc_end_points[vpce_id] = endpoint
    return vpce_id


def _set_endpoint_state(backend: Any, firewall: Firewall, state: str) -> None:
    for _subnet_id, vpce_id in firewall.endpoints.values():
        endpoint = backend.vpc_end_points.get(vpce_id)
        if endpoint is not None:
            endpoint.state = state


def _firewall_document(firewall: Firewall) -> dict[str, Any]:
    document: dict[str, Any] = {
        "FirewallName": firewall.name,
        "FirewallArn": firewall.arn,
        "FirewallId": firewall.id,
        "FirewallPolicyArn": firewall.policy_arn,
        "VpcId": firewall.vpc_id,
        "SubnetMappings": [{"SubnetId": subnet_id, "IPAddressType": "IPV4"} for subnet_id in firewall.subnet_ids],
        "DeleteProtection": firewall.delete_protection,
        "SubnetChangeProtection": firewall.subnet_change_protection,
        "FirewallPolicyChangeProtection": firewall.policy_change_protection,
        "Tags": firewall.tags,
    }
    if firewall.description is not None:
        document["Description"] = firewall.description
    return document


def _firewall_status(store: Store, firewall: Firewall) -> dict[str, Any]:
    if firewall.status == "PROVISIONING":
        return {"Status": "PROVISIONING", "ConfigurationSyncStateSummary": "PENDING", "SyncStates": {}}
    policy = store.policies.get(firewall.policy_arn)
    config = {}
    if policy is not None:
        config[policy.arn] = {"SyncStatus": "IN_SYNC", "UpdateToken": policy.token}
        for reference in policy.document.get("StatefulRuleGroupReferences") or []:
            group = store.rule_groups.get(reference["ResourceArn"])
            if group is not None:
                config[group.arn] = {"SyncStatus": "IN_SYNC", "UpdateToken": group.token}
    attachment_status = "READY" if firewall.status == "READY" else "DELETING"
    return {
        "Status": firewall.status,
        "ConfigurationSyncStateSummary": "IN_SYNC",
        "SyncStates": {
            zone: {
                "Attachment": {"SubnetId": subnet_id, "EndpointId": vpce_id, "Status": attachment_status},
                "Config": config,
            }
            for zone, (subnet_id, vpce_id) in sorted(firewall.endpoints.items())
        },
    }


def _find_firewall(req: Request) -> Firewall:
    p = req.params
    return find(
        req.store.firewalls, p.get("FirewallArn"), p.get("FirewallName"), lambda n: req.arn("firewall", n), "firewall"
    )


def _routes_to(backend: Any, endpoint_ids: set[str]) -> list[str]:
    """'rtb-...: <destination> -> vpce-...' for every route whose target is one of the endpoints."""
    found = []
    for table in backend.route_tables.values():
        for route in table.routes:
            target = route.vpc_endpoint_id or getattr(route.gateway, "id", None)
            if target in endpoint_ids:
                destination = (
                    route.destination_cidr_block
                    or route.destination_ipv6_cidr_block
                    or getattr(route.destination_prefix_list, "id", None)
                )
                found.append(f"{table.id}: {destination} -> {target}")
    return found


@operation("CreateFirewall")
def _create_firewall(req: Request) -> dict[str, Any]:
    p = req.params
    name = p["FirewallName"]
    arn = req.arn("firewall", name)
    unique_name(req.store.firewalls, arn, "firewall", name)
    if p["FirewallPolicyArn"] not in req.store.policies:
        raise InvalidRequest(f"The firewall policy {p['FirewallPolicyArn']} does not exist.")
    vpc_id = p.get("VpcId")
    if not vpc_id or p.get("TransitGatewayId"):
        raise InvalidRequest("The sandbox models VPC firewalls only: give VpcId and SubnetMappings.")
    if vpc_id not in req.backend.vpcs:
        raise InvalidRequest(f"The VPC {vpc_id} does not exist.")
    subnets = _subnets_of(req, vpc_id, p.get("SubnetMappings") or [])
    firewall = Firewall(
        name=name,
        arn=arn,
        description=p.get("Description"),
        tags=tags_of(p),
        policy_arn=p["FirewallPolicyArn"],
        vpc_id=vpc_id,
        subnet_ids=[subnet.id for subnet in subnets],
        delete_protection=p.get("DeleteProtection", True),
        subnet_change_protection=p.get("SubnetChangeProtection", True),
        policy_change_protection=p.get("FirewallPolicyChangeProtection", True),
    )
    service_name = f"com.amazonaws.vpce.{req.backend.region_name}.vpce-svc-{secrets.token_hex(9)[:17]}"
    for subnet in subnets:
        firewall.endpoints[subnet.availability_zone] = (
            subnet.id, _make_endpoint(req.backend, firewall, subnet, service_name)
        )
    req.store.firewalls[arn] = firewall
    return {"Firewall": _firewall_document(firewall), "FirewallStatus": _firewall_status(req.store, firewall)}


@operation("DescribeFirewall")
def _describe_firewall(req: Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    return {
        "UpdateToken": firewall.token,
        "Firewall": _firewall_document(firewall),
        "FirewallStatus": _firewall_status(req.store, firewall),
    }


@operation("ListFirewalls")
def _list_firewalls(req: Request) -> dict[str, Any]:
    vpc_ids = set(req.params.get("VpcIds") or [])
    firewalls = sorted(
        (fw for fw in req.store.firewalls.values() if not vpc_ids or fw.vpc_id in vpc_ids), key=lambda fw: fw.name
    )
    page, token = paginate(firewalls, req.params)
    result: dict[str, Any] = {"Firewalls": [{"FirewallName": fw.name, "FirewallArn": fw.arn} for fw in page]}
    if token:
        result["NextToken"] = token
    return result


@operation("DeleteFirewall")
def _delete_firewall(req: Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    if firewall.status != "DELETING":
        if firewall.delete_protection:
            raise InvalidOperation(
                f"Firewall {firewall.name} has DeleteProtection enabled; disable it with "
                "UpdateFirewallDeleteProtection before deleting the firewall."
            )
        routes = _routes_to(req.backend, {vpce_id for _subnet, vpce_id in firewall.endpoints.values()})
        if routes:
            raise InvalidOperation(
                f"Firewall {firewall.name} is still in use: route tables route traffic to its endpoints "
                f"({'; '.join(routes)}). Remove those routes before deleting the firewall."
            )
        firewall.status, firewall.since = "DELETING", time.monotonic()
        firewall.changed()
        _set_endpoint_state(req.backend, firewall, "deleting")
    return {"Firewall": _firewall_document(firewall), "FirewallStatus": _firewall_status(req.store, firewall)}


@operation("UpdateFirewallDeleteProtection")
def _update_firewall_delete_protection(req: Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    if req.params.get("UpdateToken") is not None:
        check_token(firewall, req.params["UpdateToken"], "firewall")
    firewall.delete_protection = req.params["DeleteProtection"]
    firewall.changed()
    return {
        "FirewallArn": firewall.arn,
        "FirewallName": firewall.name,
        "DeleteProtection": firewall.delete_protection,
        "UpdateToken": firewall.token,
    }


@operation("UpdateFirewallPolicyChangeProtection")
def _update_firewall_policy_change_protection(req: Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    if req.params.get("UpdateToken") is not None:
        check_token(firewall, req.params["UpdateToken"], "firewall")
    firewall.policy_change_protection = req.params["FirewallPolicyChangeProtection"]
    firewall.changed()
    return {
        "FirewallArn": firewall.arn,
        "FirewallName": firewall.name,
        "FirewallPolicyChangeProtection": firewall.policy_change_protection,
        "UpdateToken": firewall.token,
    }


@operation("AssociateFirewallPolicy")
def _associate_firewall_policy(req: Request) -> dict[str, Any]:
    """Rule 10: the firewall keeps its ARN and endpoints and takes the other policy, unless its policy-change
    protection is on (TRUE unless turned off) or it is being deleted."""
    firewall = _find_firewall(req)
    if req.params.get("UpdateToken") is not None:
        check_token(firewall, req.params["UpdateToken"], "firewall")
    policy_arn = req.params["FirewallPolicyArn"]
    if policy_arn not in req.store.policies:
        raise ResourceNotFound(f"The firewall policy {policy_arn} does not exist.")
    if firewall.status == "DELETING":
        raise InvalidOperation(f"Firewall {firewall.name} is being deleted.")
    if firewall.policy_change_protection:
        raise InvalidOperation(
            f"Firewall {firewall.name} has FirewallPolicyChangeProtection enabled; disable it with "
            "UpdateFirewallPolicyChangeProtection before associating another firewall policy."
        )
    firewall.policy_arn = policy_arn
    firewall.changed()
    return {
        "FirewallArn": firewall.arn,
        "FirewallName": firewall.name,
        "FirewallPolicyArn": firewall.policy_arn,
        "UpdateToken": firewall.token,
    }


@operation("DescribeLoggingConfiguration")
def _describe_logging_configuration(req: Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    return {"FirewallArn": firewall.arn, "LoggingConfiguration": firewall.logging}


@operation("UpdateLoggingConfiguration")
def _update_logging_configuration(req: Request) -> dict[str, Any]:
    firewall = _find_firewall(req)
    firewall.logging = req.params.get("LoggingConfiguration") or {"LogDestinationConfigs": []}
    return {"FirewallArn": firewall.arn, "FirewallName": firewall.name, "LoggingConfiguration": firewall.logging}


@advance_hook("network_firewall")
def _advance(backend: Any, settings: SandboxSettings, now: float) -> None:
    """Apply the firewalls' due transitions (run by lifecycle.advance, under patching.STATE_LOCK)."""
    store = backend.__dict__.get(STORE_KEY)
    if store is None:
        return
    for firewall in list(store.firewalls.values()):
        if firewall.status == "PROVISIONING" and now >= (at := firewall.since + settings.delay("firewall_provisioning_seconds", firewall.arn)):
            firewall.status, firewall.since = "READY", at
            _set_endpoint_state(backend, firewall, "available")
        if firewall.status == "DELETING" and now >= (at := firewall.since + settings.delay("firewall_deleting_seconds", firewall.arn)):
            for _subnet_id, vpce_id in firewall.endpoints.values():
                endpoint = backend.vpc_end_points.pop(vpce_id, None)
                if endpoint is not None:
                    endpoint.state = "deleted"
                    release_enis(backend, endpoint.network_interface_ids, (), at)
            del store.firewalls[firewall.arn]



# --- tags (rule 8) --------------------------------------------------------------------------------------


def _tagged(req: Request) -> Resource:
    arn = req.params.get("ResourceArn")
    resource = req.store.resources().get(arn)  # type: ignore[arg-type]
    if resource is None:
        raise ResourceNotFound(f"The resource {arn} does not exist.")
    return resource


@operation("TagResource")
def _tag_resource(req: Request) -> dict[str, Any]:
    resource = _tagged(req)
    merged = {tag["Key"]: tag["Value"] for tag in itertools.chain(resource.tags, req.params.get("Tags") or [])}
    resource.tags = [{"Key": k, "Value": v} for k, v in merged.items()]
    return {}


@operation("UntagResource")
def _untag_resource(req: Request) -> dict[str, Any]:
    resource = _tagged(req)
    removed = set(req.params.get("TagKeys") or [])
    resource.tags = [tag for tag in resource.tags if tag["Key"] not in removed]
    return {}


@operation("ListTagsForResource")
def _list_tags_for_resource(req: Request) -> dict[str, Any]:
    return {"Tags": list(_tagged(req).tags)}


# --- inventory (listing.py) ------------------------------------------------------------------------


@lists("firewall")
def _list_firewalls(clients: Clients) -> list[dict]:
    return clients("network-firewall").list_firewalls()["Firewalls"]
