"""Every cloud provision builds on, by name. Adding a cloud adds a package here and one line below."""

from __future__ import annotations

from typing import Iterable

from provision.clouds import aws, azure, databricks
from provision.clouds.base import Cloud
from provision.orchestrator.retry import ErrorRules

CLOUDS: dict[str, Cloud] = {c.name: c for c in (aws.CLOUD, azure.CLOUD, databricks.CLOUD)}


def error_rules(names: Iterable[str] = tuple(CLOUDS)) -> ErrorRules:
    """The one classifier for a run on these clouds."""
    return ErrorRules(tuple(CLOUDS[n].errors for n in names))
