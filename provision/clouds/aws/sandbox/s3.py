"""Rule 11: S3 requests are treated as made over https. Rule 18: conditional writes answer as S3 does.

Bucket policy conditions on `aws:SecureTransport` (true) and `s3:TlsVersion` (1.3) are decided before moto
evaluates the policy, so a statement that AWS would not apply over TLS (e.g. Deny s3:* when
aws:SecureTransport is "false") no longer denies object writes and DeleteObjects here (moto ignores the
`Bool` operator, so it applied that Deny to every request). Other conditions are left to moto as before.

Rule 18 (remote state relies on it): moto checks `If-Match`/`If-None-Match` on PutObject and `If-Match` on
DeleteObject, then writes, as two steps with no lock between them, so two concurrent `If-None-Match: *`
PUTs could both succeed. Here the check and the write are one step (every PUT and DELETE of an object runs
under patching's STATE_LOCK), so exactly one wins and the other gets 412 PreconditionFailed. And
`If-None-Match` takes only `*` on a write: S3 answers any other value 501 NotImplemented (moto ignored it
and wrote).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moto.iam.access_control import IAMPolicy
from moto.s3.models import FakeBucket
from moto.s3.responses import S3Response

from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings

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


@patch(FakeBucket, "get_permission")
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


# S3's own answer; moto's S3 model has no NotImplemented shape (it would answer 400), so the response is built here.
_NOT_IMPLEMENTED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code><Message>A header you provided implies '
    "functionality that is not implemented</Message><Header>{header}</Header></Error>"
)


@patch(S3Response, "put_object")
def _put_object(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    # Runs under STATE_LOCK (patching._gated): no other object PUT or DELETE between moto's check and its write.
    if_none_match = self.headers.get("If-None-Match")
    if if_none_match is not None and if_none_match.strip() != "*":
        return 501, {"Content-Type": "application/xml"}, _NOT_IMPLEMENTED.format(header="If-None-Match")
    return original(self)


@patch(S3Response, "delete_object")
def _delete_object(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    # Under STATE_LOCK too, so a conditional DELETE cannot interleave with a conditional PUT of the key.
    return original(self)


# --- inventory (listing.py) ------------------------------------------------------------------------


@lists("bucket")
def _list_buckets(clients: Clients) -> list[dict]:
    return clients("s3").list_buckets().get("Buckets", [])
