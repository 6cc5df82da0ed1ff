"""The sandbox's rate limits (provision/sandbox/ratelimit.py) answer as the real services do, and only where
they do: each test fails against an emulator that lets every call through.

The apps are wrapped as server.py wraps them (the RateLimiter inside the FaultInjector, the control app in
front of the emulator); one test goes through the worker's sandbox daemon to check serve() itself.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from databricks.sdk.errors import TooManyRequests
from sandbox_helpers import REGION, account_client, serve

from provision.app.server import _control
from provision.clouds.aws.sandbox import make_aws_app
from provision.clouds.databricks import sandbox as emulator
from provision.clouds.databricks.sdk_adapter import no_resends
from provision.sandbox import daemon
from provision.sandbox.faults import FaultInjector
from provision.sandbox.latency import settings_for
from provision.sandbox.ratelimit import RateLimiter
from provision.sandbox.settings import SandboxSettings

OFF = {"databricks_rate_limit": 0, "databricks_rate_burst": 0, "ec2_rate_scale": 0, "ec2_bucket_scale": 1}
OTHER_ACCOUNT = "0b0b0b0b-0000-4000-8000-00000000000b"


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    return SandboxSettings()


@pytest.fixture(scope="module")
def limits(settings: SandboxSettings) -> RateLimiter:
    return RateLimiter(settings)


@pytest.fixture(scope="module")
def dbx_url(settings: SandboxSettings, limits: RateLimiter) -> Iterator[str]:
    faults = FaultInjector(settings)
    yield from serve(_control(settings, faults.wrap(limits.wrap(emulator.make_databricks_app(settings), "databricks"), "databricks"), faults, limits))


@pytest.fixture(scope="module")
def aws_url(settings: SandboxSettings, limits: RateLimiter) -> Iterator[str]:
    yield from serve(FaultInjector(settings).wrap(limits.wrap(make_aws_app(settings), "aws"), "aws"))


@pytest.fixture(autouse=True)
def limits_off(settings: SandboxSettings, limits: RateLimiter) -> Iterator[None]:
    settings.update(OFF)
    limits.reset()
    yield
    settings.update(OFF)


def http(url: str, path: str, method: str = "GET", token: str = "") -> tuple[int, dict, Any]:
    request = urllib.request.Request(url + path, method=method, data=b"{}" if method == "POST" else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def ec2(aws_url: str) -> Any:
    """One attempt per call (botocore's retries off), so every refusal reaches the test."""
    return boto3.client("ec2", endpoint_url=aws_url, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=BotoConfig(retries={"total_max_attempts": 1, "mode": "standard"}))


# --- Databricks Account API ---------------------------------------------------------------------------------


def test_an_account_burst_beyond_its_bucket_gets_429_retry_after_and_the_databricks_error(settings, dbx_url):
    settings.update({"databricks_rate_limit": 0.5, "databricks_rate_burst": 3})
    workspaces = f"/api/2.0/accounts/{settings.account_id}/workspaces"
    answers = [http(dbx_url, workspaces, token=settings.token) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    _, headers, body = answers[-1]
    assert int(headers["Retry-After"]) == 2  # one token at 0.5 a second, in whole seconds
    assert body["error_code"] == "REQUEST_LIMIT_EXCEEDED" and "token bucket limit has been exceeded" in body["message"]
    # databricks-sdk reads it as a 429 with Retry-After (on a POST, which our adapter never lets it re-send).
    acc = account_client(dbx_url, settings.account_id, settings.token)
    no_resends(acc.api_client)
    with pytest.raises(TooManyRequests) as refused:
        acc.workspaces.create(workspace_name="w", aws_region=REGION)
    assert type(refused.value).__name__ == "RequestLimitExceeded" and refused.value.error_code == "REQUEST_LIMIT_EXCEEDED"
    assert http(dbx_url, "/_sandbox/throttled")[2] == {"databricks": 2, "ec2": 0}


def test_refill_lets_account_calls_through_again(settings, dbx_url):
    settings.update({"databricks_rate_limit": 2, "databricks_rate_burst": 1})  # slow enough for a loaded machine
    workspaces = f"/api/2.0/accounts/{settings.account_id}/workspaces"
    assert [http(dbx_url, workspaces, token=settings.token)[0] for _ in range(2)] == [200, 429]
    time.sleep(0.6)  # one token at 2 a second
    assert http(dbx_url, workspaces, token=settings.token)[0] == 200


def test_other_accounts_workspace_apis_and_control_paths_are_not_limited(settings, dbx_url):
    settings.update({"databricks_rate_limit": 0.01, "databricks_rate_burst": 1})
    mine = f"/api/2.0/accounts/{settings.account_id}/workspaces"
    assert [http(dbx_url, mine, token=settings.token)[0] for _ in range(2)] == [200, 429]
    other = http(dbx_url, f"/api/2.0/accounts/{OTHER_ACCOUNT}/workspaces", token=settings.token)
    assert other[0] != 429  # its own bucket (the emulator then refuses the unknown account its own way)
    assert http(dbx_url, "/workspaces/nowhere/api/2.0/clusters/list", token=settings.token)[0] != 429
    for _ in range(5):
        assert http(dbx_url, "/_sandbox/config")[0] == 200
    assert http(dbx_url, "/_sandbox/throttled/reset", "POST")[2] == {"databricks": 0, "ec2": 0}
    assert http(dbx_url, mine, token=settings.token)[0] == 200  # the reset refilled the bucket


# --- EC2 --------------------------------------------------------------------------------------------------


def test_an_ec2_describe_burst_gets_request_limit_exceeded_in_ec2s_shape(settings, ec2, aws_url, dbx_url):
    settings.update({"ec2_rate_scale": 0.001, "ec2_bucket_scale": 0.03})  # Describe*: 3 tokens, next in ~17 s
    for _ in range(3):
        ec2.describe_vpcs()
    with pytest.raises(ClientError) as refused:
        ec2.describe_vpcs()
    error = refused.value.response
    assert error["Error"] == {"Code": "RequestLimitExceeded", "Message": "Request limit exceeded."}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
    ec2.describe_subnets()  # each action has its own bucket
    ec2.create_vpc(CidrBlock="10.9.0.0/16")  # mutating: 50 x 0.03, at least one token
    with pytest.raises(ClientError, match="RequestLimitExceeded"):
        ec2.create_vpc(CidrBlock="10.9.0.0/16")
    iam = boto3.client("iam", endpoint_url=aws_url, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    for _ in range(5):
        iam.list_roles()  # not EC2: not limited
    assert http(dbx_url, "/_sandbox/throttled")[2] == {"databricks": 0, "ec2": 2}


def test_unfiltered_describes_of_the_listed_actions_draw_on_the_smaller_bucket(settings, ec2):
    settings.update({"ec2_rate_scale": 0.001, "ec2_bucket_scale": 0.04})  # unfiltered 2 tokens, filtered 4
    ec2.describe_security_groups()
    ec2.describe_security_groups()
    with pytest.raises(ClientError, match="RequestLimitExceeded"):
        ec2.describe_security_groups()
    for _ in range(4):
        ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])


def test_ec2_refill_lets_calls_through_again(settings, ec2):
    # Describe*: 1 token, 2 a second (slow enough that a loaded machine still makes the second call in time)
    settings.update({"ec2_rate_scale": 0.1, "ec2_bucket_scale": 0.01})
    ec2.describe_vpcs()
    with pytest.raises(ClientError, match="RequestLimitExceeded"):
        ec2.describe_vpcs()
    time.sleep(0.6)
    ec2.describe_vpcs()


def test_off_by_default_and_on_in_the_realistic_profile_at_the_scaled_rate(settings, ec2, dbx_url):
    defaults = SandboxSettings()
    assert (defaults.databricks_rate_limit, defaults.ec2_rate_scale) == (0.0, 0.0)
    for _ in range(30):
        ec2.describe_vpcs()
        assert http(dbx_url, f"/api/2.0/accounts/{settings.account_id}/workspaces", token=settings.token)[0] == 200
    profile = settings_for("realistic", 0.05)  # a run 20 times faster meets the same limits in its own seconds
    assert profile["databricks_rate_limit"] == pytest.approx(20 / 0.05) and profile["databricks_rate_burst"] == 20
    assert profile["ec2_rate_scale"] == pytest.approx(20.0)
    assert http(dbx_url, "/_sandbox/throttled")[2] == {"databricks": 0, "ec2": 0}


def test_the_daemon_serves_the_limits_and_their_counters(sandbox):
    host = sandbox.databricks_host
    daemon.request(host, "/_sandbox/throttled/reset", "POST", {})
    daemon.configure(sandbox, {"databricks_rate_limit": 0.01, "databricks_rate_burst": 1})
    try:
        workspaces = f"/api/2.0/accounts/{sandbox.databricks_account_id}/workspaces"
        assert [http(host, workspaces, token=sandbox.databricks_token)[0] for _ in range(2)] == [200, 429]
        assert daemon.request(host, "/_sandbox/throttled") == {"databricks": 1, "ec2": 0}
    finally:
        daemon.configure(sandbox, OFF)
        daemon.request(host, "/_sandbox/throttled/reset", "POST", {})
