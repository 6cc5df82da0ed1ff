"""One listing per kind of EC2 resource for a run's first finds, instead of one call per step.

A step finds its resource by the deployment and step-id tags. The first time each step looks in a run, it
reads from one listing of every resource of that kind the deployment tags, made once and shared by all
steps of the kind: four subnets, three endpoints or a hundred spokes' route tables cost one call (a page
each), which is what keeps a no-op `resume` or `plan` at a read per resource and a 32-spoke run inside
EC2's describe buckets. It is safe because a step's own resource can only appear after the listing
through the step's own create, and a step creates only after its first find: any later find of the same
step (after a create whose answer was lost, or a retry) asks the API for that step alone.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from provision.orchestrator.slots import idle
from provision.orchestrator.step import TAG_DEPLOYMENT, TAG_STEP


class OwnedListings:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: set[str] = set()
        self._listings: dict[tuple, _Listing] = {}
        # Off where something else tags resources as the run goes (the Terraform import tags, then finds).
        self.enabled = True

    def find(self, ec2: Any, deployment: str, step_id: str, operation: str, key: str,
             filters: list[dict[str, Any]], filter_param: str) -> list[dict[str, Any]]:
        deployment_filter = {"Name": f"tag:{TAG_DEPLOYMENT}", "Values": [deployment]}
        with self._lock:
            first = self.enabled and step_id not in self._found
            self._found.add(step_id)
        if not first:
            step_filter = {"Name": f"tag:{TAG_STEP}", "Values": [step_id]}
            return getattr(ec2, operation)(**{filter_param: [deployment_filter, step_filter, *filters]})[key]
        listing = self._listing(ec2, operation, key, [deployment_filter, *filters], filter_param)
        return [r for r in listing if any(t.get("Key") == TAG_STEP and t.get("Value") == step_id for t in r.get("Tags", []))]

    def _listing(self, ec2: Any, operation: str, key: str, filters: list[dict[str, Any]], filter_param: str) -> list[dict[str, Any]]:
        ident = (operation, repr(filters))
        with self._lock:
            entry = self._listings.get(ident)
            mine = entry is None
            if mine:
                entry = self._listings[ident] = _Listing()
        assert entry is not None
        if not mine:  # steps of one kind start together: one of them lists, the others wait for it
            with idle():  # without holding an engine slot, which the lister may need back after a paced call
                entry.done.wait()
            if entry.items is not None:
                return entry.items
            return _all_pages(ec2, operation, key, {filter_param: filters})  # the lister's call failed: our own
        try:
            entry.items = _all_pages(ec2, operation, key, {filter_param: filters})
            return entry.items
        except BaseException:
            with self._lock:
                self._listings.pop(ident, None)  # the next first find lists again
            raise
        finally:
            entry.done.set()


class _Listing:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.items: list[dict[str, Any]] | None = None


def _all_pages(ec2: Any, operation: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    if not ec2.can_paginate(operation):
        return list(getattr(ec2, operation)(**params)[key])
    items: list[dict[str, Any]] = []
    for page in ec2.get_paginator(operation).paginate(**params):
        items.extend(page.get(key, []))
    return items


# One set of listings per run: keyed by the run's AWS clients, gone with them.
_BY_CLIENTS: "weakref.WeakKeyDictionary[Any, OwnedListings]" = weakref.WeakKeyDictionary()
_BY_CLIENTS_LOCK = threading.Lock()


def listings_for(aws_clients: Any) -> OwnedListings:
    with _BY_CLIENTS_LOCK:
        found = _BY_CLIENTS.get(aws_clients)
        if found is None:
            found = _BY_CLIENTS[aws_clients] = OwnedListings()
        return found
