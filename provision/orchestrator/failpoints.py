"""Failpoints, in the spirit of etcd's gofail: make a run die or fail at a named step and point.

    PROVISION_FAILPOINTS="nat.0:after_create=kill; dbx.workspace:before_create=error; vpc:before_create=transient*2"

Points: before_create, after_create (the call returned, the checkpoint is not written yet),
after_checkpoint, before_delete, after_delete. A step id of `*` matches every step.
Actions: `kill` (SIGKILL this process), `error` (terminal error), `transient` (an error the retry policy
retries). `action*N` fires N times in this process, then stops firing. Unset, `hit` is one dict lookup.
"""

from __future__ import annotations

import os
import re
import signal
import threading

from provision.errors import InjectedFault, UsageError

POINTS = ("before_create", "after_create", "after_checkpoint", "before_delete", "after_delete")
ACTIONS = ("kill", "error", "transient")
_ENTRY = re.compile(r"^(?P<step>[\w.*-]+):(?P<point>\w+)=(?P<action>\w+)(\*(?P<count>\d+))?$")


class Failpoints:
    def __init__(self, spec: str | None = None):
        self._armed: dict[tuple[str, str], list] = {}
        self._lock = threading.Lock()
        for entry in filter(None, (part.strip() for part in (spec or "").replace(",", ";").split(";"))):
            match = _ENTRY.match(entry)
            if not match or match["point"] not in POINTS or match["action"] not in ACTIONS:
                raise UsageError(
                    f"PROVISION_FAILPOINTS entry {entry!r} is not step:point=action[*N] "
                    f"(points: {', '.join(POINTS)}; actions: {', '.join(ACTIONS)})"
                )
            count = int(match["count"]) if match["count"] else -1
            self._armed[(match["step"], match["point"])] = [match["action"], count]

    @classmethod
    def from_env(cls) -> "Failpoints":
        return cls(os.environ.get("PROVISION_FAILPOINTS"))

    def hit(self, step_id: str, point: str) -> None:
        if not self._armed:
            return
        entry = self._armed.get((step_id, point)) or self._armed.get(("*", point))
        if entry is None:
            return
        with self._lock:
            action, remaining = entry
            if remaining == 0:
                return
            if remaining > 0:
                entry[1] = remaining - 1
        where = f"{step_id}:{point}"
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(where, transient=action == "transient")
