"""The lazy state machine every time-based rule plugs into, and lingering network interfaces (rule 12).

Time-based states advance at the start of every EC2 request (and every Network Firewall request) of
an account and region, with no background thread: `advance` runs each family's registered hook, then
releases the network interfaces whose linger time is over. Delays are read from the settings at that
moment. Each state counts from when the previous one was due (`enter(..., since=at)`), not from the
request that happened to notice it, so chained timers (pending -> failed -> deleted, then the interface
release) add up as they would on AWS.

Rule 12: the network interfaces of a NAT gateway that is `deleted`/`failed`, of an interface VPC endpoint
that is gone, of a transit gateway attachment that is `deleted` or of a Network Firewall that is gone
linger for `eni_release_seconds` after that moment (still listed by DescribeNetworkInterfaces): until
they go, DeleteSubnet, DeleteSecurityGroup (for the groups they count for) and DeleteVpc keep failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from moto.ec2.responses import EC2Response

from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings

# name -> hook(EC2 backend, settings, now): apply that family's due transitions.
AdvanceHook = Callable[[Any, SandboxSettings, float], None]
_HOOKS: dict[str, AdvanceHook] = {}


def advance_hook(name: str) -> Callable[[AdvanceHook], AdvanceHook]:
    """Register a family's transitions with the state machine."""

    def register(fn: AdvanceHook) -> AdvanceHook:
        _HOOKS[name] = fn
        return fn

    return register


def enter(resource: Any, state: str, since: float | None = None) -> None:
    """Put a resource in `state`, counting its time there from `since` (default: now)."""
    resource.state = state
    resource._sandbox_since = time.monotonic() if since is None else since


def tracked(resource: Any) -> bool:
    """Made through the sandbox (resources made outside it keep moto's states)."""
    return hasattr(resource, "_sandbox_since")


def due(resource: Any, seconds: float, now: float) -> float | None:
    """When the resource's current state ends, if that moment has passed."""
    at = getattr(resource, "_sandbox_since", now) + seconds
    return at if at <= now else None


def pending_then_deleting(
    backend: Any,
    resources: dict[str, Any],
    settings: SandboxSettings,
    now: float,
    delay: str,
    finish_deletion: Callable[[Any, Any, float], None],
) -> None:
    """pending -> available, and deleting -> finish_deletion(backend, resource, at), each once `delay`
    (a setting, drawn per resource) has passed."""
    for resource in list(resources.values()):
        if not tracked(resource):
            continue
        key = str(getattr(resource, "id", ""))
        if resource.state == "pending" and (at := due(resource, settings.delay(delay, key), now)) is not None:
            enter(resource, "available", at)
        elif resource.state == "deleting" and (at := due(resource, settings.delay(delay, key + "/delete"), now)) is not None:
            finish_deletion(backend, resource, at)


def advance(backend: Any, settings: SandboxSettings) -> None:
    """Apply every due transition of one EC2 backend (callers hold patching.STATE_LOCK)."""
    now = time.monotonic()
    for hook in list(_HOOKS.values()):
        hook(backend, settings, now)
    waiting = lingering(backend)
    for eni_id, (since, _groups) in list(waiting.items()):
        if now - since >= settings.eni_release_seconds:
            # Journaled under the resource whose deletion released it (the benchmark's bound charges it there).
            owner = backend.__dict__.get("_sandbox_eni_owners", {}).pop(eni_id, eni_id)
            settings.journal.delay("eni_release_seconds", f"{owner}/delete", settings.eni_release_seconds)
            backend.enis.pop(eni_id, None)
            del waiting[eni_id]


def lingering(backend: Any) -> dict[str, tuple[float, frozenset[str]]]:
    """Released network interfaces still present: id -> (released at, the groups they count for)."""
    return backend.__dict__.setdefault("_sandbox_lingering_enis", {})


def release_enis(backend: Any, eni_ids: Iterable[str], groups: Iterable[str], since: float, owner: str = "") -> None:
    """Start the linger time of these interfaces (once; a second release keeps the first moment). `owner`: the
    resource whose deletion released them."""
    waiting = lingering(backend)
    owners = backend.__dict__.setdefault("_sandbox_eni_owners", {})
    for eni_id in eni_ids:
        if eni_id in backend.enis and eni_id not in waiting:
            waiting[eni_id] = (since, frozenset(groups))
            if owner:
                owners[eni_id] = owner


@patch(EC2Response, "call_action")
def _call_action(self: Any, original: Callable, settings: SandboxSettings) -> Any:
    try:
        backend = self.ec2_backend
    except KeyError:
        backend = None  # unknown region: let moto produce its own error
    if backend is not None:
        advance(backend, settings)
    return original(self)
