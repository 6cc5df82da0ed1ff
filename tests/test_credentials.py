"""The credentials preflight: who the run acts as, checked before any state is written or anything created."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber

import specs
from cli_support import provision_command
from provision.clouds.aws import credentials as aws_credentials
from provision.clouds.databricks import credentials as dbx_credentials
from provision.errors import CredentialsError


class _Clients:
    """An AwsClients stand-in around one stubbed STS client."""

    def __init__(self, sts):
        self._sts = sts
        self._session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")

    def client(self, service):
        assert service == "sts"
        return self._sts

    def session(self):
        return self._session


def _call(fn, what):
    return fn()


def _identity(account: str):
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    stub = Stubber(sts)
    stub.add_response("get_caller_identity", {"Account": account, "Arn": f"arn:aws:iam::{account}:role/ci", "UserId": "AROA"})
    stub.activate()
    return _Clients(sts)


def test_the_account_the_credentials_are_in_is_reported():
    spec = SimpleNamespace(aws=SimpleNamespace(account_id="111111111111"))
    assert aws_credentials.check(spec, _identity("111111111111"), _call) == "AWS account 111111111111 as arn:aws:iam::111111111111:role/ci"


def test_credentials_of_another_account_than_the_spec_names_are_refused():
    spec = SimpleNamespace(aws=SimpleNamespace(account_id="111111111111"))
    with pytest.raises(CredentialsError) as caught:
        aws_credentials.check(spec, _identity("222222222222"), _call)
    message = str(caught.value)
    assert "aws.account_id" in message and "222222222222" in message and "111111111111" in message


def test_refused_credentials_say_where_they_came_from():
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    stub = Stubber(sts)
    stub.add_client_error("get_caller_identity", "InvalidClientTokenId", "The security token included in the request is invalid.", 403)
    stub.activate()
    with pytest.raises(CredentialsError) as caught:
        aws_credentials.check(SimpleNamespace(), _Clients(sts), _call)
    assert "InvalidClientTokenId" in str(caught.value) and "environment variables AWS_ACCESS_KEY_ID" in str(caught.value)


def test_databricks_without_credentials_names_how_to_authenticate():
    class Unconfigured:
        profile, account_id, signs_in_with_sandbox_token = None, "acct", False

        @property
        def account(self):
            raise ValueError("default auth: cannot configure default credentials, please check https://docs.databricks.com\nConfig: host=x")

    with pytest.raises(CredentialsError) as caught:
        dbx_credentials.check(SimpleNamespace(), Unconfigured(), _call)
    message = str(caught.value)
    assert "DATABRICKS_CLIENT_ID" in message and "~/.databrickscfg" in message and "cannot configure default credentials" in message


def test_up_on_a_real_target_without_credentials_exits_2_before_anything_is_written(tmp_path: Path):
    spec = specs.write(tmp_path / "spec.toml", specs.example("basic"))
    # No credentials anywhere botocore looks (and no instance metadata to wait for).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATABRICKS_", "PROVISION_"))}
    env.update(HOME=str(tmp_path), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true")
    result = subprocess.run([*provision_command(), "up", "--config", str(spec)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "no AWS credentials found" in result.stderr and "looked in" in result.stderr
    assert "~/.aws/credentials" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]  # no state file, no log
