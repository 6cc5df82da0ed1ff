"""Secrets Manager: moto's own, nothing patched; only the listing of secrets for the inventory
(listing.py)."""

from __future__ import annotations

from provision.clouds.aws.sandbox.listing import Clients, lists


@lists("secret")
def _list_secrets(clients: Clients) -> list[dict]:
    # A secret scheduled for deletion is still listed by moto with its DeletedDate: history, not inventory.
    return [s for s in clients("secretsmanager").list_secrets()["SecretList"] if not s.get("DeletedDate")]
