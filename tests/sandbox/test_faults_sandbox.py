"""Seeded fault injection (provision/sandbox/faults.py): throttling, 500s, dropped connections, Databricks
429/503, lost responses, reproducibility, never-faulted control paths, counters.

The apps are wrapped exactly as server.py wraps them: one FaultInjector around the AWS app and the
emulator, with the control app (and its /_sandbox/faults endpoints) in front of the emulator.
"""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
)
from databricks.sdk import AccountClient
from databricks.sdk.config import Config
from databricks.sdk.errors import DatabricksError
from sandbox_helpers import REGION, databricks_role, serve

from provision.app.server import _control
from provision.clouds.aws.sandbox import make_aws_app
from provision.clouds.databricks import sandbox as emulator
from provision.sandbox.faults import FaultInjector
from provision.sandbox.settings import SandboxSettings

CONNECTION_ERRORS = (ConnectionClosedError, EndpointConnectionError)


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    return SandboxSettings()


@pytest.fixture(scope="module")
def injector(settings: SandboxSettings) -> FaultInjector:
    return FaultInjector(settings)


@pytest.fixture(scope="module")
def aws_url(settings: SandboxSettings, injector: FaultInjector) -> Iterator[str]:
    yield from serve(injector.wrap(make_aws_app(settings), "aws"))


@pytest.fixture(scope="module")
def dbx_url(settings: SandboxSettings, injector: FaultInjector) -> Iterator[str]:
    yield from serve(_control(settings, injector.wrap(emulator.make_databricks_app(settings), "databricks"), injector))


@pytest.fixture(autouse=True)
def faults_off(settings: SandboxSettings, injector: FaultInjector) -> Iterator[None]:
    settings.update({"fault_rate": 0, "lost_response_rate": 0, "fault_seed": 0})
    injector.reset()
    yield
    settings.update({"fault_rate": 0, "lost_response_rate": 0, "fault_seed": 0})


def client(service: str, url: str) -> Any:
    """A boto3 client that makes exactly one attempt, so every injected fault reaches the test."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=BotoConfig(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=5),
    )


@pytest.fixture(scope="module")
def ec2(aws_url: str) -> Any:
    return client("ec2", aws_url)


def http(url: str, method: str = "GET", body: dict | None = None, token: str | None = None) -> tuple[int, dict, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def configure(dbx_url: str, **values: float) -> dict:
    status, _, body = http(f"{dbx_url}/_sandbox/config", "POST", values)
    assert status == 200, body
    return body


def counters(dbx_url: str) -> dict:
    status, _, body = http(f"{dbx_url}/_sandbox/faults")
    assert status == 200
    return body


def outcome(call: Callable[..., Any], **kwargs: Any) -> str:
    """"ok", the error code of a ClientError, or the name of a connection error."""
    try:
        call(**kwargs)
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    except CONNECTION_ERRORS as exc:
        return type(exc).__name__
    return "ok"


def tagged(tag: str) -> list[dict]:
    return [{"ResourceType": "vpc", "Tags": [{"Key": "fault-test", "Value": tag}]}]


def vpcs_tagged(ec2: Any, tag: str) -> list[dict]:
    return ec2.describe_vpcs(Filters=[{"Name": "tag:fault-test", "Values": [tag]}])["Vpcs"]


# --- AWS ----------------------------------------------------------------------------------------------------


def test_fault_rate_one_fails_every_ec2_call_and_creates_nothing(ec2: Any, dbx_url: str) -> None:
    tag = uuid.uuid4().hex
    configure(dbx_url, fault_rate=1, fault_seed=3)
    outcomes = []
    for _ in range(12):
        try:
            ec2.create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=tagged(tag))
            outcomes.append("ok")
        except ClientError as exc:
            assert exc.response["Error"]["Code"] in {"RequestLimitExceeded", "InternalError"}
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == (
                503 if exc.response["Error"]["Code"] == "RequestLimitExceeded" else 500
            )
            outcomes.append(exc.response["Error"]["Code"])
        except ConnectionClosedError:
            outcomes.append("ConnectionClosedError")
    assert "ok" not in outcomes
    assert set(outcomes) == {"RequestLimitExceeded", "InternalError", "ConnectionClosedError"}
    configure(dbx_url, fault_rate=0)
    assert vpcs_tagged(ec2, tag) == []
    injected = counters(dbx_url)["injected"]
    assert sum(injected.values()) == 12
    assert injected["dropped_connection"] == outcomes.count("ConnectionClosedError")
    assert injected["throttling"] == outcomes.count("RequestLimitExceeded")


def test_same_seed_same_request_sequence_same_faults(ec2: Any, dbx_url: str) -> None:
    configure(dbx_url, fault_rate=0.5, fault_seed=1234)

    def run() -> list[str]:
        http(f"{dbx_url}/_sandbox/faults/reset", "POST")  # reseeds the RNG from fault_seed
        return [outcome(ec2.describe_vpcs) for _ in range(16)]

    first, second = run(), run()
    assert first == second
    assert "ok" in first and any(o != "ok" for o in first)
    configure(dbx_url, fault_seed=99)  # a new seed reseeds at once: a different sequence
    http(f"{dbx_url}/_sandbox/faults/reset", "POST")
    assert [outcome(ec2.describe_vpcs) for _ in range(16)] != first


def test_lost_response_on_create_vpc_is_applied(ec2: Any, dbx_url: str) -> None:
    configure(dbx_url, lost_response_rate=1, fault_seed=5)
    assert outcome(ec2.describe_vpcs) == "ok"  # reads are never "lost"
    seen = set()
    tags = [uuid.uuid4().hex for _ in range(6)]
    for tag in tags:
        result = outcome(ec2.create_vpc, CidrBlock="10.8.0.0/16", TagSpecifications=tagged(tag))
        assert result in {"ServiceUnavailable", "ConnectionClosedError"}
        seen.add(result)
    assert seen == {"ServiceUnavailable", "ConnectionClosedError"}
    configure(dbx_url, lost_response_rate=0)
    for tag in tags:
        assert len(vpcs_tagged(ec2, tag)) == 1  # created, though the client never heard of it
    assert counters(dbx_url) == {"injected": {}, "lost_responses": 6}


def test_lost_response_passes_backend_errors_through(ec2: Any, dbx_url: str) -> None:
    configure(dbx_url, lost_response_rate=1)
    assert outcome(ec2.delete_vpc, VpcId="vpc-0000000000000dead") == "InvalidVpcID.NotFound"
    assert counters(dbx_url)["lost_responses"] == 0


def test_dropped_connection_is_a_botocore_connection_error(ec2: Any, dbx_url: str) -> None:
    # The first draw of seed 3 at fault_rate=1 is a dropped connection (see the test above).
    configure(dbx_url, fault_rate=1, fault_seed=3)
    kinds = [outcome(ec2.describe_vpcs) for _ in range(6)]
    assert "ConnectionClosedError" in kinds
    http(f"{dbx_url}/_sandbox/faults/reset", "POST")  # replay the same sequence up to its first drop
    with pytest.raises(ConnectionClosedError):
        for _ in range(kinds.index("ConnectionClosedError")):
            with pytest.raises(ClientError):
                ec2.describe_vpcs()
        ec2.describe_vpcs()
    configure(dbx_url, fault_rate=0)
    assert outcome(ec2.describe_vpcs) == "ok"  # the server is fine after dropping connections


@pytest.mark.parametrize(
    ("service", "call", "throttle", "throttle_status"),
    [
        ("s3", lambda c: c.create_bucket(Bucket=f"b-{uuid.uuid4().hex[:12]}"), "SlowDown", 503),
        ("iam", lambda c: c.list_roles(), "Throttling", 400),
        ("network-firewall", lambda c: c.list_firewalls(), "ThrottlingException", 400),
        ("secretsmanager", lambda c: c.list_secrets(), "ThrottlingException", 400),
    ],
)
def test_throttling_and_500_shapes_per_protocol(
    aws_url: str, dbx_url: str, service: str, call: Callable, throttle: str, throttle_status: int
) -> None:
    aws = client(service, aws_url)
    configure(dbx_url, fault_rate=1, fault_seed=11)
    statuses: dict[str, int] = {}
    for _ in range(10):
        try:
            call(aws)
        except ClientError as exc:
            statuses[exc.response["Error"]["Code"]] = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        except CONNECTION_ERRORS:
            statuses["dropped"] = 0
    assert statuses == {throttle: throttle_status, "InternalError": 500, "dropped": 0}
    configure(dbx_url, fault_rate=0)
    call(aws)


# --- Databricks ----------------------------------------------------------------------------------------------


def sdk(dbx_url: str, settings: SandboxSettings, retry_timeout_seconds: int) -> AccountClient:
    return AccountClient(
        config=Config(
            host=dbx_url,
            account_id=settings.account_id,
            token=settings.token,
            auth_type="pat",
            retry_timeout_seconds=retry_timeout_seconds,
            http_timeout_seconds=5,
        )
    )


def test_databricks_429_and_503_shapes(dbx_url: str, settings: SandboxSettings) -> None:
    configure(dbx_url, fault_rate=1, fault_seed=2)
    url = f"{dbx_url}/api/2.0/accounts/{settings.account_id}/workspaces"
    seen = {}
    for _ in range(8):
        status, headers, body = http(url, token=settings.token)
        seen[status] = body["error_code"]
        if status == 429:
            assert headers["Retry-After"] == "1"
    assert seen == {429: "TOO_MANY_REQUESTS", 503: "TEMPORARILY_UNAVAILABLE"}
    injected = counters(dbx_url)["injected"]
    assert sum(injected.values()) == 8 and set(injected) == {"too_many_requests", "temporarily_unavailable"}


def test_databricks_sdk_surfaces_retry_after(dbx_url: str, settings: SandboxSettings) -> None:
    configure(dbx_url, fault_rate=1)
    with pytest.raises(TimeoutError) as info:
        list(sdk(dbx_url, settings, retry_timeout_seconds=1).workspaces.list())
    cause = info.value.__cause__
    assert isinstance(cause, DatabricksError)
    assert cause.error_code in {"TOO_MANY_REQUESTS", "TEMPORARILY_UNAVAILABLE"}
    assert cause.retry_after_secs == 1


def first_fail_then_pass(rate: float) -> int:
    """A seed whose first request is faulted and whose second is not (one retry, about a second)."""
    for seed in range(1000):
        rng = random.Random(seed)
        if rng.random() < rate:
            rng.randrange(2)
            if rng.random() >= rate:
                return seed
    raise AssertionError("no such seed")


def test_databricks_sdk_retries_through_faults(dbx_url: str, settings: SandboxSettings) -> None:
    configure(dbx_url, fault_rate=0.5, fault_seed=first_fail_then_pass(0.5))
    http(f"{dbx_url}/_sandbox/faults/reset", "POST")
    assert isinstance(list(sdk(dbx_url, settings, retry_timeout_seconds=10).workspaces.list()), list)
    assert sum(counters(dbx_url)["injected"].values()) == 1


def test_databricks_lost_response_applies_the_create(aws_url: str, dbx_url: str, settings: SandboxSettings) -> None:
    emulator.reset()
    configure(dbx_url, iam_propagation_seconds=0)
    role_arn = databricks_role(client("iam", aws_url), settings.account_id)
    configure(dbx_url, lost_response_rate=1, fault_seed=0)
    base = f"{dbx_url}/api/2.0/accounts/{settings.account_id}"
    status, _, body = http(f"{base}/credentials", token=settings.token)  # reads are never lost
    assert status == 200
    before = len(body or [])
    name = f"cred-{uuid.uuid4().hex[:6]}"
    payload = {"credentials_name": name, "aws_credentials": {"sts_role": {"role_arn": role_arn}}}
    try:
        status, _, body = http(f"{base}/credentials", "POST", payload, token=settings.token)
        assert status == 503 and body["error_code"] == "TEMPORARILY_UNAVAILABLE", body
    except (ConnectionError, urllib.error.URLError):
        pass  # the dropped-connection variant
    configure(dbx_url, lost_response_rate=0)
    status, _, body = http(f"{base}/credentials", token=settings.token)
    names = [c["credentials_name"] for c in body]
    assert len(names) == before + 1 and name in names
    assert counters(dbx_url)["lost_responses"] == 1


# --- never faulted, counters, settings ------------------------------------------------------------------------


def test_control_paths_and_probes_are_never_faulted(aws_url: str, dbx_url: str, settings: SandboxSettings) -> None:
    configure(dbx_url, fault_rate=1, lost_response_rate=1)
    for _ in range(5):
        assert http(f"{dbx_url}/_sandbox/health")[0] == 200
        assert http(f"{dbx_url}/_sandbox/config")[0] == 200
        assert http(f"{dbx_url}/_sandbox/faults")[0] == 200
        assert http(f"{dbx_url}/.well-known/databricks-config")[0] == 200
        with urllib.request.urlopen(f"{aws_url}/moto-api/config", timeout=5) as r:
            assert r.status in (200, 201)
    assert counters(dbx_url) == {"injected": {}, "lost_responses": 0}
    configure(dbx_url, fault_rate=0, lost_response_rate=0)  # the switch itself is never faulted


def test_counters_and_reset(ec2: Any, dbx_url: str) -> None:
    assert counters(dbx_url) == {"injected": {}, "lost_responses": 0}
    configure(dbx_url, fault_rate=1, fault_seed=7)
    for _ in range(4):
        outcome(ec2.describe_vpcs)
    configure(dbx_url, fault_rate=0, lost_response_rate=1)
    outcome(ec2.create_vpc, CidrBlock="10.7.0.0/16", TagSpecifications=tagged(uuid.uuid4().hex))
    got = counters(dbx_url)
    assert sum(got["injected"].values()) == 4 and got["lost_responses"] == 1
    status, _, body = http(f"{dbx_url}/_sandbox/faults/reset", "POST")
    assert status == 200 and body == {"injected": {}, "lost_responses": 0}
    assert counters(dbx_url) == {"injected": {}, "lost_responses": 0}


def test_off_by_default_and_settings_validated(ec2: Any, dbx_url: str) -> None:
    config = http(f"{dbx_url}/_sandbox/config")[2]
    assert (config["fault_rate"], config["lost_response_rate"], config["fault_seed"]) == (0, 0, 0)
    assert all(outcome(ec2.describe_vpcs) == "ok" for _ in range(5))
    assert counters(dbx_url) == {"injected": {}, "lost_responses": 0}
    assert http(f"{dbx_url}/_sandbox/config", "POST", {"fault_rate": 1.5})[0] == 400
    assert http(f"{dbx_url}/_sandbox/config", "POST", {"fault_seed": 1.5})[0] == 400
    assert configure(dbx_url, fault_seed=42)["fault_seed"] == 42
    assert isinstance(configure(dbx_url, fault_seed=42)["fault_seed"], int)


# --- Terminal refusals (setting `refuse`) -------------------------------------------------------------------

NAME = f"refused-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    "service, call, kind, code, status",
    [
        ("ec2", lambda c: c.create_vpc(CidrBlock="10.9.0.0/16"), "quota_exceeded", "VpcLimitExceeded", 400),
        ("ec2", lambda c: c.create_vpc(CidrBlock="10.9.0.0/16"), "access_denied", "UnauthorizedOperation", 403),
        ("iam", lambda c: c.create_role(RoleName=NAME, AssumeRolePolicyDocument="{}"), "access_denied", "AccessDenied", 403),
        ("iam", lambda c: c.create_role(RoleName=NAME + "-q", AssumeRolePolicyDocument="{}"), "quota_exceeded", "LimitExceeded", 409),
        ("s3", lambda c: c.create_bucket(Bucket=NAME), "quota_exceeded", "TooManyBuckets", 400),
        ("secretsmanager", lambda c: c.create_secret(Name=NAME, SecretString="v"), "invalid_parameter", "InvalidParameterException", 400),
    ],
)
def test_refusals_use_each_services_own_error_and_apply_nothing(aws_url, dbx_url, service, call, kind, code, status):
    # Named resources are created once, after the refusals: had a refused call been applied, it would clash.
    aws = client(service, aws_url)
    operation = {"ec2": "CreateVpc", "iam": "CreateRole", "s3": "CreateBucket", "secretsmanager": "CreateSecret"}[service]
    configure(dbx_url, refuse={operation: kind})
    try:
        for _ in range(3):  # every call, not a rate
            with pytest.raises(ClientError) as info:
                call(aws)
            assert info.value.response["Error"]["Code"] == code
            assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
            assert "sandbox refusal" in info.value.response["Error"]["Message"]
    finally:
        configure(dbx_url, refuse={})
    call(aws)  # the cause removed, the same call goes through


def test_databricks_refusal_names_its_error_code(dbx_url: str, settings: SandboxSettings) -> None:
    configure(dbx_url, refuse={"workspaces.create": "access_denied"})
    base = f"{dbx_url}/api/2.0/accounts/{settings.account_id}"
    try:
        status, _, body = http(f"{base}/workspaces", "POST", {"workspace_name": "x"}, token=settings.token)
        assert (status, body["error_code"]) == (403, "PERMISSION_DENIED")
        assert http(f"{base}/workspaces", token=settings.token)[0] == 200  # only the named operation
    finally:
        configure(dbx_url, refuse={})


def test_refuse_setting_rejects_unknown_kinds(dbx_url: str) -> None:
    status, _, body = http(f"{dbx_url}/_sandbox/config", "POST", {"refuse": {"CreateVpc": "sometimes"}})
    assert status == 400 and "refuse.CreateVpc" in body["error"]


# --- OAuth M2M (oauth.py) ------------------------------------------------------------------------------------


def test_oauth_m2m_service_principal_signs_in_through_the_sdk(dbx_url: str, settings: SandboxSettings) -> None:
    import hashlib

    secret = "sandbox-oauth-test-secret"
    configure(dbx_url, oauth_clients={"sp-1": hashlib.sha256(secret.encode()).hexdigest()})
    assert secret not in json.dumps(http(f"{dbx_url}/_sandbox/config")[2])  # only its digest is kept

    def account(client_secret: str) -> AccountClient:
        return AccountClient(config=Config(host=dbx_url, account_id=settings.account_id, client_id="sp-1",
                                           client_secret=client_secret, auth_type="oauth-m2m", retry_timeout_seconds=5))

    assert isinstance(list(account(secret).workspaces.list()), list)
    with pytest.raises(Exception, match="invalid_client"):
        list(account("wrong").workspaces.list())
    # A token from the account's issuer opens that account only.
    token = account(secret).config.authenticate()["Authorization"].split(" ", 1)[1]
    other = "0a4db0c5-0000-4000-8000-00000000000b"
    assert http(f"{dbx_url}/api/2.0/accounts/{settings.account_id}/workspaces", token=token)[0] == 200
    assert http(f"{dbx_url}/api/2.0/accounts/{other}/workspaces", token=token)[0] == 401
