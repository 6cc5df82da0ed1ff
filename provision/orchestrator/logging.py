"""structlog setup: every event goes to the per-run log file as JSON; the terminal gets either JSON
(`--log-format json`, for CI) or, for people, only warnings and errors (progress has its own view).

Secrets are scrubbed before any sink sees an event: values of secret-looking keys, and any occurrence of
the secret values present in the environment (client secret, tokens, passwords).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Callable, TextIO

import structlog

SECRET_ENV = (
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_TOKEN",
    "DATABRICKS_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "ARM_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_PASSWORD",
)
_SECRET_KEY = re.compile(r"secret|token|password|authorization", re.IGNORECASE)
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def secret_values() -> list[str]:
    return [v for k in SECRET_ENV if (v := os.environ.get(k)) and len(v) >= 6]


def scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_KEY.search(str(k)) and v else scrub(v, secrets)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    return value


class _Sinks:
    """Final structlog processor: writes the event to the file and/or terminal, then drops it."""

    def __init__(self, log_file: TextIO | None, console_format: str, console_level: int, console_write: Callable[[str], None]):
        self.log_file = log_file
        self.console_format = console_format
        self.console_level = console_level
        self.console_write = console_write
        self.lock = threading.Lock()

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> Any:
        level = _LEVELS.get(event.get("level", "info"), 20)
        line = json.dumps(event, default=str)
        with self.lock:
            if self.log_file is not None:
                self.log_file.write(line + "\n")
                self.log_file.flush()
            if level >= self.console_level:
                if self.console_format == "json":
                    self.console_write(line)
                else:
                    self.console_write(_human(event))
        raise structlog.DropEvent


def _human(event: dict[str, Any]) -> str:
    skip = {"event", "level", "timestamp", "deployment", "run"}
    extras = " ".join(f"{k}={v}" for k, v in event.items() if k not in skip)
    return f"{event.get('level', 'info')}: {event.get('event', '')}" + (f" ({extras})" if extras else "")


def configure(
    *,
    log_path: Path | None,
    console_format: str = "human",
    verbose: bool = False,
    console_write: Callable[[str], None] | None = None,
) -> Any:
    """Configure structlog for this process and return the root bound logger."""
    log_file = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log_file = os.fdopen(fd, "a", buffering=1)
    secrets = secret_values()
    console_level = 10 if verbose else (20 if console_format == "json" else 30)
    write = console_write or (lambda line: print(line, file=sys.stderr, flush=True))

    def redact(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        return scrub(event, secrets)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            _Sinks(log_file, console_format, console_level, write),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(10),
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger()
