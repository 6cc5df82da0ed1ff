"""The AWS half of the credentials preflight: who the run's credentials are (sts:GetCallerIdentity), before any
state is written or anything created; a missing or wrong identity is a CredentialsError (exit 2) that says where
botocore looked, or which account the spec expected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provision.errors import CredentialsError

Call = Callable[[Callable[[], Any], str], Any]

# botocore's credential providers, by their METHOD name, as a user would look for them.
_SOURCES = {
    "env": "environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
    "assume-role": "a role_arn in the profile",
    "assume-role-with-web-identity": "AWS_WEB_IDENTITY_TOKEN_FILE",
    "sso": "AWS IAM Identity Center (`aws sso login`)",
    "login": "`aws login`",
    "shared-credentials-file": "the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials)",
    "custom-process": "a credential_process in the profile",
    "config-file": "the config file (AWS_CONFIG_FILE, default ~/.aws/config)",
    "ec2-credentials-file": "/etc/boto.cfg",
    "boto-config": "the boto2 config file",
    "container-role": "the container credentials endpoint (ECS, EKS Pod Identity)",
    "iam-role": "the EC2 instance metadata service",
}
# Answers from STS that mean "these credentials are not valid", not "try again".
_REFUSED = {"InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch", "UnrecognizedClientException",
            "AccessDenied", "InvalidAccessKeyId", "AuthFailure"}


def where_looked(session: Any) -> str:
    """The places botocore's default chain tries, in order, for this session's profile."""
    try:
        providers = session._session.get_component("credential_provider").providers
        places = [_SOURCES.get(p.METHOD, p.METHOD) for p in providers]
    except Exception:  # an unexpected botocore shape must not hide the real error
        places = list(_SOURCES.values())
    return f"profile {session.profile_name!r}: " + "; ".join(dict.fromkeys(places))


def check(spec: Any, clients: Any, call: Call) -> str:
    """The caller's account and principal; refuses when the spec names another account (`aws.account_id`)."""
    from botocore.exceptions import (
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        TokenRetrievalError,
    )

    try:
        identity = call(lambda: clients.client("sts").get_caller_identity(), "credentials check (sts:GetCallerIdentity)")
    except ProfileNotFound as exc:
        raise CredentialsError("aws", f"AWS profile not found: {exc}; set AWS_PROFILE to a profile in ~/.aws/config") from None
    except (NoCredentialsError, PartialCredentialsError, TokenRetrievalError) as exc:
        raise CredentialsError(
            "aws", f"no AWS credentials found ({exc}); looked in {where_looked(clients.session())}. Configure one of them "
            "(for example `aws configure sso` then AWS_PROFILE=<profile>)"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in _REFUSED:
            raise
        message = exc.response.get("Error", {}).get("Message", "")
        raise CredentialsError(
            "aws", f"AWS refused the credentials ({code}: {message}); they came from {where_looked(clients.session())}"
        ) from None
    account, principal = identity["Account"], identity["Arn"]
    wanted = getattr(getattr(spec, "aws", None), "account_id", None)
    if wanted and wanted != account:
        raise CredentialsError(
            "aws", f"aws.account_id: the spec builds in AWS account {wanted}, but the credentials are {principal} in account "
            f"{account}; switch credentials (AWS_PROFILE) or correct aws.account_id"
        )
    return f"AWS account {account} as {principal}"
