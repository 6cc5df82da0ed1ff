"""What a Databricks step needs from its context: the Account API and a workspace's own API."""

from __future__ import annotations

from typing import Any

from provision.orchestrator.step import Context


def account(ctx: Context) -> Any:
    return ctx.clients["databricks"].account


def workspace(ctx: Context, deployment_name: str) -> Any:
    return ctx.clients["databricks"].workspace(deployment_name)
