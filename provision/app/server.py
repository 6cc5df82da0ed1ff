"""The sandbox daemon: moto's server (with our fidelity), the Databricks emulator and the ARM emulator, on 127.0.0.1.

Three ports: AWS on one (S3 path-style buckets could otherwise collide with the emulators' paths), Azure ARM on
another (its paths begin /subscriptions/ like nothing else, but its faults and token are its own), Databricks plus
the control endpoints on the third:

    GET  /_sandbox/health      -> {"ok": true}
    GET  /_sandbox/config      -> the live settings
    POST /_sandbox/config      -> change settings (JSON object of numeric fields)
    POST /_sandbox/reset       -> forget every AWS resource, Databricks object and Azure resource
    GET  /_sandbox/faults      -> {"injected": {kind: count}, "lost_responses": n} (faults.py)
    POST /_sandbox/faults/reset -> zero those counters and reseed the fault RNG from fault_seed
    GET  /_sandbox/journal     -> every pending time drawn and the latency given to calls (sandbox/journal.py)
    POST /_sandbox/journal/reset -> forget them (the benchmark resets it before each command)
    GET  /_sandbox/throttled   -> {"databricks": n, "ec2": n}: requests refused for rate since the last reset
         (sandbox/ratelimit.py; off unless databricks_rate_limit / ec2_rate_scale > 0)
    POST /_sandbox/throttled/reset -> zero those counters and refill every rate-limit bucket
    GET  /_sandbox/databricks/metastore-objects?account_id=A -> every Unity Catalog object per metastore (for the
         inventory: a metastore no running workspace reaches has no API to list it through)

All three apps are wrapped in one FaultInjector (faults.py), off unless fault_rate / lost_response_rate > 0;
inside it, the AWS app and the Databricks emulator in one RateLimiter (ratelimit.py), so a throttled call still
costs its call latency. Control paths reach neither.

Run as `python -m provision.app.server --runtime-dir DIR`; it writes DIR/sandbox.json once both
ports listen, and removes it on SIGTERM. Against a moto the AWS fidelity patches were not written for
(another version, a renamed or changed patch target) it refuses to start, naming the target, and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from provision.errors import SandboxError
from provision.sandbox.faults import FaultInjector
from provision.sandbox.ratelimit import RateLimiter
from provision.sandbox.settings import SandboxSettings

INFO_FILE = "sandbox.json"


def _control(
    settings: SandboxSettings, databricks_app: Callable, faults: FaultInjector | None = None, limits: RateLimiter | None = None
) -> Callable:
    from werkzeug.wrappers import Request, Response

    from provision.clouds.azure import sandbox as azure
    from provision.clouds.databricks import sandbox as databricks

    def reply(payload: Any, status: int = 200) -> Response:
        return Response(json.dumps(payload), status=status, mimetype="application/json")

    def app(environ: dict, start_response: Callable) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_sandbox/"):
            return databricks_app(environ, start_response)
        request = Request(environ)
        fault_reply = faults.control(request.method, path) if faults is not None else None
        if fault_reply is not None:
            response = reply(fault_reply[1], fault_reply[0])
        elif path == "/_sandbox/health":
            response = reply({"ok": True, "pid": os.getpid()})
        elif path == "/_sandbox/config" and request.method == "GET":
            response = reply(settings.public_fields())
        elif path == "/_sandbox/config" and request.method == "POST":
            try:
                response = reply(settings.update(json.loads(request.get_data() or b"{}")))
            except (ValueError, AttributeError) as exc:
                response = reply({"error": str(exc)}, 400)
        elif path == "/_sandbox/journal" and request.method == "GET":
            response = reply(settings.journal.snapshot())
        elif path == "/_sandbox/journal/reset" and request.method == "POST":
            settings.journal.reset()
            response = reply({"reset": True})
        elif limits is not None and (limit_reply := limits.control(request.method, path)) is not None:
            response = reply(limit_reply[1], limit_reply[0])
        elif path == "/_sandbox/databricks/metastore-objects" and request.method == "GET":
            response = reply(databricks.metastore_objects(request.args.get("account_id", "")))
        elif path == "/_sandbox/reset" and request.method == "POST":
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
            databricks.reset()
            azure.reset()
            response = reply({"reset": True})
        else:
            response = reply({"error": f"no such control endpoint {request.method} {path}"}, 404)
        return response(environ, start_response)

    return app


def _write_info(runtime_dir: Path, info: dict[str, Any]) -> None:
    tmp = runtime_dir / f".{INFO_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(info, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, runtime_dir / INFO_FILE)


def serve(runtime_dir: Path, overrides: dict[str, Any], port: int = 0) -> None:
    from werkzeug.serving import make_server

    from provision.clouds.aws.sandbox import make_aws_app
    from provision.clouds.azure.sandbox import make_azure_app
    from provision.clouds.databricks.sandbox import make_databricks_app

    settings = SandboxSettings()
    settings.update(overrides)
    faults, limits = FaultInjector(settings), RateLimiter(settings)
    aws_server = make_server("127.0.0.1", port, faults.wrap(limits.wrap(make_aws_app(settings), "aws"), "aws"), threaded=True)
    dbx_app = _control(settings, faults.wrap(limits.wrap(make_databricks_app(settings), "databricks"), "databricks"), faults, limits)
    dbx_server = make_server("127.0.0.1", 0, dbx_app, threaded=True)
    azure_server = make_server("127.0.0.1", 0, faults.wrap(make_azure_app(settings), "azure"), threaded=True)
    servers = (aws_server, dbx_server, azure_server)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    runtime_dir.mkdir(parents=True, exist_ok=True)
    _write_info(
        runtime_dir,
        {
            "pid": os.getpid(),
            "aws_endpoint_url": f"http://127.0.0.1:{aws_server.server_port}",
            "databricks_host": f"http://127.0.0.1:{dbx_server.server_port}",
            "databricks_account_id": settings.account_id,
            "databricks_token": settings.token,
            "azure_endpoint_url": f"http://127.0.0.1:{azure_server.server_port}",
            "azure_subscription_id": settings.azure_subscription_id,
            "azure_token": settings.azure_token,
        },
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.shutdown()
    try:
        info = json.loads((runtime_dir / INFO_FILE).read_text())
        if info.get("pid") == os.getpid():
            (runtime_dir / INFO_FILE).unlink()
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="provision-sandbox")
    parser.add_argument("--runtime-dir", required=True, type=Path)
    parser.add_argument("--settings", default="{}", help="JSON object of SandboxSettings fields")
    args = parser.parse_args(argv)
    try:
        serve(args.runtime_dir, json.loads(args.settings))
    except SandboxError as exc:  # the daemon's starter shows this log line as the reason
        print(f"provision sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
