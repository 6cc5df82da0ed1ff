"""`[aws]`: which AWS account the deployment belongs in. With `account_id` set, the credentials preflight refuses
credentials of any other account (a CI runner with the wrong profile would otherwise build in the wrong account)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provision.spec import Checker, Section

_ACCOUNT_RE = re.compile(r"\d{12}")


@dataclass(frozen=True)
class AwsAccountSpec:
    account_id: str | None = None


def _aws(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> AwsAccountSpec:
    table = check.table(data, "aws", {"account_id"})
    account_id = check.string(table, "account_id", "aws.account_id", required=False)
    if account_id is not None and not _ACCOUNT_RE.fullmatch(account_id):
        check.fail("aws.account_id", f"{account_id!r} is not an AWS account id (12 digits, as a string)")
        account_id = None
    return AwsAccountSpec(account_id)


AWS_ACCOUNT = Section("aws", ("aws",), _aws)
