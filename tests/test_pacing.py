"""Client-side pacing (orchestrator/pacing.py, provision/rate_limits.py): bucket math, one limiter shared by
threads and per account, the pause after Retry-After, and the real AWS and Databricks client hooks."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from databricks.sdk.errors.parser import _Parser
from fakes import FakeClock
from werkzeug.serving import make_server

from provision.clouds import error_rules
from provision.clouds.aws.clients import AwsClients, ec2_pacer
from provision.clouds.databricks.clients import account_pacer, workspace_pacer
from provision.clouds.databricks.sdk_adapter import no_resends, pace
from provision.orchestrator import pacing
from provision.orchestrator.clients import CallStats, Target
from provision.orchestrator.pacing import Pacer, under
from provision.orchestrator.retry import RetryPolicy
from provision.rate_limits import EC2_OWN_BUCKETS, TokenBucket, ec2_bucket

pytestmark = pytest.mark.usefixtures("no_real_sleep")


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    pacing.shared.clear()
    yield
    pacing.shared.clear()


def one_bucket(capacity: float, rate: float) -> Any:
    return lambda operation, parameters: ("b", (capacity, rate))


# --- the bucket --------------------------------------------------------------------------------------------


def test_bucket_takes_reserves_refills_and_empties():
    clock = FakeClock(0.0)
    bucket = TokenBucket(2, 0.5, clock=clock)
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(2.0)  # nothing taken: one token is 2 s away
    clock.now = 2.0
    assert bucket.take() == 0.0
    clock.now = 100.0  # idle: refilled to its capacity, not beyond
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 2.0, 4.0])  # a queue, spaced by 1/rate
    clock.now = 110.0
    bucket.empty_until(115.0)
    assert bucket.take() == pytest.approx(7.0)  # nothing before 115, then one refill interval


def test_documented_ec2_buckets_and_our_margin_under_them():
    assert ec2_bucket("DescribeVpcs", ["Filter.1.Name"]) == ("DescribeVpcs", (100.0, 20.0))
    assert ec2_bucket("DescribeSecurityGroups", ["GroupId.1"]) == ("DescribeSecurityGroups (unfiltered)", (50.0, 10.0))
    assert ec2_bucket("DescribeSecurityGroups", ["Filters"]) == ("DescribeSecurityGroups", (100.0, 20.0))
    assert ec2_bucket("CreateVpc", []) == ("CreateVpc", (50.0, 5.0))
    assert ec2_bucket("CreateVpcEndpoint", []) == ("CreateVpcEndpoint", EC2_OWN_BUCKETS["CreateVpcEndpoint"])
    assert under((20.0, 20.0)) == pytest.approx((18.0, 18.0))
    # A sandbox 20 times faster: the same count, 20 times the rate in its own seconds.
    assert under((20.0, 20.0), time_scale=0.05) == pytest.approx((18.0, 360.0))
    assert under((1.0, 0.1)) == pytest.approx((1.0, 0.09))  # never below one token


# --- the pacer ---------------------------------------------------------------------------------------------


def test_calls_beyond_the_bucket_wait_their_turn_on_the_injected_clock():
    clock = FakeClock(0.0)
    pacer = Pacer("svc", one_bucket(2, 1.0), clock=clock, sleep=clock.sleep)
    waited = [pacer.acquire("Op") for _ in range(4)]
    assert waited == pytest.approx([0.0, 0.0, 1.0, 1.0])
    assert clock.sleeps == pytest.approx([1.0, 1.0])


def test_threads_share_one_limiter_and_none_holds_it_while_sleeping():
    clock = FakeClock(0.0)  # frozen: every thread reserves at the same instant
    threads_n = 8
    asleep = threading.Barrier(threads_n, timeout=5)
    waits: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            waits.append(seconds)
        asleep.wait()  # all sleepers at once: a lock held while sleeping would deadlock (BrokenBarrierError)

    pacer = Pacer("svc", one_bucket(3, 2.0), clock=clock, sleep=sleep)
    results: list[float] = []

    def call() -> None:
        results.append(pacer.acquire("Op"))

    workers = [threading.Thread(target=call) for _ in range(threads_n + 3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=5)
    assert sorted(results) == pytest.approx([0.0] * 3 + [0.5 * i for i in range(1, threads_n + 1)])
    assert sorted(waits) == pytest.approx([0.5 * i for i in range(1, threads_n + 1)])


def test_retry_after_pauses_every_operation_then_calls_resume_at_the_refill_rate():
    clock = FakeClock(0.0)
    pacer = Pacer("databricks", one_bucket(5, 2.0), clock=clock, sleep=clock.sleep)
    pacer.throttled("POST", retry_after=3.0)
    assert pacer.acquire("GET") == pytest.approx(3.5)  # the pause, then one refill interval (the bucket was empty)
    assert pacer.acquire("GET") == pytest.approx(0.5)  # not a burst after the pause


def test_a_throttle_without_retry_after_empties_only_that_operations_bucket():
    clock = FakeClock(0.0)
    pacer = Pacer("ec2", lambda op, params: (op, (10.0, 1.0)), clock=clock, sleep=clock.sleep)
    pacer.throttled("DescribeVpcs")
    assert pacer.acquire("DescribeSubnets") == 0.0
    assert pacer.acquire("DescribeVpcs") == pytest.approx(1.0)


def test_pacers_are_shared_per_account_and_separate_between_accounts():
    sandbox = Target("sandbox", {"databricks": "http://h"}, time_scale=0.05)
    a1, a2, b = account_pacer("http://h", "A", sandbox), account_pacer("http://h", "A", sandbox), account_pacer("http://h", "B", sandbox)
    assert a1 is a2 and a1 is not b
    a1.throttled("GET", retry_after=30.0)
    assert b.acquire("GET") == 0.0  # another account is not held up
    # A sandbox without a latency profile has no limits to pace for: nothing is hooked.
    assert account_pacer("http://h", "A", Target("sandbox", {})) is None and workspace_pacer("http://w", Target("sandbox", {})) is None
    assert ec2_pacer("us-east-1", Target("real")) is ec2_pacer("us-east-1", Target("real"))
    assert ec2_pacer("us-east-1", Target("real")) is not ec2_pacer("eu-west-1", Target("real"))


def test_only_a_noticeable_wait_is_reported_once():
    clock = FakeClock(0.0)
    seen: list[tuple[str, str, float]] = []
    pacer = Pacer("svc", one_bucket(1, 10.0), clock=clock, sleep=clock.sleep, log_over=0.5, on_wait=lambda *a: seen.append(a))
    for _ in range(5):
        pacer.acquire("Op")  # 0.1 s waits: below the threshold
    pacer.throttled("Op", retry_after=2.0)
    pacer.acquire("Op")
    assert seen == [("svc", "b", pytest.approx(2.1))]


# --- the real client hooks ---------------------------------------------------------------------------------


@pytest.fixture
def fake_ec2() -> Iterator[tuple[str, list[str]]]:
    """An EC2 endpoint that answers every call, and RequestLimitExceeded (503) while `refuse` holds actions."""
    refuse: list[str] = []

    def app(environ: dict, start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
        action = dict(p.split("=", 1) for p in body.split("&"))["Action"]
        if action in refuse:
            xml = "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r</RequestID></Response>"
            start_response("503 Service Unavailable", [("Content-Type", "text/xml")])
        else:
            xml = f"<{action}Response><requestId>r</requestId></{action}Response>"
            start_response("200 OK", [("Content-Type", "text/xml")])
        return [xml.encode()]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", refuse
    server.shutdown()


def test_the_aws_client_hook_paces_ec2_calls_and_learns_from_request_limit_exceeded(fake_ec2):
    url, refuse = fake_ec2
    scale = 0.05
    clients = AwsClients(region="us-east-1", target=Target("sandbox", {"aws": url}, time_scale=scale), stats=CallStats())
    clock = FakeClock(0.0)
    clients.ec2_pacer.clock, clients.ec2_pacer.sleep = clock, clock.sleep  # before its first bucket exists
    ec2 = clients.client("ec2")
    capacity, rate = under(EC2_OWN_BUCKETS["CreateVpcEndpoint"], time_scale=scale)  # 3.6 tokens, 5.4 a second
    for _ in range(6):
        ec2.create_vpc_endpoint(VpcId="vpc-1", ServiceName="com.amazonaws.us-east-1.s3")
    # The 4th call finds 0.6 of a token left, the 5th and 6th one refill interval each.
    assert clock.sleeps == pytest.approx([(1 - (capacity - 3)) / rate, 1 / rate, 1 / rate])
    ec2.describe_vpcs()
    assert len(clock.sleeps) == 3  # another action, another bucket
    refuse.append("DescribeVpcs")
    with pytest.raises(Exception, match="RequestLimitExceeded"):
        ec2.describe_vpcs()
    refuse.clear()
    ec2.describe_vpcs()
    assert clock.sleeps[-1] == pytest.approx(1 / under((100, 20), time_scale=scale)[1])  # its bucket was emptied
    assert clients.stats.calls[("ec2", "DescribeVpcs")] == 3


def dbx_error(status: int, body: dict, headers: dict) -> Exception:
    """A Databricks error as the SDK builds it from an HTTP response."""
    response = requests.Response()
    response.status_code, response.reason = status, "Too Many Requests"
    response._content = json.dumps(body).encode()
    response.headers.update(headers)
    response.request = requests.Request("POST", "https://accounts.cloud.databricks.com/api/2.0/accounts/a/workspaces").prepare()
    response.url = response.request.url
    return _Parser().get_api_error(response)


def test_the_databricks_hook_pauses_on_a_429s_retry_after_even_for_a_post():
    error = dbx_error(429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "Workspaces RPC token bucket limit has been exceeded."}, {"Retry-After": "3"})

    class Base:
        def _is_retryable(self, err: BaseException) -> str:
            return "retry"

        def _perform(self, method: str, *args: Any, **kwargs: Any) -> Any:
            raise error

    class Api:
        _api_client = Base()

    clock = FakeClock(0.0)
    pacer = Pacer("databricks account", one_bucket(18, 18.0), clock=clock, sleep=clock.sleep)
    api = Api()
    pace(api, pacer)
    no_resends(api)  # the order clients.py uses: pacing sees Retry-After before no_resends drops it for a POST
    with pytest.raises(type(error)):
        api._api_client._perform("POST", "/api/2.0/accounts/a/workspaces")
    assert error.retry_after_secs is None  # still never re-sent by the SDK
    assert pacer.acquire("GET") == pytest.approx(3.0 + 1 / 18.0)


def test_a_throttled_call_keeps_being_retried_for_the_runs_whole_deadline():
    """What keeps a 32-workspace run from failing on 429: throttling has no shorter per-reason budget."""
    clock = FakeClock(0.0)
    policy = RetryPolicy(errors=error_rules(("aws", "databricks")), deadline_seconds=300, clock=clock, sleep=clock.sleep, rng=random.Random(1))
    ec2_refusal = ClientError({"Error": {"Code": "RequestLimitExceeded", "Message": "Request limit exceeded."},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}, "DescribeVpcs")
    dbx_refusal = dbx_error(429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}, {"Retry-After": "1"})
    for refusal in (ec2_refusal, dbx_refusal):
        clock.now = 0.0
        reasons: list[str] = []

        def call(refusal: Exception = refusal) -> str:
            if clock.now < 250:  # refused for over four minutes
                raise refusal
            return "ok"

        assert policy.call(call, what="x", on_retry=lambda reason, *_, seen=reasons: seen.append(reason)) == "ok"
        assert reasons and all(r.startswith("throttled") for r in reasons)
