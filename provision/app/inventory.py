"""List what the sandbox holds, independently of any state file: the ground truth for tests and for the
crash-matrix script. Everything is read through the real AWS and Databricks APIs.

The kinds are composed from each cloud's declarations: every AWS sandbox fidelity family lists its own
(clouds/aws/sandbox/listing.py, `@lists`), and the Databricks emulator's account objects and workspace
tokens are read by clouds/databricks/sandbox/listing.py."""

from __future__ import annotations

from collections import Counter
from typing import Any

import provision.clouds.aws.sandbox.app  # noqa: F401  (imports every family, so all their kinds are registered)
import provision.clouds.aws.sandbox.listing as aws_listing
import provision.clouds.databricks.sandbox.listing as databricks_listing


def inventory(info: Any, *, account_id: str, region: str = "us-east-1") -> dict[str, list[dict]]:
    """Every non-default resource in the sandbox, by kind (live ones: deleted NATs, endpoints, TGW
    resources and secrets scheduled for deletion are history, not inventory)."""
    found = aws_listing.list_all(aws_listing.sandbox_clients(info.aws_endpoint_url, region))
    found.update(databricks_listing.list_account(info.databricks_host, info.databricks_token, account_id))
    return found


def counts(found: dict[str, list[dict]]) -> Counter:
    return Counter({kind: len(items) for kind, items in found.items() if items})


def owned_kinds() -> tuple[str, ...]:
    """The kinds whose resources must carry our ownership tag."""
    return tuple(name for name, kind in aws_listing.KINDS.items() if kind.owned)


def untagged(found: dict[str, list[dict]], deployment: str) -> list[str]:
    """Owned resources without our ownership tag for `deployment` (there must be none)."""
    missing = []
    for kind in owned_kinds():
        for item in found[kind]:
            tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
            if tags.get("provision:deployment") != deployment:
                missing.append(f"{kind}:{item.get('VpcId') or item}")
    return missing
