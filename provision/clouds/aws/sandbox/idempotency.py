"""Rule 1: ClientToken idempotency for CreateNatGateway, CreateVpcEndpoint and CreateRouteTable.

A retry with the same token returns the same resource; the same token with other parameters fails with
IdempotentParameterMismatch. As on EC2 the token keeps its result after the resource is deleted: a NAT
gateway is answered as it is now (`deleted`/`failed`, still listed); a route table or VPC endpoint that
is gone is answered with the original creation response (kept as a snapshot). Nothing new is ever made
for a token already used. Applied at the response level: moto drops the token before the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses import EC2Response

from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings

_IGNORED_PARAMS = {"Action", "Version", "ClientToken"}


def idempotent(result_key: str, store: str) -> Callable[..., Any]:
    """A response-level replacement answering a used ClientToken from its first result."""

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


patch(EC2Response, "create_nat_gateway")(idempotent("NatGateway", "nat_gateways"))
patch(EC2Response, "create_route_table")(idempotent("RouteTable", "route_tables"))
# CreateVpcEndpoint's token is checked in endpoints.py, composed with rule 13 (one patch per attribute).
