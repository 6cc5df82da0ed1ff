"""Network Firewall's plumbing: the service's errors, the state kept per EC2 backend, and the dispatch of
each request to the `OPERATIONS` registry (the rules live in policies.py and firewalls.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.networkfirewall.responses import NetworkFirewallResponse

from provision.clouds.aws.sandbox.lifecycle import advance
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings

STORE_KEY = "_sandbox_network_firewall"


# --- errors (moto serializes them as the service does: HTTP 400, {"__type": ..., "Message": ...}) ----


class ResourceNotFound(ServiceException):
    code = "ResourceNotFoundException"


class InvalidRequest(ServiceException):
    code = "InvalidRequestException"


class InvalidOperation(ServiceException):
    code = "InvalidOperationException"


class InvalidToken(ServiceException):
    code = "InvalidTokenException"


class UnsupportedOperation(ServiceException):
    code = "UnsupportedOperationException"


# --- state -------------------------------------------------------------------------------------------


def new_token() -> str:
    return str(uuid.uuid4())


@dataclass
class Resource:
    name: str
    arn: str
    description: str | None
    tags: list[dict[str, str]]
    id: str = field(default_factory=new_token)
    token: str = field(default_factory=new_token)
    modified: datetime = field(default_factory=utcnow)

    def changed(self) -> None:
        self.token = new_token()
        self.modified = utcnow()


@dataclass
class RuleGroup(Resource):
    type: str = "STATEFUL"
    capacity: int = 0
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Policy(Resource):
    document: dict[str, Any] = field(default_factory=dict)


@dataclass
class Firewall(Resource):
    policy_arn: str = ""
    vpc_id: str = ""
    subnet_ids: list[str] = field(default_factory=list)
    delete_protection: bool = True
    subnet_change_protection: bool = True
    policy_change_protection: bool = True
    status: str = "PROVISIONING"
    since: float = field(default_factory=time.monotonic)
    # zone -> (subnet id, VPC endpoint id)
    endpoints: dict[str, tuple[str, str]] = field(default_factory=dict)
    logging: dict[str, Any] = field(default_factory=lambda: {"LogDestinationConfigs": []})


@dataclass
class Store:
    rule_groups: dict[str, RuleGroup] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    firewalls: dict[str, Firewall] = field(default_factory=dict)

    def resources(self) -> dict[str, Resource]:
        return {**self.rule_groups, **self.policies, **self.firewalls}


def store_of(backend: Any) -> Store:
    return backend.__dict__.setdefault(STORE_KEY, Store())


@dataclass
class Request:
    params: dict[str, Any]
    backend: Any  # the EC2 backend of the request's account and region
    settings: SandboxSettings

    @property
    def store(self) -> Store:
        return store_of(self.backend)

    def arn(self, kind: str, name: str) -> str:
        b = self.backend
        return f"arn:{b.partition}:network-firewall:{b.region_name}:{b.account_id}:{kind}/{name}"


# --- dispatch ------------------------------------------------------------------------------------------

OPERATIONS: dict[str, Callable[[Request], dict[str, Any]]] = {}


def operation(name: str) -> Callable[[Callable[[Request], dict[str, Any]]], Callable[[Request], dict[str, Any]]]:
    def register(fn: Callable[[Request], dict[str, Any]]) -> Callable[[Request], dict[str, Any]]:
        OPERATIONS[name] = fn
        return fn

    return register


@patch(NetworkFirewallResponse, "call_action")
def _call_action(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    action = self._get_action()
    handler = OPERATIONS.get(action)
    try:
        if handler is None:
            raise UnsupportedOperation(f"The sandbox does not implement the Network Firewall operation {action}.")
        backend = ec2_backends[self.current_account][self.region]
        advance(backend, settings)  # also advances the firewalls (firewalls.py's hook)
        result: Any = handler(Request(dict(getattr(self, "params", None) or {}), backend, settings))
    except ServiceException as exc:
        result = exc
    status, headers, body = self.serialized(ActionResult(result))
    headers, body = self._enrich_response(headers, body)
    return status, headers, body


# --- helpers -------------------------------------------------------------------------------------------


def find(
    table: dict[str, Any], arn: str | None, name: str | None, arn_for_name: Callable[[str], str], what: str
) -> Any:
    if not arn and not name:
        raise InvalidRequest(f"You must specify the ARN or the name of the {what}, and you can specify both.")
    found = table.get(arn) if arn else table.get(arn_for_name(name))  # type: ignore[arg-type]
    if found is None or (name and found.name != name):
        raise ResourceNotFound(f"The {what} {arn or name} does not exist.")
    return found


def check_token(resource: Resource, given: str | None, what: str) -> None:
    if given != resource.token:
        raise InvalidToken(
            f"The update token of {what} {resource.name} is out of date or invalid. Describe the {what} again "
            "to get its current update token, then retry the update."
        )


def paginate(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
    token = params.get("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError:
        raise InvalidRequest(f"Invalid NextToken: {token}") from None
    size = params.get("MaxResults") or 100
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def tags_of(params: dict[str, Any]) -> list[dict[str, str]]:
    merged: dict[str, str] = {}
    for tag in params.get("Tags") or []:
        merged[tag["Key"]] = tag["Value"]
    return [{"Key": k, "Value": v} for k, v in merged.items()]


def unique_name(table: dict[str, Any], arn: str, what: str, name: str) -> None:
    if arn in table:
        raise InvalidRequest(f"A {what} with the name {name} already exists.")


def firewalls_using(store: Store, policy_arn: str) -> list[Firewall]:
    return [fw for fw in store.firewalls.values() if fw.policy_arn == policy_arn]
