"""The providers' request rate limits, modelled: a WSGI middleware around the AWS app and the Databricks emulator.

Settings (SandboxSettings, read at request time; all off by default, on in the `realistic` latency profile):

- databricks_rate_limit / databricks_rate_burst: the Account API (paths /api/<version>/accounts/<id>/...) of
  each account draws on one token bucket of databricks_rate_burst tokens (0: one second's worth) refilled at
  databricks_rate_limit a second. Beyond it, before the emulator sees the request:
      429  Retry-After: <whole seconds until a token, at least 1>
           {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "<operation> RPC token bucket limit has been exceeded."}
  (the code and wording the real Account API answers with; databricks-sdk maps the code to RequestLimitExceeded, a
  TooManyRequests). Workspace-level APIs, the OAuth token endpoint and other accounts' buckets are not touched.
- ec2_rate_scale / ec2_bucket_scale: each EC2 action (Action= in the query or form body) of each Region draws on
  AWS's documented bucket for it (provision/rate_limits.py: 100/20 for Describe*, 50/5 for mutating actions, own
  figures for CreateNatGateway, CreateVpcEndpoint, ...), refill rates times ec2_rate_scale and capacities times
  ec2_bucket_scale (at least 1 token). Beyond it: HTTP 503 RequestLimitExceeded "Request limit exceeded." in
  EC2's XML error shape (faults.py's renderer). EC2 sends no Retry-After. Other AWS services are not limited.

Never limited: /_sandbox/* and /moto-api/*. A throttled request was not applied. With both rates 0 a request
costs two float comparisons.

Counters: GET /_sandbox/throttled -> {"databricks": n, "ec2": n} (requests refused since the last reset); POST
/_sandbox/throttled/reset zeroes them and refills every bucket (served by server.py's control app).
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from provision.rate_limits import TokenBucket, ec2_bucket
from provision.sandbox.faults import _aws_error, _classify_aws, _dbx_error
from provision.sandbox.settings import SandboxSettings

_ACCOUNT_PATH = re.compile(r"^/api/[^/]+/accounts/([^/]+)(?:/([^/?]+))?")
_REGION = re.compile(r"Credential=[^/,]+/\d{8}/([^/]+)/")
_NEVER = ("/_sandbox/", "/moto-api/")


class RateLimiter:
    """One set of buckets and counters, shared by the apps it wraps."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        # (kind, scope, bucket name) -> (the figures it was made with, the bucket)
        self._buckets: dict[tuple[str, str, str], tuple[tuple[float, float], TokenBucket]] = {}
        self._refused = {"databricks": 0, "ec2": 0}

    # --- counters -------------------------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._refused)

    def reset(self) -> dict[str, int]:
        with self._lock:
            self._refused = dict.fromkeys(self._refused, 0)
            self._buckets.clear()
        return self.counters()

    def control(self, method: str, path: str) -> tuple[int, dict] | None:
        """The /_sandbox/throttled endpoints; None when the path is not one of them."""
        if path == "/_sandbox/throttled" and method == "GET":
            return 200, self.counters()
        if path == "/_sandbox/throttled/reset" and method == "POST":
            return 200, self.reset()
        return None

    # --- decisions ------------------------------------------------------------------------------------------

    def _wait(self, kind: str, scope: str, name: str, capacity: float, rate: float) -> float:
        """0.0 with a token taken from the bucket, else the seconds until it has one (and the refusal counted).
        A bucket is made afresh when its figures change (POST /_sandbox/config)."""
        key, figures = (kind, scope, name), (capacity, rate)
        with self._lock:
            held = self._buckets.get(key)
            if held is None or held[0] != figures:
                held = self._buckets[key] = (figures, TokenBucket(capacity, rate))
        wait = held[1].take()
        if wait > 0:
            with self._lock:
                self._refused[kind] += 1
        return wait

    # --- middleware -----------------------------------------------------------------------------------------

    def wrap(self, app: Callable, kind: str) -> Callable:
        """kind: "aws" (moto's server; EC2 only is limited) or "databricks" (the emulator)."""
        if kind not in ("aws", "databricks"):
            raise ValueError(f"unknown app kind {kind!r}")
        settings = self.settings
        handle = self._ec2 if kind == "aws" else self._databricks
        knob = "ec2_rate_scale" if kind == "aws" else "databricks_rate_limit"

        def middleware(environ: dict, start_response: Callable) -> Iterable[bytes]:
            if getattr(settings, knob) <= 0.0 or environ.get("PATH_INFO", "").startswith(_NEVER):
                return app(environ, start_response)
            return handle(app, environ, start_response)

        if hasattr(app, "sandbox_settings"):  # what helpers look up on the wrapped app
            middleware.sandbox_settings = app.sandbox_settings  # type: ignore[attr-defined]
        middleware.wrapped_app = app  # type: ignore[attr-defined]
        return middleware

    def _databricks(self, app: Callable, environ: dict, start_response: Callable) -> Iterable[bytes]:
        match = _ACCOUNT_PATH.match(environ.get("PATH_INFO", ""))
        if match is None:  # a workspace's own API, OAuth, the emulator's pages
            return app(environ, start_response)
        s = self.settings
        rate = s.databricks_rate_limit
        wait = self._wait("databricks", match.group(1), "account", s.databricks_rate_burst or max(1.0, rate), rate)
        if wait <= 0:
            return app(environ, start_response)
        operation = (match.group(2) or "accounts").replace("-", " ").title().replace(" ", "")
        retry_after = str(max(1, math.ceil(wait)))

        def with_retry_after(status: str, headers: list, exc_info: Any = None) -> Callable:
            kept = [(k, v) for k, v in headers if k.lower() != "retry-after"]
            return start_response(status, [*kept, ("Retry-After", retry_after)], exc_info)

        return _dbx_error(with_retry_after, 429, "REQUEST_LIMIT_EXCEEDED", f"{operation} RPC token bucket limit has been exceeded.")

    def _ec2(self, app: Callable, environ: dict, start_response: Callable) -> Iterable[bytes]:
        shape, action = _classify_aws(environ)  # buffers a form body, so the backend can still read it
        if shape != "ec2" or not action:
            return app(environ, start_response)
        s = self.settings
        name, (capacity, rate) = ec2_bucket(action, _parameter_names(environ))
        region = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
        wait = self._wait("ec2", region.group(1) if region else "", name, max(1.0, capacity * s.ec2_bucket_scale), rate * s.ec2_rate_scale)
        if wait <= 0:
            return app(environ, start_response)
        return _aws_error(start_response, "ec2", "", status=503, code="RequestLimitExceeded", message="Request limit exceeded.")


def _parameter_names(environ: dict) -> list[str]:
    names = list(parse_qs(environ.get("QUERY_STRING", "")))
    body = environ.get("wsgi.input")
    if isinstance(body, io.BytesIO):
        names += list(parse_qs(body.getvalue().decode("utf-8", "replace")))
    return names

