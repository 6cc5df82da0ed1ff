"""AWS: EC2 networking, IAM, S3, Transit Gateway, Network Firewall, and the moto-based sandbox."""

from __future__ import annotations

from typing import Any

from provision.clouds.aws.errors import ERRORS
from provision.clouds.aws.spec import parse_region, parse_tags
from provision.clouds.base import Cloud


def _clients(spec: Any, target: Any, stats: Any, on_call: Any) -> Any:
    from provision.clouds.aws.clients import AwsClients

    return AwsClients(region=spec.region, target=target, stats=stats, on_call=on_call)


def _check_credentials(spec: Any, clients: Any, call: Any) -> str:
    from provision.clouds.aws import credentials

    return credentials.check(spec, clients, call)


CLOUD = Cloud("aws", ERRORS, _clients, parse_region=parse_region, parse_tags=parse_tags, check_credentials=_check_credentials)
