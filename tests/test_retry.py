"""The retry classifier and policy, against real botocore and databricks-sdk error objects, on a fake clock."""

from __future__ import annotations

import json
import random

import pytest
import requests
from botocore.exceptions import ClientError, EndpointConnectionError
from databricks.sdk.errors import (
    BadRequest,
    NotFound,
    PermissionDenied,
    ResourceDoesNotExist,
    TemporarilyUnavailable,
    TooManyRequests,
)
from databricks.sdk.errors.parser import _Parser

from provision.errors import InjectedFault, RetryDeadlineExceeded
from provision.clouds import error_rules
from provision.orchestrator.retry import IAM_PROPAGATION, RetryPolicy

# The one classifier of a run on AWS with Databricks, as the composition root builds it.
RULES = error_rules(("aws", "databricks"))
classify, is_not_found = RULES.classify, RULES.is_not_found

from fakes import FakeClock


pytestmark = pytest.mark.usefixtures("no_real_sleep")




def policy(clock: FakeClock, **kw) -> RetryPolicy:
    return RetryPolicy(clock=clock, sleep=clock.sleep, rng=random.Random(7), errors=RULES, **kw)


def aws(code: str, message: str = "", status: int = 400, op: str = "CreateVpc") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "r-1"}},
        op,
    )


def dbx(status: int, body, headers: dict | None = None, reason: str = ""):
    """A Databricks error built the way the SDK builds it: from an HTTP response, through its parser."""
    response = requests.Response()
    response.status_code = status
    response.reason = reason or requests.status_codes._codes[status][0].replace("_", " ").title()
    response._content = (json.dumps(body) if isinstance(body, dict) else body).encode()
    response.headers.update(headers or {})
    response.request = requests.Request("POST", "https://accounts.cloud.databricks.com/api/2.0/accounts/a/workspaces").prepare()
    response.url = response.request.url
    error = _Parser().get_api_error(response)
    assert error is not None
    return error


# --- classify: AWS -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, reason",
    [
        (aws("Throttling", "Rate exceeded"), "throttled (Throttling)"),
        (aws("RequestLimitExceeded", "Request limit exceeded."), "throttled (RequestLimitExceeded)"),
        (aws("SlowDown", "Please reduce your request rate.", 503), "throttled (SlowDown)"),
        (aws("InternalError", "We encountered an internal error.", 500), "server error (InternalError)"),
        (aws("ServiceUnavailable", "Service is unavailable", 503), "server error (ServiceUnavailable)"),
        (aws("", "", 503), "server error (503)"),
        (aws("SomethingNew", "odd", 502), "server error (SomethingNew)"),
    ],
)
def test_classify_aws_transient(exc, reason):
    assert classify(exc) == reason


@pytest.mark.parametrize(
    "exc",
    [
        aws("AccessDenied", "User: arn:aws:iam::123:user/x is not authorized to perform: ec2:CreateVpc", 403),
        aws("UnauthorizedOperation", "You are not authorized to perform this operation.", 403),
        aws("InvalidParameterValue", "Value (foo) for parameter cidrBlock is invalid."),
        aws("VpcLimitExceeded", "The maximum number of VPCs has been reached."),
        aws("AddressLimitExceeded", "The maximum number of addresses has been reached."),
        aws("MalformedPolicyDocument", "Syntax errors in policy.", op="PutRolePolicy"),
        aws("InvalidVpcID.NotFound", "The vpc ID 'vpc-1' does not exist"),
    ],
)
def test_classify_aws_terminal(exc):
    assert classify(exc) is None


@pytest.mark.parametrize(
    "exc",
    [
        aws("MalformedPolicyDocument", 'Invalid principal in policy: "AWS":"arn:aws:iam::123:role/x"', op="PutBucketPolicy"),
        aws("MalformedPolicy", "Invalid principal in policy", op="PutBucketPolicy"),
        aws("InvalidParameterValue", "Value (x) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"),
        aws("InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda."),
        aws("AccessDenied", "User: arn:aws:sts::1:assumed-role/x is not authorized to perform: sts:AssumeRole on resource", 403),
    ],
)
def test_classify_aws_iam_propagation(exc):
    assert classify(exc) == IAM_PROPAGATION


def test_classify_connection_errors():
    assert classify(EndpointConnectionError(endpoint_url="https://ec2.us-east-1.amazonaws.com/")) == "connection (EndpointConnectionError)"
    assert classify(requests.ConnectionError("reset")) == "connection (ConnectionError)"


def test_classify_an_html_error_page_instead_of_the_api_answer_as_transient():
    from botocore.parsers import ResponseParserError

    page = ResponseParserError("Unable to parse response (syntax error), invalid XML received: b'<!doctype html>'")
    assert classify(page) == "unparseable response"


def test_classify_plain_errors_are_terminal():
    assert classify(ValueError("bug")) is None
    assert classify(KeyError("x")) is None
    assert classify(TimeoutError("no cause")) is None


def test_classify_injected_faults():
    assert classify(InjectedFault("vpc:before_create", transient=True)) == "injected transient fault"
    assert classify(InjectedFault("vpc:before_create", transient=False)) is None


# --- classify: Databricks ----------------------------------------------------------------------


def test_classify_databricks_throttled():
    error = dbx(429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}, {"Retry-After": "3"})
    assert isinstance(error, TooManyRequests)
    assert classify(error) == "throttled (429)"
    assert classify(TooManyRequests("too many", error_code="TOO_MANY_REQUESTS")) == "throttled (429)"


def test_classify_databricks_unavailable():
    error = dbx(503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try later"})
    assert isinstance(error, TemporarilyUnavailable)
    assert classify(error) is not None
    assert classify(TemporarilyUnavailable("down", error_code="TEMPORARILY_UNAVAILABLE")) is not None


@pytest.mark.parametrize(
    "status, body",
    [
        (500, {"error_code": "INTERNAL_ERROR", "message": "KeyError: 'x'"}),
        (502, "<html><head><title>502 Bad Gateway</title></head></html>"),
    ],
)
def test_classify_databricks_server_errors_are_transient(status, body):
    # BUG: the SDK's errors carry no HTTP response, so `_databricks_error` always sees status 0 and a
    # Databricks 500/502 is classified terminal.
    assert classify(dbx(status, body)) is not None


def test_classify_databricks_iam_propagation():
    message = "Failed credentials validation checks: Verify that the role has an appropriate trust policy"
    error = dbx(400, {"error_code": "MALFORMED_REQUEST", "message": message})
    assert isinstance(error, BadRequest)
    assert classify(error) == IAM_PROPAGATION
    assert classify(BadRequest(message, error_code="INVALID_PARAMETER_VALUE")) == IAM_PROPAGATION


@pytest.mark.parametrize(
    "exc",
    [
        BadRequest("Workspace name is invalid", error_code="INVALID_PARAMETER_VALUE"),
        PermissionDenied("not an account admin", error_code="PERMISSION_DENIED"),
        NotFound("no such workspace", error_code="NOT_FOUND"),
    ],
)
def test_classify_databricks_terminal(exc):
    assert classify(exc) is None


def test_classify_sdk_timeout_wrapping_a_429_is_retryable():
    try:
        try:
            raise dbx(429, {"error_code": "TOO_MANY_REQUESTS", "message": "slow down"})
        except TooManyRequests as inner:
            raise TimeoutError("Timed out after 0:05:00") from inner
    except TimeoutError as outer:
        assert classify(outer) == "throttled (429)"


def test_classify_sdk_timeout_wrapping_a_terminal_error_is_terminal():
    outer = TimeoutError("Timed out after 0:05:00")
    outer.__cause__ = PermissionDenied("no", error_code="PERMISSION_DENIED")
    assert classify(outer) is None


# --- is_not_found ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        aws("InvalidVpcID.NotFound", "The vpc ID 'vpc-1' does not exist"),
        aws("InvalidNatGatewayID.NotFound", "nat"),
        aws("NoSuchBucket", "The specified bucket does not exist", 404),
        aws("NoSuchEntity", "The role with name x cannot be found.", 404),
        aws("404", "Not Found", 404),
        aws("NoSuchBucketPolicy", "The bucket policy does not exist", 404),
        aws("NotFoundException", "Key 'arn:aws:kms:us-east-1:1:key/k' does not exist", 400),
        dbx(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Workspace 1 does not exist."}),
        dbx(404, {"error_code": "NOT_FOUND", "message": "nope"}),
        ResourceDoesNotExist("Credential c does not exist.", error_code="RESOURCE_DOES_NOT_EXIST"),
    ],
)
def test_is_not_found(exc):
    assert is_not_found(exc)


@pytest.mark.parametrize(
    "exc",
    [
        aws("AccessDenied", "denied", 403),
        aws("Throttling", "slow", 400),
        aws("InternalError", "", 500),
        PermissionDenied("denied", error_code="PERMISSION_DENIED"),
        ValueError("not found"),
    ],
)
def test_is_not_found_false(exc):
    assert not is_not_found(exc)


def test_each_cloud_brings_its_own_rules_and_none_without_its_cloud():
    throttled, gone = aws("Throttling", "slow", 400), aws("InvalidVpcID.NotFound", "nope", 400)
    limited = dbx(429, {"error_code": "TOO_MANY_REQUESTS", "message": "slow down"})
    alone = error_rules(("databricks",))
    assert alone.classify(throttled) is None and not alone.is_not_found(gone)
    assert alone.classify(limited) == "throttled (429)"
    # Cloud-neutral rules hold whatever the clouds: connection trouble, injected faults.
    assert error_rules(()).classify(EndpointConnectionError(endpoint_url="https://x")) == "connection (EndpointConnectionError)"
    assert error_rules(()).classify(throttled) is None


def test_already_exists_and_in_use_are_the_clouds_say():
    assert RULES.is_already_exists(aws("EntityAlreadyExists", "Role with name x already exists.", 409))
    assert RULES.is_already_exists(aws("RouteAlreadyExists", "route", 400))
    assert RULES.is_already_exists(dbx(409, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": "exists"}))
    assert not RULES.is_already_exists(aws("InvalidVpcID.NotFound", "nope", 400))
    assert RULES.is_in_use(aws("DependencyViolation", "The vpc 'vpc-1' has dependencies and cannot be deleted.", 400))
    assert not RULES.is_in_use(aws("InvalidVpcID.NotFound", "nope", 400))


def test_resource_does_not_exist_is_a_not_found():
    assert isinstance(dbx(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "x"}), ResourceDoesNotExist)


# --- RetryPolicy -------------------------------------------------------------------------------


def failing(*errors, result="ok"):
    """fn that raises each of `errors` in turn, then returns `result`; .calls counts invocations."""
    queue = list(errors)

    def fn():
        fn.calls += 1
        if queue:
            raise queue.pop(0)
        return result

    fn.calls = 0
    return fn


def test_retries_transient_errors_then_succeeds():
    clock = FakeClock()
    fn = failing(aws("Throttling"), aws("InternalError", status=500), EndpointConnectionError(endpoint_url="https://x"))
    assert policy(clock).call(fn, what="create vpc") == "ok"
    assert fn.calls == 4
    assert len(clock.sleeps) == 3


def test_terminal_error_raises_immediately_after_one_call():
    clock = FakeClock()
    error = aws("VpcLimitExceeded", "The maximum number of VPCs has been reached.")
    fn = failing(error)
    with pytest.raises(ClientError) as info:
        policy(clock).call(fn, what="create vpc")
    assert info.value is error
    assert fn.calls == 1
    assert clock.sleeps == []


def test_gives_up_at_the_deadline():
    clock = FakeClock()
    fn = failing(*[aws("Throttling", "Rate exceeded")] * 1000)
    with pytest.raises(RetryDeadlineExceeded) as info:
        policy(clock, deadline_seconds=60).call(fn, what="create vpc")
    assert clock.now - 1000.0 == pytest.approx(60)
    assert info.value.reason == "throttled (Throttling)"
    assert "create vpc" in str(info.value) and "throttled (Throttling)" in str(info.value)
    assert "Rate exceeded" in str(info.value)
    assert isinstance(info.value.last_error, ClientError)
    assert info.value.__cause__ is info.value.last_error
    assert "trust policy" not in str(info.value)
    assert 4 < fn.calls < 60


def test_iam_propagation_deadline_carries_trust_policy_hint():
    clock = FakeClock()
    message = "Failed credentials validation checks: Verify that the role has an appropriate trust policy"
    fn = failing(*[BadRequest(message, error_code="MALFORMED_REQUEST")] * 1000)
    with pytest.raises(RetryDeadlineExceeded) as info:
        policy(clock, deadline_seconds=120).call(fn, what="create credentials")
    text = str(info.value)
    assert info.value.reason == IAM_PROPAGATION
    assert IAM_PROPAGATION in text
    for fragment in ("trust policy", "414351767826", "ExternalId"):
        assert fragment in text


def test_sleeps_grow_and_are_bounded():
    clock = FakeClock()
    fn = failing(*[aws("RequestLimitExceeded")] * 1000)
    with pytest.raises(RetryDeadlineExceeded):
        policy(clock, deadline_seconds=300, initial_seconds=1, max_seconds=8).call(fn, what="x")
    sleeps = clock.sleeps
    assert all(0 <= s <= 8 for s in sleeps)
    # With full jitter in [ceiling/2, ceiling] and a doubling ceiling, delays never shrink before the cap.
    assert sleeps[:4] == sorted(sleeps[:4])
    assert sleeps[0] <= 1 and sleeps[3] >= 4
    assert min(sleeps[4:-1]) >= 4  # at the cap: between max/2 and max
    assert sum(sleeps) == pytest.approx(300)


def test_retry_after_is_honoured():
    clock = FakeClock()
    throttled = dbx(429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}, {"Retry-After": "7"})
    assert throttled.retry_after_secs == 7
    fn = failing(throttled)
    assert policy(clock, initial_seconds=1, max_seconds=20).call(fn, what="x") == "ok"
    assert clock.sleeps[0] >= 7


def test_retry_after_never_sleeps_past_the_deadline():
    clock = FakeClock()
    fn = failing(*[TooManyRequests("slow", error_code="TOO_MANY_REQUESTS", retry_after_secs=50)] * 10)
    with pytest.raises(RetryDeadlineExceeded):
        policy(clock, deadline_seconds=30).call(fn, what="x")
    assert clock.sleeps[0] == pytest.approx(30)
    assert clock.now - 1000.0 == pytest.approx(30)


def test_on_retry_gets_reason_attempt_sleep_and_error():
    clock = FakeClock()
    first, second = aws("Throttling"), aws("InternalError", status=500)
    seen = []
    fn = failing(first, second)
    policy(clock).call(fn, what="x", on_retry=lambda reason, attempt, sleep, exc: seen.append((reason, attempt, sleep, exc)))
    assert [(r, a, e) for r, a, _, e in seen] == [("throttled (Throttling)", 1, first), ("server error (InternalError)", 2, second)]
    assert [s for _, _, s, _ in seen] == clock.sleeps


def test_custom_classifier():
    clock = FakeClock()
    fn = failing(ValueError("flaky"), ValueError("flaky"))
    assert policy(clock).call(fn, what="x", classifier=lambda exc: "flaky" if isinstance(exc, ValueError) else None) == "ok"
    assert fn.calls == 3
