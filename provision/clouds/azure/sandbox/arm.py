"""Routing, authentication, api-version checks, ARM's error shape and headers, and the operation status
endpoints of the ARM emulator.

A request is checked in ARM's order: the api-version query parameter must be there (400
MissingApiVersionParameter, even before authentication, as management.azure.com answers a bare GET), then
`Authorization: Bearer <settings.azure_token>` (401 AuthenticationFailed when missing or malformed, 401
InvalidAuthenticationToken when wrong, with a WWW-Authenticate challenge), then the subscription (only
settings.azure_subscription_id exists: 404 SubscriptionNotFound; 400 InvalidSubscriptionId for a
non-GUID), then the api-version against the provider's published versions (400 InvalidApiVersionParameter
from Microsoft.Resources, 400 NoRegisteredProviderFound from the resource providers, with ARM's wording).
Paths and their literal segments are matched case-insensitively (the SDKs send `resourcegroups` for the
Resources API and `resourceGroups` for the others); names keep the casing of the request.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

import provision.clouds.azure.sandbox.dns as dns  # noqa: PLR0402
import provision.clouds.azure.sandbox.endpoints as endpoints  # noqa: PLR0402
import provision.clouds.azure.sandbox.lro as lro  # noqa: PLR0402
import provision.clouds.azure.sandbox.network as network  # noqa: PLR0402
import provision.clouds.azure.sandbox.nsg as nsg  # noqa: PLR0402
import provision.clouds.azure.sandbox.resources as resources  # noqa: PLR0402
import provision.clouds.azure.sandbox.workspaces as workspaces  # noqa: PLR0402
from provision.clouds.azure.sandbox.store import (
    STORE,
    ArmError,
    bad_request,
    new_guid,
    now,
)
from provision.sandbox.settings import SANDBOX_AZURE_TENANT_ID, SandboxSettings

# The versions the installed SDKs send first, then other published ones. (azure-mgmt-resource 26:
# 2025-04-01; azure-mgmt-network 33.1: 2026-03-01; azure-mgmt-privatedns 2.0: 2024-06-01;
# azure-mgmt-databricks 3.0: 2026-01-01.)
API_VERSIONS: dict[str, tuple[str, ...]] = {
    "resources": (
        "2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01", "2022-09-01",
        "2021-04-01", "2020-06-01", "2019-10-01",
    ),
    "subscriptions": ("2025-04-01", "2022-12-01", "2021-01-01", "2020-01-01", "2016-06-01"),
    "network": (
        "2026-03-01", "2026-01-01", "2025-09-01", "2025-07-01", "2025-05-01", "2025-01-01", "2024-07-01",
        "2024-05-01", "2024-03-01", "2024-01-01", "2023-11-01", "2023-09-01", "2023-06-01", "2023-05-01",
        "2023-04-01", "2023-02-01", "2022-11-01", "2022-09-01", "2022-07-01", "2022-05-01", "2022-01-01",
        "2021-08-01", "2021-05-01", "2021-02-01", "2020-11-01", "2020-07-01", "2020-06-01", "2020-05-01",
    ),
    "privatedns": ("2024-06-01", "2020-06-01", "2020-01-01", "2018-09-01"),
    "databricks": (
        "2026-01-01", "2025-03-01-preview", "2024-09-01-preview", "2024-05-01", "2023-09-15-preview",
        "2023-02-01", "2022-04-01-preview", "2021-04-01-preview", "2018-04-01",
    ),
}
API_VERSIONS["operations"] = API_VERSIONS["network"] + API_VERSIONS["privatedns"] + API_VERSIONS["databricks"]
LOCATIONS = (
    "eastus", "eastus2", "westus", "westus2", "westus3", "centralus", "northcentralus", "southcentralus",
    "westcentralus", "canadacentral", "canadaeast", "brazilsouth", "northeurope", "westeurope", "uksouth",
    "ukwest", "francecentral", "germanywestcentral", "switzerlandnorth", "norwayeast", "swedencentral",
    "uaenorth", "southafricanorth", "centralindia", "southindia", "eastasia", "southeastasia", "japaneast",
    "japanwest", "koreacentral", "australiaeast", "australiasoutheast",
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass
class Ctx:
    """One request as a handler sees it."""

    settings: SandboxSettings
    request: Request
    at: float
    base: str
    sub: str
    api_version: str
    args: dict[str, str] = field(default_factory=dict)
    _body: Any = None

    @property
    def method(self) -> str:
        return self.request.method

    def body(self) -> dict:
        if self._body is None:
            raw = self.request.get_data()
            try:
                body = json.loads(raw) if raw else {}
            except ValueError as e:
                raise bad_request(
                    "InvalidRequestContent", f"The request content was invalid and could not be deserialized: '{e}'."
                ) from None
            if not isinstance(body, dict):
                raise bad_request("InvalidRequestContent", "The request content was invalid and could not be deserialized.")
            self._body = body
        return self._body

    def delay(self, name: str, key: str) -> float:
        return self.settings.delay(name, key)


Reply = tuple[int, Any, dict]
Handler = Callable[[Ctx], Reply]


def _op_status(ctx: Ctx) -> Reply:
    op = STORE.operations.get(ctx.args["op"])
    if op is None:
        raise ArmError(404, "OperationNotFound", f"The operation '{ctx.args['op']}' could not be found.")
    return 200, lro.status_body(op, ctx.at), {}


def _op_result(ctx: Ctx) -> Reply:
    """The Location a DELETE answered: 202 while in progress, then 200, or the failure with its status."""
    op = STORE.operations.get(ctx.args["op"])
    if op is None:
        raise ArmError(404, "OperationNotFound", f"The operation '{ctx.args['op']}' could not be found.")
    status = lro.status_of(op, ctx.at)
    if status == "InProgress":
        location = lro.result_url(ctx.base, ctx.sub, op, ctx.api_version)
        return 202, None, {"Location": location, "Retry-After": lro.retry_after(op, ctx.at)}
    if status == "Failed":
        error = op["error"]
        raise ArmError(op["fail_status"], error["code"], error["message"], details=error.get("details"))
    return 200, None, {}


_OP_ROUTES = [
    ("/subscriptions/<sub>/providers/<ns>/locations/<loc>/operations/<op>", "op_status", "operations", "operations", ["GET"]),
    ("/subscriptions/<sub>/providers/<ns>/locations/<loc>/operationresults/<op>", "op_result", "operations", "operationResults", ["GET"]),
    ("/subscriptions/<sub>/operationresults/<op>", "rg_op_result", "resources", "operationresults", ["GET"]),
]
_FAMILIES = (resources, network, nsg, endpoints, dns, workspaces)
_ROUTES = _OP_ROUTES + [route for family in _FAMILIES for route in family.ROUTES]
_HANDLERS: dict[str, Handler] = {"op_status": _op_status, "op_result": _op_result, "rg_op_result": _op_result}
for _family in _FAMILIES:
    _HANDLERS.update(_family.HANDLERS)
_META = {endpoint: (family, type_label) for _, endpoint, family, type_label, _ in _ROUTES}
_URLS = Map([Rule(path, endpoint=endpoint, methods=methods) for path, endpoint, _, _, methods in _ROUTES], strict_slashes=False)


def _original_args(rule: Rule, path: str) -> dict[str, str]:
    """The path arguments as the request spelled them (matching ran on the lower-cased path)."""
    pattern, segments = rule.rule.split("/"), path.split("/")
    return {part[1:-1].split(":")[-1]: segments[i] for i, part in enumerate(pattern) if part.startswith("<")}


def _version_error(family: str, version: str, type_label: str, location: str) -> ArmError:
    supported = API_VERSIONS[family]
    if family in ("resources", "subscriptions"):
        return bad_request(
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{','.join(supported)}'.",
        )
    return bad_request(
        "NoRegisteredProviderFound",
        f"No registered resource provider found for location '{location}' and API version '{version}' for type "
        f"'{type_label}'. The supported api-versions are '{', '.join(supported)}'. The supported locations are "
        f"'{', '.join(LOCATIONS)}'.",
    )


def _location_for_message(ctx: Ctx) -> str:
    try:
        location = ctx.body().get("location") if ctx.method in ("PUT", "PATCH") else None
    except ArmError:
        location = None
    if isinstance(location, str) and location:
        return location.replace(" ", "").lower()
    rg = STORE.get(f"/subscriptions/{ctx.sub}/resourceGroups/{ctx.args.get('rg', '')}")
    return rg["location"] if rg else "eastus"


def _authenticate(settings: SandboxSettings, request: Request) -> None:
    auth = request.headers.get("Authorization")
    challenge = f'Bearer authorization_uri="https://login.microsoftonline.com/{SANDBOX_AZURE_TENANT_ID}", error="invalid_token"'
    if auth is None:
        raise ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            {"WWW-Authenticate": challenge + ', error_description="The authentication failed because of missing \'Authorization\' header."'},
        )
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            {"WWW-Authenticate": challenge + ', error_description="The authentication failed because of invalid \'Authorization\' header."'},
        )
    if not hmac.compare_digest(token.strip().encode(), settings.azure_token.encode()):
        raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.", {"WWW-Authenticate": challenge})


def _check_subscription(settings: SandboxSettings, path: str) -> str | None:
    parts = path.split("/")
    if len(parts) < 3 or parts[1].lower() != "subscriptions" or not parts[2]:
        return None
    sub = parts[2]
    if not _GUID.match(sub):
        raise bad_request("InvalidSubscriptionId", f"The provided subscription identifier '{sub}' is malformed or invalid.")
    if sub.lower() != settings.azure_subscription_id.lower():
        raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
    return sub


def _unknown_path(path: str, version: str) -> ArmError:
    parts = [p for p in path.split("/") if p]
    lowered = [p.lower() for p in parts]
    if "providers" in lowered:
        i = lowered.index("providers")
        if len(parts) > i + 2:
            ns, types = parts[i + 1], parts[i + 2 :: 2]
            return ArmError(
                404,
                "InvalidResourceType",
                f"The resource type '{'/'.join(types)}' could not be found in the namespace '{ns}' for api version '{version}'.",
            )
    return ArmError(404, "NotFound", f"The requested resource '{path}' was not found.")


def _headers(request: Request, request_id: str) -> dict[str, str]:
    correlation = request.headers.get("x-ms-correlation-request-id") or request_id
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "x-ms-request-id": request_id,
        "x-ms-correlation-request-id": correlation,
        "x-ms-routing-request-id": f"LOCAL:{stamp}:{request_id}",
        "Cache-Control": "no-cache",
        "Pragma": "no-cache",
        "Expires": "-1",
    }
    if request.headers.get("x-ms-client-request-id"):
        headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
    if request.method in ("GET", "HEAD"):
        headers["x-ms-ratelimit-remaining-subscription-reads"] = "11999"
    else:
        headers["x-ms-ratelimit-remaining-subscription-writes"] = "1199"
    return headers


def _render(status: int, body: Any, headers: dict[str, str]) -> Response:
    if body is None:
        response = Response(status=status)
    else:
        response = Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")
    response.headers.update(headers)
    return response


def _handle(settings: SandboxSettings, request: Request) -> Reply:
    path = request.path
    version = request.args.get("api-version")
    if not version:
        raise bad_request("MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
    _authenticate(settings, request)
    sub = _check_subscription(settings, path)
    try:
        rule, _ = _URLS.bind("localhost").match(path.lower(), method=request.method, return_rule=True)
    except MethodNotAllowed:
        raise ArmError(405, "MethodNotAllowed", f"The requested method '{request.method}' is not allowed on '{path}'.") from None
    except NotFound:
        raise _unknown_path(path, version) from None
    ctx = Ctx(settings, request, now(), request.host_url.rstrip("/"), sub or "", version, _original_args(rule, path))
    family, type_label = _META[rule.endpoint]
    with STORE.lock:
        lro.advance(ctx.at)
        if version not in API_VERSIONS[family]:
            raise _version_error(family, version, type_label, _location_for_message(ctx))
        return _HANDLERS[rule.endpoint](ctx)


def make_app(settings: SandboxSettings) -> Callable:
    def app(environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        request_id = new_guid()
        try:
            status, body, headers = _handle(settings, request)
        except ArmError as e:
            status, body, headers = e.status, e.body(), e.headers
        except Exception as e:  # noqa: BLE001  (a JSON 500 still reaches the SDK as an HttpResponseError)
            status, body, headers = 500, {"error": {"code": "InternalServerError", "message": f"{type(e).__name__}: {e}"}}, {}
        response = _render(status, body, {**_headers(request, request_id), **headers})
        return response(environ, start_response)

    app.sandbox_settings = settings  # type: ignore[attr-defined]
    return app
