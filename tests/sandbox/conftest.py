"""Fixtures shared by the sandbox tests: the sandbox's AWS server and Databricks emulator served in-process
over HTTP, and clients for them. Each test module defines its own module-scoped `settings` (the delays it
needs), which these fixtures read; names differ from the daemon-based fixtures in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from databricks.sdk import AccountClient
from moto import mock_aws
from sandbox_helpers import account_client, aws_client, serve

from provision.clouds.aws.sandbox import make_aws_app
from provision.clouds.databricks import sandbox as emulator
from provision.sandbox.settings import SandboxSettings

PROVISIONING = 0.3  # workspace_provisioning_seconds of the emulator tests under moto


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    """Default delays; a module that needs others defines its own `settings`."""
    return SandboxSettings()


@pytest.fixture(scope="module")
def aws_url(settings: SandboxSettings) -> Iterator[str]:
    """The sandbox's AWS server (make_aws_app), one per module."""
    yield from serve(make_aws_app(settings))


@pytest.fixture(scope="module")
def dbx_url(settings: SandboxSettings) -> Iterator[str]:
    """The Databricks emulator (make_databricks_app), one per module."""
    yield from serve(emulator.make_databricks_app(settings))


@pytest.fixture(scope="module")
def ec2(aws_url: str) -> Any:
    return aws_client("ec2", aws_url)


@pytest.fixture
def acc(dbx_url: str, settings: SandboxSettings) -> AccountClient:
    return account_client(dbx_url, settings.account_id, settings.token)


@pytest.fixture(scope="module")
def mocked_aws() -> Iterator[None]:
    # One mock for the module: mock_aws resets moto's global backends only when it starts and stops.
    with mock_aws():
        yield


@pytest.fixture
def emulator_under_moto(mocked_aws: None, settings: SandboxSettings) -> None:
    """A reset emulator whose AWS objects are made with plain boto3 in moto's in-process backends."""
    emulator.reset()
    settings.workspace_provisioning_seconds = PROVISIONING
    settings.iam_propagation_seconds = 0.0
