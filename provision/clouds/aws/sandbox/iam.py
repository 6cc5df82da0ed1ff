"""IAM: nothing to patch (IAM propagation is the Databricks emulator's rule: a new role cannot be assumed
yet); only the listing of roles for the inventory (listing.py)."""

from __future__ import annotations

from provision.clouds.aws.sandbox.listing import Clients, lists


@lists("iam_role")
def _list_roles(clients: Clients) -> list[dict]:
    return clients("iam").list_roles()["Roles"]
