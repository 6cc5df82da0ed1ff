"""Plain helpers shared by the sandbox tests: in-process servers, clients, bounded polling, AWS setup.

The fixtures built on them live in conftest.py; what is specific to one test file stays in it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from databricks.sdk import AccountClient
from databricks.sdk.config import Config
from databricks.sdk.service.provisioning import Workspace, WorkspaceStatus
from werkzeug.serving import make_server

from provision.sandbox.settings import DATABRICKS_AWS_ACCOUNT_ID, SandboxSettings

REGION = "us-east-1"


# --- servers and clients -----------------------------------------------------------------------------


def serve(app: Callable) -> Iterator[str]:
    """Serve a WSGI app on a free local port in a daemon thread; yields its URL, stops it afterwards."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def aws_client(service: str, endpoint_url: str, region: str = REGION) -> Any:
    """A real boto3 client against the sandbox's AWS server."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def account_client(base_url: str, account_id: str, token: str) -> AccountClient:
    """A real databricks-sdk AccountClient against the emulator."""
    config = Config(
        host=base_url,
        account_id=account_id,
        token=token,
        auth_type="pat",
        retry_timeout_seconds=10,
        http_timeout_seconds=5,
    )
    return AccountClient(config=config)


# --- bounded polling and errors -------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def once_released(call: Callable[..., Any], timeout: float = 5.0, **kwargs: Any) -> Any:
    """Retry `call` while it fails with DependencyViolation (lingering interfaces), bounded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "DependencyViolation" or time.monotonic() >= deadline:
                raise
        time.sleep(0.05)


def settled(acc: AccountClient, workspace_id: int) -> Workspace:
    """The workspace once it has left PROVISIONING (bounded)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ws = acc.workspaces.get(workspace_id)
        if ws.workspace_status != WorkspaceStatus.PROVISIONING:
            return ws
        time.sleep(0.05)
    raise AssertionError(f"workspace {workspace_id} still PROVISIONING")


def client_error(call: Callable[..., Any], **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]


def error_code(call: Callable[..., Any], **kwargs: Any) -> str:
    return client_error(call, **kwargs)["Code"]


# --- sandbox delays ------------------------------------------------------------------------------------


@contextlib.contextmanager
def delays(settings: SandboxSettings, **values: float) -> Iterator[None]:
    before = {key: getattr(settings, key) for key in values}
    settings.update(values)
    try:
        yield
    finally:
        settings.update(before)


def held(settings: SandboxSettings, *keys: str) -> contextlib.AbstractContextManager[None]:
    """Transitions of these delays wait until the block ends (states count from when they began)."""
    return delays(settings, **{key: 60 for key in keys})


# --- AWS objects ------------------------------------------------------------------------------------------


def trust_policy(principal: str, external_id: str | None) -> str:
    statement: dict = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def make_role(iam: Any, policy: str) -> str:
    name = f"cross-account-{uuid.uuid4().hex[:8]}"
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=policy)["Role"]["Arn"]


def databricks_role(iam: Any, account_id: str) -> str:
    """A cross-account role Databricks may assume, with the account id as external id."""
    return make_role(iam, trust_policy(f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root", account_id))


def make_bucket(s3: Any) -> str:
    name = f"root-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def databricks_vpc(
    ec2: Any,
    region: str = REGION,
    dns_hostnames: bool = True,
    prefix: int = 24,
    zones: tuple[str, ...] | str = "ab",
    spacing: int = 1,
) -> dict[str, Any]:
    """A fresh VPC for a Databricks network: subnets 10.0.{i * spacing}.0/prefix in the zones, a group."""
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    if dns_hostnames:
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=f"10.0.{i * spacing}.0/{prefix}", AvailabilityZone=f"{region}{zone}"
        )["Subnet"]["SubnetId"]
        for i, zone in enumerate(zones)
    ]
    group = ec2.create_security_group(GroupName=f"sg-{uuid.uuid4().hex[:6]}", Description="ws", VpcId=vpc_id)
    return {"vpc": vpc_id, "subnets": subnets, "sg": group["GroupId"]}
