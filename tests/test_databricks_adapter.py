"""The one adapter that reaches into databricks-sdk's private API client: it must fail loudly, here, when an
SDK upgrade moves what it patches, rather than silently let the SDK re-send a create."""

from __future__ import annotations

import pytest

from provision.clouds.databricks.sdk_adapter import (
    count_calls,
    no_resends,
    operation_name,
)
from provision.errors import DependencyMismatch
from provision.orchestrator.clients import CallStats


def test_the_sdk_still_has_what_the_adapter_patches():
    import inspect

    from databricks.sdk._base_client import _BaseClient
    from databricks.sdk.core import ApiClient

    # Read from the classes: making a client resolves host metadata over the network.
    assert callable(_BaseClient._is_retryable) and callable(_BaseClient._perform) and callable(ApiClient.do)
    assert "self._api_client = _BaseClient(" in inspect.getsource(ApiClient.__init__)
    assert list(inspect.signature(_BaseClient._perform).parameters)[:2] == ["self", "method"]

    class Api:
        _api_client = _BaseClient.__new__(_BaseClient)

    no_resends(Api())
    # Nothing is retryable inside the SDK any more: our one classifier decides.
    assert Api._api_client._is_retryable(ConnectionError("reset")) is None


def test_an_sdk_without_those_internals_is_refused_by_name():
    class Moved:
        _api_client = object()

    with pytest.raises(DependencyMismatch, match="_is_retryable"):
        no_resends(Moved())


def test_a_non_get_loses_its_retry_after_so_the_sdk_cannot_resend_it():
    class Unavailable(Exception):
        retry_after_secs = 5

    class Base:
        def _is_retryable(self, err):
            return "retry"

        def _perform(self, method, *args, **kwargs):
            raise Unavailable()

    class Api:
        _api_client = Base()

    api = Api()
    no_resends(api)
    for method, kept in (("POST", None), ("GET", 5)):
        with pytest.raises(Unavailable) as info:
            api._api_client._perform(method, "/x")
        assert info.value.retry_after_secs == kept


def test_calls_are_counted_by_operation():
    class Api:
        def do(self, method, path=None, *args, **kwargs):
            return {}

    stats, seen = CallStats(), []
    api = Api()
    count_calls(api, stats, lambda service, op, duration, status: seen.append((service, op, status)))
    api.do("GET", "/api/2.0/accounts/abc/workspaces/123")
    api.do("POST", "/api/2.0/token/create")
    assert seen == [("databricks", "GET workspaces", 200), ("databricks", "POST token/create", 200)]
    assert stats.summary() == {"databricks": {"reads": 1, "writes": 1}}
    assert operation_name("DELETE", "/api/2.0/accounts/abc/networks/n1") == "DELETE networks"
