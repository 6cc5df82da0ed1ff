"""Secrets never reach a log sink; every event carries the bound step context."""

from __future__ import annotations

import json

import structlog

from provision.orchestrator.logging import configure, scrub


def test_secret_values_from_the_environment_are_scrubbed_everywhere(tmp_path, monkeypatch):
    secret = "s3cr3t-client-value-91b2"
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", secret)
    console: list[str] = []
    log = configure(log_path=tmp_path / "run.log", console_format="json", verbose=True, console_write=console.append)

    log.error("step failed", error=f"401 Unauthorized: invalid client secret {secret}", detail={"nested": [secret]})
    log.info("call", client_secret="plain-but-keyed", token="abc123", password="hunter22")

    written = (tmp_path / "run.log").read_text()
    assert secret not in written and all(secret not in line for line in console)
    events = [json.loads(line) for line in written.splitlines()]
    assert events[0]["error"].endswith("***") and events[0]["detail"] == {"nested": ["***"]}
    assert events[1]["client_secret"] == events[1]["token"] == events[1]["password"] == "***"
    assert oct((tmp_path / "run.log").stat().st_mode & 0o777) == "0o600"


def test_human_console_shows_only_warnings_and_the_file_gets_everything(tmp_path):
    console: list[str] = []
    log = configure(log_path=tmp_path / "run.log", console_format="human", console_write=console.append)
    log.debug("api call", operation="DescribeVpcs")
    log.warning("retrying", reason="throttled (Throttling)")
    assert len(console) == 1 and "retrying" in console[0] and "throttled" in console[0]
    assert len((tmp_path / "run.log").read_text().splitlines()) == 2


def test_bound_context_reaches_every_line(tmp_path):
    log = configure(log_path=tmp_path / "run.log", console_write=lambda line: None)
    with structlog.contextvars.bound_contextvars(step="nat.0", resource_id="nat-123"):
        log.info("created")
    event = json.loads((tmp_path / "run.log").read_text())
    assert event["step"] == "nat.0" and event["resource_id"] == "nat-123"


def test_scrub_leaves_ordinary_values_alone():
    assert scrub({"vpc_id": "vpc-1", "count": 3}, ["zzzzzz"]) == {"vpc_id": "vpc-1", "count": 3}
