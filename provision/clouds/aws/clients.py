"""boto3 clients for one run: real AWS through boto3's default chain, or the sandbox's moto on 127.0.0.1.

boto3 is imported lazily, so `provision --help` never loads it. botocore's own retries are off (our one
classifier retries), and a before/after-call hook counts and times every call, and paces EC2's: each call waits
for a token of its action's bucket (provision/rate_limits.py, slightly under AWS's figures, shared by every
client of the Region in this process: orchestrator/pacing.py), and a RequestLimitExceeded empties that bucket.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from provision.orchestrator import pacing
from provision.orchestrator.clients import CallStats, OnCall, Target
from provision.rate_limits import ec2_bucket

# EC2's throttling errors (the only service whose documented buckets we pace).
_EC2_THROTTLED = ("RequestLimitExceeded", "EC2ThrottledException")


class AwsClients:
    def __init__(self, *, region: str, target: Target, stats: CallStats, on_call: OnCall | None = None):
        self.region = region
        self.target = target
        self.stats = stats
        self._on_call = on_call
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        # Steps run on several threads: clients are shared (boto3 clients are thread-safe), but making one
        # from the session is not, so creation is serialized.
        self._lock = threading.RLock()
        self.ec2_pacer = ec2_pacer(region, target)

    def client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    client = self._clients[service] = self._make(service)
        return client

    def session(self) -> Any:
        """The run's boto3 session: boto3's default chain (profiles, SSO, environment, instance roles) on a real
        target; fixed dummy keys in the sandbox, so a sandbox run never signs with, or leaks, a user's credentials."""
        import boto3

        with self._lock:
            if self._session is None:
                if self.target.is_sandbox:
                    self._session = boto3.session.Session(
                        aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=self.region
                    )
                else:
                    self._session = boto3.session.Session(region_name=self.region)
            return self._session

    def _make(self, service: str) -> Any:
        from botocore.config import Config

        # A connection per concurrent step, so parallel steps never wait on botocore's pool of 10.
        config = Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=60, max_pool_connections=64)
        client = self.session().client(service, endpoint_url=self.target.endpoint("aws"), config=config)
        self._register_hooks(client)
        return client

    def _register_hooks(self, client: Any) -> None:
        events = client.meta.events
        paced = self.ec2_pacer if client.meta.service_model.service_name == "ec2" else None

        def before(params: Any = None, context: Any = None, model: Any = None, **_: Any) -> None:
            if paced is not None and model is not None:
                body = (params or {}).get("body")
                names = tuple(body) if isinstance(body, dict) else ()
                paced.acquire(model.name, names)
                if context is not None:
                    context["provision_parameters"] = names
            if context is not None:  # after pacing: a call's duration is the service's, not our wait
                context["provision_started"] = time.monotonic()

        def after(http_response: Any = None, parsed: Any = None, model: Any = None, context: Any = None, **_: Any) -> None:
            service = client.meta.service_model.service_name
            operation = model.name if model is not None else "?"
            began = (context or {}).get("provision_started")
            duration = time.monotonic() - began if began else 0.0
            self.stats.add(service, operation)
            error = (parsed or {}).get("Error") if isinstance(parsed, dict) else None
            if paced is not None and error and error.get("Code") in _EC2_THROTTLED:
                paced.throttled(operation, (context or {}).get("provision_parameters", ()))
            if self._on_call:
                self._on_call(service, operation, duration, getattr(http_response, "status_code", None))

        events.register("before-call.*.*", before)
        events.register("after-call.*.*", after)


def ec2_pacer(region: str, target: Target) -> pacing.Pacer | None:
    """The process's EC2 pacer for `region` on `target`: AWS's documented buckets per action, at 90 %, per real
    second or, in a time-scaled sandbox, per sandbox second divided by its scale. None in a sandbox without a
    latency profile: it has no rate limits unless a test sets some, and then retries absorb them."""
    if target.is_sandbox and not target.time_scale:
        return None
    scale = target.time_scale if target.is_sandbox else 0.0

    def bucket_of(action: str, parameters: Any) -> tuple[str, tuple[float, float]]:
        name, figures = ec2_bucket(action, parameters)
        return name, pacing.under(figures, time_scale=scale)

    key = ("ec2", target.kind, target.endpoint("aws") or "", region, scale)
    return pacing.shared.get(key, lambda: pacing.Pacer(f"ec2 {region}", bucket_of, log_over=1.0 * (scale or 1.0)))
