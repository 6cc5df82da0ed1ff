"""Progress reporting: a live per-step table on a terminal (rich), plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

_DONE_PHASES = {"created", "adopted", "converged", "existing", "kept", "deleted", "gone", "released"}
_STYLE = {
    "started": "cyan", "waiting": "cyan", "deleting": "cyan",
    "created": "green", "adopted": "green", "converged": "green", "existing": "dim", "kept": "dim", "deleted": "green", "gone": "dim", "released": "dim",
    "failed": "bold red",
}


class PlainReporter:
    """One line per transition: what CI logs and pipes want."""

    def __init__(self, steps: list[tuple[str, str]], stream: TextIO | None = None):
        self.total = len(steps)
        self.index = {sid: i + 1 for i, (sid, _) in enumerate(steps)}
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def step(self, step_id: str, phase: str, detail: str = "") -> None:
        if phase in ("waiting",):
            return
        width = len(str(self.total))
        line = f"[{self.index.get(step_id, 0):>{width}}/{self.total}] {step_id}: {phase}" + (f" {detail}" if detail else "")
        with self.lock:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        return None


class LiveReporter:
    """A table of every step with its phase, resource and elapsed time, redrawn in place."""

    def __init__(self, steps: list[tuple[str, str]], console: Any):
        from rich.live import Live

        self.steps = steps
        self.rows: dict[str, list[Any]] = {sid: ["pending", "", None, None] for sid, _ in steps}
        self.console = console
        self.lock = threading.Lock()
        self.live = Live(self._render(), console=console, refresh_per_second=8, transient=False)
        self.live.start()

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("step", "kind", "phase", "resource", "time"):
            table.add_column(column)
        now = time.monotonic()
        for sid, kind in self.steps:
            phase, detail, began, ended = self.rows[sid]
            elapsed = "" if began is None else f"{(ended or now) - began:5.1f}s"
            style = _STYLE.get(phase, "dim")
            table.add_row(sid, kind, f"[{style}]{phase}[/]", detail[:60], elapsed)
        return table

    def step(self, step_id: str, phase: str, detail: str = "") -> None:
        with self.lock:
            row = self.rows.setdefault(step_id, ["pending", "", None, None])
            if phase in ("started", "deleting") or row[2] is None:
                row[2], row[3] = time.monotonic(), None
            if phase in _DONE_PHASES or phase == "failed":
                row[3] = time.monotonic()
            row[0] = phase
            if detail:
                row[1] = detail
            self.live.update(self._render())

    def close(self) -> None:
        self.live.update(self._render())
        self.live.stop()


def make_reporter(steps: list[tuple[str, str]], *, log_format: str) -> Any:
    if log_format == "json":
        return _Silent()
    if sys.stdout.isatty():
        from rich.console import Console

        return LiveReporter(steps, Console())
    return PlainReporter(steps)


class _Silent:
    """With --log-format json the structured log carries every transition."""

    def step(self, step_id: str, phase: str, detail: str = "") -> None:
        return None

    def close(self) -> None:
        return None
