"""What the sandbox's AWS side holds, kind by kind, read back through the real AWS APIs (boto3): each
fidelity family declares the kinds it lists next to its rules, and app/inventory.py composes them.

    @lists("nat_gateway", owned=True)
    def _nat_gateways(clients: Clients) -> list[dict]:
        return [n for n in clients("ec2").describe_nat_gateways()["NatGateways"] if ...]

A listing returns the live items only (what is deleted is history, not inventory) and never the account's
defaults. `owned=True` marks kinds whose items must carry our ownership tag (app/inventory.untagged).
Kinds are listed in registration order, i.e. the order app.py imports the families.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

Clients = Callable[[str], Any]  # service name ("ec2", "s3", ...) -> a boto3 client for the sandbox
Listing = Callable[[Clients], list[dict]]


@dataclass(frozen=True)
class Kind:
    name: str
    listing: Listing
    owned: bool  # its items must carry the provision:deployment tag


KINDS: dict[str, Kind] = {}


def lists(name: str, *, owned: bool = False) -> Callable[[Listing], Listing]:
    """Register `fn` as the listing of resource kind `name` (once: a second registration is refused)."""

    def register(fn: Listing) -> Listing:
        if name in KINDS:
            raise ValueError(f"resource kind {name!r} is listed twice ({KINDS[name].listing.__module__} and {fn.__module__})")
        KINDS[name] = Kind(name, fn, owned)
        return fn

    return register


def sandbox_clients(endpoint_url: str, region: str = "us-east-1") -> Clients:
    """boto3 clients for the sandbox's AWS endpoint, one per service."""
    import boto3

    @cache
    def client(service: str) -> Any:
        return boto3.client(
            service, endpoint_url=endpoint_url, region_name=region, aws_access_key_id="test", aws_secret_access_key="test"
        )

    return client


def list_all(clients: Clients) -> dict[str, list[dict]]:
    """Every registered kind's live items, by kind."""
    return {name: kind.listing(clients) for name, kind in KINDS.items()}
