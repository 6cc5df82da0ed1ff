"""The Azure client seam, without a network: the bearer token goes over plain HTTP to loopback addresses only,
azure-core's own retries are off, and the one classifier reads ARM's errors."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from provision.clouds import error_rules
from provision.clouds.azure import clients
from provision.clouds.azure.clients import AzureClients, StaticToken, is_loopback
from provision.orchestrator.clients import SANDBOX, CallStats, Target
from provision.orchestrator.retry import DELETING, phase


def _request(url: str) -> PipelineRequest:
    return PipelineRequest(HttpRequest("GET", url), PipelineContext(None))


@pytest.mark.parametrize("url", ["http://127.0.0.1:5000/x", "http://localhost:1/x", "http://[::1]:8/x", "http://127.8.9.10/x"])
def test_the_token_may_go_over_http_to_loopback(url):
    assert is_loopback(url)
    bearer, _ = clients._policies()
    request = _request(url)
    bearer(StaticToken("t0k"), clients.ARM_SCOPE).on_request(request)
    assert request.http_request.headers["Authorization"] == "Bearer t0k"


@pytest.mark.parametrize("url", ["http://192.0.2.10/x", "http://management.azure.com/x", "http://127.0.0.1.example/x"])
def test_the_token_never_goes_over_http_anywhere_else(url):
    assert not is_loopback(url)
    bearer, _ = clients._policies()
    with pytest.raises(ServiceRequestError, match="non-TLS"):
        bearer(StaticToken("t0k"), clients.ARM_SCOPE).on_request(_request(url))


def test_the_sdks_own_retries_are_off_and_calls_are_counted():
    target = Target(SANDBOX, {"azure": "http://127.0.0.1:9"}, {"azure": "t"})
    made = AzureClients(subscription_id="5a4db0c5-0000-4000-8000-0000000000a2", target=target, stats=CallStats())
    config = made.network._config
    assert config.retry_policy.total_retries == 0
    assert type(config.custom_hook_policy).__name__ == "CallCounter"
    assert made.network is made.network  # made once, shared


class _Response:
    def __init__(self, status: int, code: str, message: str = "m", headers: dict | None = None):
        self.status_code, self.reason, self.headers = status, "x", headers or {}
        self._body = json.dumps({"error": {"code": code, "message": message}})
        self.content_type = "application/json"
        self.request = None

    def text(self, encoding: str | None = None) -> str:
        return self._body

    def body(self) -> bytes:
        return self._body.encode()


def _error(status: int, code: str, cls: type = HttpResponseError, **headers: str) -> HttpResponseError:
    return cls(response=_Response(status, code, headers=headers))


RULES = error_rules(["azure"])


@pytest.mark.parametrize("status, code, reason", [
    (429, "TooManyRequests", "throttled"),
    (409, "AnotherOperationInProgress", "another operation"),
    (409, "ConcurrentUpdateError", "another operation"),
    (429, "RetryableError", "throttled"),
    (500, "InternalServerError", "server error"),
    (503, "ServiceUnavailable", "server error"),
])
def test_transient_arm_errors_are_retried_with_a_reason(status, code, reason):
    assert reason in (RULES.classify(_error(status, code)) or "")


@pytest.mark.parametrize("status, code", [
    (403, "AuthorizationFailed"), (400, "InvalidParameter"), (409, "QuotaExceeded"), (400, "SubnetMissingRequiredDelegation"),
    (404, "SubscriptionNotFound"), (409, "Conflict"),
])
def test_quota_authorization_and_bad_parameters_are_terminal(status, code):
    assert RULES.classify(_error(status, code)) is None


def test_connections_lost_before_or_after_the_request_are_transient():
    assert RULES.classify(ServiceRequestError("refused")) == "connection (ServiceRequestError)"
    assert RULES.classify(ServiceResponseError("dropped")) == "connection (ServiceResponseError)"


def test_not_found_but_never_a_wrong_subscription():
    assert RULES.is_not_found(_error(404, "ResourceNotFound", ResourceNotFoundError))
    assert RULES.is_not_found(_error(404, "ResourceGroupNotFound"))
    assert not RULES.is_not_found(_error(404, "SubscriptionNotFound"))


def test_in_use_is_retried_only_while_deleting():
    in_use = _error(400, "InUseSubnetCannotBeDeleted")
    assert RULES.classify_in_phase(in_use) is None
    with phase(DELETING):
        assert RULES.classify_in_phase(in_use) is not None


def test_retry_after_comes_from_arms_header():
    assert RULES.retry_after(_error(429, "TooManyRequests", **{"Retry-After": "7"})) == 7.0
    assert RULES.retry_after(_error(429, "TooManyRequests")) is None
