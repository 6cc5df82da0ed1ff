"""The Databricks section of a spec: the account, the workspace's name and tier, and how to sign in.

Credentials never appear here: databricks-sdk's unified auth finds them (optionally a named profile).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provision.spec import Checker, Section

PRICING_TIERS = ("STANDARD", "PREMIUM", "ENTERPRISE")
_WORKSPACE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,63}$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PROFILE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class DatabricksSpec:
    account_id: str
    workspace_name: str
    pricing_tier: str
    host: str | None
    profile: str | None
    # Mint a token per workspace and keep it in a secret (hub-and-spoke).
    workspace_token: bool = False


def section(*, default_tier: str = "PREMIUM", required_tier: str | None = None, required_why: str = "") -> Section:
    """The databricks section as a topology wants it: its default tier, and a tier it cannot do without."""

    def parse(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> DatabricksSpec | None:
        name = parsed.get("name")
        dbx = check.table(data, "databricks", {"account_id", "workspace_name", "pricing_tier", "host", "profile", "workspace_token"})
        if "databricks" not in data:
            check.fail("databricks", "is required")
        account_id = check.string(dbx, "account_id", "databricks.account_id")
        if account_id is not None and not _UUID_RE.fullmatch(account_id):
            check.fail("databricks.account_id", f"{account_id!r} is not a Databricks account id (a lowercase UUID)")
            account_id = None
        workspace_name = check.string(dbx, "workspace_name", "databricks.workspace_name", required=False, default=name)
        if workspace_name is not None and not _WORKSPACE_NAME_RE.fullmatch(workspace_name):
            check.fail("databricks.workspace_name", f"{workspace_name!r} must be 1-64 letters, digits, spaces, '_' or '-', starting with a letter or digit")
        tier = check.string(dbx, "pricing_tier", "databricks.pricing_tier", required=False, default=default_tier)
        if tier is not None and tier not in PRICING_TIERS:
            check.fail("databricks.pricing_tier", f"must be one of {', '.join(PRICING_TIERS)}, got {tier!r}")
        elif tier is not None and required_tier and tier != required_tier:
            check.fail("databricks.pricing_tier", f"{required_why} needs the {required_tier} tier, got {tier!r}")
        # No default here: a named profile may carry its own host; clients.py falls back to the AWS account console.
        host = check.string(dbx, "host", "databricks.host", required=False)
        if host is not None and not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?/?", host):
            check.fail("databricks.host", f"{host!r} must be an https:// URL of the account console")
        profile = check.string(dbx, "profile", "databricks.profile", required=False)
        if profile is not None and not _PROFILE_RE.fullmatch(profile):
            check.fail("databricks.profile", f"{profile!r} is not a valid profile name")
        token = dbx.get("workspace_token", False)
        if not isinstance(token, bool):
            check.fail("databricks.workspace_token", "must be true or false")
            token = False
        # Later sections derive names from the account id even when another databricks field is wrong.
        parsed["account_id"] = account_id
        if account_id is None or workspace_name is None or tier is None or tier not in PRICING_TIERS:
            return None
        return DatabricksSpec(account_id, workspace_name, tier, host.rstrip("/") if host else None, profile, token)

    return Section("databricks", ("databricks",), parse)
