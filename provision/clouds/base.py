"""The cloud seam: what every cloud package (`provision/clouds/<cloud>/`) gives the rest of provision.

A cloud owns its spec sections and their validation, its clients, its error rules, its context helpers,
its steps, its preflight and its sandbox emulator. The engine, the state file and the CLI know a cloud
only through this record, in the manner of SkyPilot's per-cloud provisioners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from provision.orchestrator.clients import CallStats, OnCall, Target
from provision.orchestrator.retry import CloudErrors
from provision.spec import Checker

if TYPE_CHECKING:
    from provision.spec import Spec


@dataclass(frozen=True)
class Cloud:
    name: str
    errors: CloudErrors
    # The cloud's client set for one run (ctx.clients[name]); made lazily, so nothing loads an SDK early.
    make_clients: Callable[["Spec", Target, CallStats, OnCall | None], Any]
    # A cloud that hosts topologies checks the spec's region and tags by its own rules (None: it hosts none).
    parse_region: Callable[[Checker, dict[str, Any]], str | None] | None = None
    parse_tags: Callable[[Checker, dict[str, Any]], dict[str, str]] | None = None
    # The credentials preflight: (spec, this cloud's clients, a retried call) -> who the run acts as, or a
    # CredentialsError saying where it looked. Runs before any state is written or anything is created.
    check_credentials: Callable[["Spec", Any, Callable[[Callable[[], Any], str], Any]], str] | None = None
