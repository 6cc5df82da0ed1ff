"""Seeded, reproducible fault injection for the sandbox: a WSGI middleware around both apps.

Settings (SandboxSettings, read at request time, so POST /_sandbox/config switches them on and off):

- fault_rate (0..1): the fraction of requests that fail *before* reaching the backend (nothing is applied).
  AWS requests get one of, chosen with the seeded RNG:
    * "throttling", in the protocol's own shape:
        EC2 (query, EC2 XML)        503  <Response><Errors><Error><Code>RequestLimitExceeded</Code>...
        other query services (IAM)  400  <ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>...
        JSON (X-Amz-Target: network-firewall, secretsmanager, ...)
                                    400  {"__type": "ThrottlingException", "message": ...}
        S3 (REST-XML)               503  <Error><Code>SlowDown</Code>...
        other REST services         400  JSON {"__type"/"code": "ThrottlingException"} + X-Amzn-ErrorType
    * "internal_error": HTTP 500 with code InternalError, in the same shapes;
    * "dropped_connection": the socket is shut down without any response (see below).
  ARM requests (the Azure emulator) get a 429 TooManyRequests with Retry-After: 1, a 500 InternalServerError
  or a dropped connection, in ARM's shape {"error": {"code", "message"}} (sandbox/arm_shape.py).
  Databricks API requests (paths containing /api/, never /.well-known) get one of
    * "too_many_requests": 429, Retry-After: 1, {"error_code": "TOO_MANY_REQUESTS", "message": ...}
    * "temporarily_unavailable": 503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": ...}
- lost_response_rate (0..1): the fraction of *create* requests (Create*/Allocate*/Run*, S3 CreateBucket,
  Databricks POSTs that create, every ARM PUT) (AWS actions such as Create*/Delete*/Tag*...,
  S3 and other REST PUT/POST/PATCH/DELETE; Databricks POST/PATCH/PUT/DELETE) that the backend applies, but
  whose successful response the client never sees: it gets a 503 in the protocol's shape (AWS
  ServiceUnavailable, Databricks TEMPORARILY_UNAVAILABLE) or a dropped connection, chosen with the RNG.
  A backend error (4xx/5xx) is passed through unchanged: there was nothing to lose.
  One exception: a create whose response is the only copy of a one-time secret (a workspace token's
  value, a service principal's OAuth secret) cannot be recovered by re-reading, here or on the real service, so at rate 1.0 it could never
  succeed. Such a create is never lost twice in a row for the same path: the response after a lost one is
  delivered. What must hold there is that the orphaned token is revoked, not that the value is recovered.
- refuse ({operation: kind}): terminal refusals, not random: every call of a listed operation is refused
  before the backend with the service's own error for kind access_denied, invalid_parameter or
  quota_exceeded (EC2 UnauthorizedOperation / InvalidParameterValue / <Resource>LimitExceeded; IAM
  AccessDenied / InvalidInput / LimitExceeded; S3 AccessDenied / InvalidArgument / TooManyBuckets; JSON
  services AccessDeniedException / InvalidRequestException / LimitExceededException; Databricks 403
  PERMISSION_DENIED / 400 INVALID_PARAMETER_VALUE / 400 QUOTA_EXCEEDED). Operations are AWS action names
  (S3's bucket PUT is "CreateBucket"), Databricks "<collection>.<create|update|delete>" and ARM actions
  ("Microsoft.Network/privateEndpoints/write": AuthorizationFailed / InvalidParameter / QuotaExceeded). The fix for the
  cause is removing the entry; R1 proves a run fails fast on these and `resume` completes afterwards.
- fault_seed (int): seeds the one RNG (guarded by a lock). The same seed and the same request sequence
  inject the same faults. The RNG is reseeded when fault_seed changes and by POST /_sandbox/faults/reset.

Never faulted: /_sandbox/* (control and health), moto's /moto-api/*, and the well-known config probe.
When both rates are 0 a request costs one float comparison.

Dropped connection: werkzeug puts the client socket in environ["werkzeug.socket"]. The middleware reads
the request body, calls socket.shutdown(SHUT_RDWR) and raises ConnectionAbortedError; werkzeug treats a
ConnectionError from the app as "connection dropped" (logs nothing, sends nothing) and, reading EOF on the
next keep-alive read, closes the connection. The client sees the connection closed with no status line:
urllib3 raises ProtocolError(RemoteDisconnected), which botocore surfaces as
botocore.exceptions.ConnectionClosedError ("Connection was closed before we received a valid response")
-- retryable by botocore's standard and legacy retry modes -- and `requests` (the Databricks SDK) as
requests.exceptions.ConnectionError.

Counters: GET /_sandbox/faults -> {"injected": {kind: count}, "lost_responses": n}; POST
/_sandbox/faults/reset zeroes them (both served by server.py's control app via FaultInjector.control).
"""

from __future__ import annotations

import io
import json
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from provision.sandbox.arm_shape import arm_error, arm_operation, arm_refusal
from provision.sandbox.settings import SandboxSettings

_MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Lost responses hit creates only: that is the "created but never recorded" case R1 must survive. An
# idempotent put or modify whose every response is lost could never be confirmed, on AWS or here.
_CREATE_PREFIXES = ("Create", "Allocate", "Run")
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/[^/]+/([^/]+)/")
_NEVER = ("/_sandbox/", "/moto-api/")
# A workspace token's value, a service principal's OAuth secret (POST .../servicePrincipals/<id>/credentials/secrets).
_ONE_TIME_SECRET_CREATES = ("/api/2.0/token/create", "/credentials/secrets")
# POSTs that only read (Unity Catalog validating a storage credential): there is no create to lose.
_READ_POSTS = ("/validate-storage-credentials",)

# kind -> (status, code) per AWS protocol shape
_AWS_CODES = {
    "ec2": {"throttling": (503, "RequestLimitExceeded"), "internal_error": (500, "InternalError"),
            "unavailable": (503, "ServiceUnavailable")},
    "query": {"throttling": (400, "Throttling"), "internal_error": (500, "InternalError"),
              "unavailable": (503, "ServiceUnavailable")},
    "json": {"throttling": (400, "ThrottlingException"), "internal_error": (500, "InternalError"),
             "unavailable": (503, "ServiceUnavailable")},
    "s3": {"throttling": (503, "SlowDown"), "internal_error": (500, "InternalError"),
           "unavailable": (503, "ServiceUnavailable")},
    "rest": {"throttling": (400, "ThrottlingException"), "internal_error": (500, "InternalError"),
             "unavailable": (503, "ServiceUnavailable")},
}  # fmt: skip
_AWS_KINDS = ("throttling", "internal_error", "dropped_connection")
_DBX_KINDS = ("too_many_requests", "temporarily_unavailable")
_ARM_KINDS = ("too_many_requests", "internal_error", "dropped_connection")
_STATUS_TEXT = {400: "Bad Request", 403: "Forbidden", 409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class DroppedConnection(ConnectionAbortedError):
    """Raised out of the WSGI app after the socket is shut down; werkzeug then sends nothing."""


class FaultInjector:
    """One seeded RNG and one set of counters, shared by every app it wraps."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._seed = int(settings.fault_seed)
        self._rng = random.Random(self._seed)
        self._injected: Counter[str] = Counter()
        self._lost = 0
        self._secret_lost: set[str] = set()  # one-time-secret create paths whose last response was lost

    # --- counters -------------------------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        with self._lock:
            return {"injected": dict(self._injected), "lost_responses": self._lost}

    def reset(self) -> dict[str, Any]:
        """Zero the counters and reseed the RNG from the current fault_seed."""
        with self._lock:
            self._injected.clear()
            self._lost = 0
            self._secret_lost.clear()
            self._seed = int(self.settings.fault_seed)
            self._rng = random.Random(self._seed)
        return self.counters()

    def control(self, method: str, path: str) -> tuple[int, dict] | None:
        """The /_sandbox/faults endpoints; None when the path is not one of them."""
        if path == "/_sandbox/faults" and method == "GET":
            return 200, self.counters()
        if path == "/_sandbox/faults/reset" and method == "POST":
            return 200, self.reset()
        return None

    # --- decisions ------------------------------------------------------------------------------------------

    def _decide(self, fault_choices: tuple[str, ...], mutating: bool) -> tuple[str | None, str | None]:
        """(fault kind or None, lost-response mode or None), drawn from the seeded RNG."""
        s = self.settings
        with self._lock:
            seed = int(s.fault_seed)
            if seed != self._seed:
                self._seed, self._rng = seed, random.Random(seed)
            rng = self._rng
            if s.fault_rate > 0 and rng.random() < s.fault_rate:
                return fault_choices[rng.randrange(len(fault_choices))], None
            if mutating and s.lost_response_rate > 0 and rng.random() < s.lost_response_rate:
                return None, ("unavailable" if rng.random() < 0.5 else "dropped_connection")
        return None, None

    def _count(self, kind: str | None = None, lost: bool = False) -> None:
        with self._lock:
            if kind:
                self._injected[kind] += 1
            if lost:
                self._lost += 1

    # --- middleware -----------------------------------------------------------------------------------------

    def wrap(self, app: Callable, kind: str) -> Callable:
        """kind: "aws" (moto's server), "databricks" or "azure" (the emulators)."""
        handlers = {"aws": self._aws, "databricks": self._databricks, "azure": self._azure}
        if kind not in handlers:
            raise ValueError(f"unknown app kind {kind!r}")
        settings = self.settings
        handle = handlers[kind]
        latency = f"{kind}_call_seconds"

        def middleware(environ: dict, start_response: Callable) -> Iterable[bytes]:
            call_seconds = getattr(settings, latency)
            if settings.fault_rate + settings.lost_response_rate + call_seconds <= 0.0 and not settings.refuse:  # off
                return app(environ, start_response)
            path = environ.get("PATH_INFO", "")
            if path.startswith(_NEVER) or "/.well-known/" in path:
                return app(environ, start_response)
            if call_seconds > 0:  # a latency profile's per-call time (latency.py)
                drawn = call_seconds * (1 + settings.latency_jitter * (2 * random.random() - 1))
                settings.journal.call(kind, drawn)
                time.sleep(drawn)
                if settings.fault_rate + settings.lost_response_rate <= 0.0 and not settings.refuse:
                    return app(environ, start_response)
            return handle(app, environ, start_response)

        for attr in ("sandbox_settings",):  # keep what helpers look up on the wrapped app
            if hasattr(app, attr):
                setattr(middleware, attr, getattr(app, attr))
        middleware.wrapped_app = app  # type: ignore[attr-defined]
        return middleware

    def _databricks(self, app: Callable, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if "/api/" not in environ.get("PATH_INFO", ""):
            return app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "")
        refusal = self.settings.refuse.get(_databricks_operation(method, path)) if self.settings.refuse else None
        if refusal:
            self._count(f"refused {refusal}")
            status, code, message = _DBX_REFUSALS[refusal]
            return _dbx_error(start_response, status, code, message)
        creating = method == "POST" and not path.rstrip("/").endswith(("/delete", *_READ_POSTS))
        fault, lost = self._decide(_DBX_KINDS, creating)
        if fault == "too_many_requests":
            self._count(fault)
            return _dbx_error(start_response, 429, "TOO_MANY_REQUESTS", "sandbox fault: request limit exceeded")
        if fault == "temporarily_unavailable":
            self._count(fault)
            return _dbx_error(start_response, 503, "TEMPORARILY_UNAVAILABLE", "sandbox fault: temporarily unavailable")
        if lost is not None and path.endswith(_ONE_TIME_SECRET_CREATES):
            with self._lock:
                if path in self._secret_lost:
                    self._secret_lost.discard(path)
                    lost = None
                else:
                    self._secret_lost.add(path)
        if lost is None:
            return app(environ, start_response)
        return self._lose(app, environ, start_response, lost, lambda: _dbx_error(
            start_response, 503, "TEMPORARILY_UNAVAILABLE", "sandbox fault: temporarily unavailable"))

    def _azure(self, app: Callable, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """ARM: 429 with Retry-After, a 500, or a dropped connection; a PUT applied whose answer is lost."""
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "")
        operation = arm_operation(method, path)
        refusal = self.settings.refuse.get(operation) if self.settings.refuse else None
        if refusal:
            self._count(f"refused {refusal}")
            return arm_refusal(start_response, refusal, operation, path)
        fault, lost = self._decide(_ARM_KINDS, method == "PUT")
        if fault == "dropped_connection":
            self._count(fault)
            _drop(environ)
        if fault == "too_many_requests":
            self._count(fault)
            return arm_error(start_response, 429, "TooManyRequests", "sandbox fault: the request was throttled; retry after the interval", retry_after=1)
        if fault == "internal_error":
            self._count(fault)
            return arm_error(start_response, 500, "InternalServerError", "sandbox fault: encountered internal server error")
        if lost is None:
            return app(environ, start_response)
        return self._lose(app, environ, start_response, lost, lambda: arm_error(
            start_response, 503, "ServiceUnavailable", "sandbox fault: the service is temporarily unavailable", retry_after=1))

    def _aws(self, app: Callable, environ: dict, start_response: Callable) -> Iterable[bytes]:
        shape, action = _classify_aws(environ)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if shape in ("s3", "rest"):
            creating = method == "PUT" and not environ.get("QUERY_STRING") and environ.get("PATH_INFO", "").strip("/").count("/") == 0
        else:
            creating = bool(action) and action.startswith(_CREATE_PREFIXES)
        refusal = None
        if self.settings.refuse:
            operation = "CreateBucket" if shape == "s3" and creating else action
            refusal = self.settings.refuse.get(operation) if operation else None
        if refusal:
            self._count(f"refused {refusal}")
            return _aws_refusal(start_response, environ, shape, operation, refusal)
        fault, lost = self._decide(_AWS_KINDS, creating)
        if fault == "dropped_connection":
            self._count(fault)
            _drop(environ)
        if fault is not None:
            self._count(fault)
            return _aws_error(start_response, shape, fault)
        if lost is None:
            return app(environ, start_response)
        return self._lose(app, environ, start_response, lost, lambda: _aws_error(start_response, shape, "unavailable"))

    def _lose(
        self, app: Callable, environ: dict, start_response: Callable, mode: str, unavailable: Callable
    ) -> Iterable[bytes]:
        """Apply the request on the backend; if it succeeded, lose the response."""
        captured: dict[str, Any] = {}
        if not isinstance(environ.get("wsgi.input"), io.BytesIO):
            _buffer_body(environ)  # so a later drop does not wait for a body the backend already read

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        result = app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        if not captured["status"].startswith("2"):
            start_response(captured["status"], captured["headers"])
            return [body]
        self._count(lost=True)
        if mode == "dropped_connection":
            _drop(environ)
        return unavailable()


# --- helpers ------------------------------------------------------------------------------------------------


def _buffer_body(environ: dict) -> bytes:
    """Read the request body and put it back, so the backend can still read it."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _classify_aws(environ: dict) -> tuple[str, str]:
    """(shape, action): shape is ec2 | query | json | s3 | rest; action may be ""."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return "json", target.rsplit(".", 1)[-1]
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = match.group(1) if match else ""
    if service == "s3":
        return "s3", ""
    action = ""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        action = query["Action"][0]
    elif environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        form = parse_qs(_buffer_body(environ).decode("utf-8", "replace"))
        action = form.get("Action", [""])[0]
    if action:
        return ("ec2" if service == "ec2" else "query"), action
    if not service:  # unsigned and not a query call: most likely S3 (presigned or anonymous)
        return "s3", ""
    return "rest", ""


def _drop(environ: dict) -> None:
    """Close the connection without a response (see the module docstring)."""
    if "CONTENT_LENGTH" in environ and not isinstance(environ.get("wsgi.input"), io.BytesIO):
        _buffer_body(environ)  # drain the body so the client is not reset mid-send
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise DroppedConnection("sandbox fault: dropped connection")


def _status(code: int) -> str:
    return f"{code} {_STATUS_TEXT.get(code, 'Error')}"


def _aws_error(start_response: Callable, shape: str, kind: str, status: int = 0, code: str = "", message: str = "") -> list[bytes]:
    if kind:
        status, code = _AWS_CODES[shape][kind]
        message = f"sandbox fault: {kind.replace('_', ' ')}"
    request_id = str(uuid.uuid4())
    headers: list[tuple[str, str]] = [("x-amzn-RequestId", request_id)]
    if shape == "ec2":
        body = (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>"
            f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        ctype = "text/xml"
    elif shape == "query":
        body = (
            f"<ErrorResponse><Error><Type>{'Sender' if status < 500 else 'Receiver'}</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        ctype = "text/xml"
    elif shape == "s3":
        body = (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        ctype = "application/xml"
    else:
        body = json.dumps({"__type": code, "message": message})
        ctype = "application/x-amz-json-1.0" if shape == "json" else "application/json"
        headers.append(("x-amzn-ErrorType", code))
    data = body.encode()
    start_response(_status(status), [("Content-Type", ctype), ("Content-Length", str(len(data))), *headers])
    return [data]


_DBX_REFUSALS = {
    "access_denied": (403, "PERMISSION_DENIED", "User is not authorized to perform this operation (sandbox refusal)."),
    "invalid_parameter": (400, "INVALID_PARAMETER_VALUE", "A request parameter is invalid (sandbox refusal)."),
    "quota_exceeded": (400, "QUOTA_EXCEEDED", "The account has reached its limit for this resource (sandbox refusal)."),
}


def _databricks_operation(method: str, path: str) -> str:
    """"workspaces.create" for POST .../accounts/<id>/workspaces; "token.create" for .../api/2.0/token/create."""
    parts = [p for p in path.split("/api/", 1)[-1].split("/") if p][1:]  # drop the version
    if parts[:1] == ["accounts"]:
        parts = parts[2:]
    if not parts:
        return ""
    if method == "POST":
        verb = parts[-1] if len(parts) > 1 and parts[-1] in ("create", "delete") else "create"
    else:
        verb = {"PATCH": "update", "PUT": "update", "DELETE": "delete"}.get(method, "get")
    return f"{parts[0]}.{verb}"


def _aws_refusal(start_response: Callable, environ: dict, shape: str, operation: str, kind: str) -> list[bytes]:
    """A terminal refusal in the service's own shape and words."""
    principal = "arn:aws:iam::123456789012:user/sandbox"
    if shape == "ec2":
        resource = operation.removeprefix("Create").removeprefix("Allocate") or "Resource"
        status, code, message = {
            "access_denied": (403, "UnauthorizedOperation", f"You are not authorized to perform this operation. User: {principal} is not authorized to perform: ec2:{operation} (sandbox refusal)"),
            "invalid_parameter": (400, "InvalidParameterValue", f"Value for a parameter of {operation} is invalid (sandbox refusal)"),
            "quota_exceeded": (400, f"{resource}LimitExceeded", f"The maximum number of {resource} resources has been reached (sandbox refusal)"),
        }[kind]
    elif shape == "query":
        status, code, message = {
            "access_denied": (403, "AccessDenied", f"User: {principal} is not authorized to perform: iam:{operation} (sandbox refusal)"),
            "invalid_parameter": (400, "InvalidInput", f"Invalid input for {operation} (sandbox refusal)"),
            "quota_exceeded": (409, "LimitExceeded", f"Cannot exceed quota for {operation} (sandbox refusal)"),
        }[kind]
    elif shape == "s3":
        status, code, message = {
            "access_denied": (403, "AccessDenied", "Access Denied (sandbox refusal)"),
            "invalid_parameter": (400, "InvalidArgument", "Invalid argument (sandbox refusal)"),
            "quota_exceeded": (400, "TooManyBuckets", "You have attempted to create more buckets than allowed (sandbox refusal)"),
        }[kind]
    else:
        invalid = "InvalidParameterException" if "secretsmanager" in environ.get("HTTP_X_AMZ_TARGET", "") else "InvalidRequestException"
        status, code, message = {
            "access_denied": (400, "AccessDeniedException", f"User: {principal} is not authorized to perform: {operation} (sandbox refusal)"),
            "invalid_parameter": (400, invalid, f"Invalid parameter for {operation} (sandbox refusal)"),
            "quota_exceeded": (400, "LimitExceededException", f"Limit exceeded for {operation} (sandbox refusal)"),
        }[kind]
    return _aws_error(start_response, shape, "", status=status, code=code, message=message)


def _dbx_error(start_response: Callable, status: int, error_code: str, message: str) -> list[bytes]:
    data = json.dumps({"error_code": error_code, "message": message}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    if status in (429, 503):
        headers.append(("Retry-After", "1"))
    start_response(_status(status), headers)
    return [data]
