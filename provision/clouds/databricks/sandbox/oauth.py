"""OAuth machine-to-machine (client credentials) for the Databricks emulator, as a service principal uses it.

The SDK's `oauth-m2m` auth reads the host's /.well-known/databricks-config, follows its `oidc_endpoint`
to `<oidc>/.well-known/oauth-authorization-server`, and POSTs `grant_type=client_credentials` with the
client id and secret in an HTTP Basic header to the `token_endpoint`. The emulator serves two issuers:
- the account: `/oidc/accounts/<account_id>`; its tokens open the Account API of that account only;
- each workspace: `/workspaces/<deployment>/oidc`; its tokens open that workspace's API only.

Service principals are registered with the sandbox setting `oauth_clients` ({client_id: SHA-256 hex of
the secret}): the sandbox never holds a secret, only its digest, and keeps issued tokens likewise hashed.
Tokens expire after an hour (`expires_in`), as Databricks' do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from typing import Any

from werkzeug.wrappers import Request, Response

from provision.sandbox.settings import SandboxSettings

TOKEN_LIFETIME_SECONDS = 3600

_lock = threading.Lock()
_issued: dict[str, tuple[str, float]] = {}  # sha256(token) -> (audience, expiry as epoch seconds)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def reset() -> None:
    with _lock:
        _issued.clear()


def discovery(issuer: str) -> dict[str, Any]:
    """The authorization-server metadata the SDK reads to find the token endpoint."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/v1/authorize",
        "token_endpoint": f"{issuer}/v1/token",
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }


class OAuthError(Exception):
    """An RFC 6749 error response: status, `error` and `error_description`."""

    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def issue(clients: dict[str, str], authorization: str, form_body: bytes, audience: str) -> dict[str, Any]:
    """The token endpoint: check the client's credentials (Basic header, or client_id/client_secret in the
    form) against the registered digests and mint a bearer token for `audience`."""
    form = {k: v[0] for k, v in urllib.parse.parse_qs(form_body.decode("utf-8", "replace")).items()}
    if form.get("grant_type") != "client_credentials":
        raise OAuthError(400, "unsupported_grant_type", f"grant_type {form.get('grant_type')!r} is not supported here.")
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if authorization.startswith("Basic "):
        try:
            client_id, _, secret = base64.b64decode(authorization[len("Basic ") :]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise OAuthError(400, "invalid_request", "Malformed Basic authorization header.") from None
        client_id, secret = urllib.parse.unquote(client_id), urllib.parse.unquote(secret)
    expected = clients.get(client_id)
    if not client_id or expected is None or not hmac.compare_digest(digest(secret), expected):
        raise OAuthError(401, "invalid_client", "Client authentication failed.")
    token = "sbx-oauth-" + secrets.token_urlsafe(32)
    with _lock:
        now = time.time()
        for key in [k for k, (_, expiry) in _issued.items() if expiry <= now]:
            del _issued[key]
        _issued[digest(token)] = (audience, now + TOKEN_LIFETIME_SECONDS)
    return {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_SECONDS, "scope": form.get("scope", "all-apis")}


def accepts(authorization: str, audience: str) -> bool:
    """True when `authorization` carries a live token minted for `audience`."""
    if not authorization.startswith("Bearer "):
        return False
    with _lock:
        found = _issued.get(digest(authorization[len("Bearer ") :]))
    return found is not None and found[0] == audience and found[1] > time.time()


def token_response(settings: SandboxSettings, request: Request, audience: str) -> Response:
    """The token endpoint of one issuer, as HTTP: a token, or the RFC 6749 error body."""
    try:
        body = issue(settings.oauth_clients, request.headers.get("Authorization", ""), request.get_data(), audience)
    except OAuthError as e:
        return Response(json.dumps(e.body()), status=e.status, mimetype="application/json")
    return Response(json.dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"})
