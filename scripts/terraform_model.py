"""A model of Terraform's run on our step graph: what `terraform apply` / `terraform destroy` of the
published guides would take with the same provider-side latencies (docs/terraform-model.md).

It is a model, not a run. Every step is one Terraform resource; the graph walk is list-scheduled with
`-parallelism=10`; each resource costs its calls at the measured call latency plus the provider's own
waiter over the pending time the sandbox drew, rounded up to that waiter's poll schedule (the schedules
are the providers' published source, cited in the doc); the guides' `time_sleep`s sit where the guides
put them, and the PrivateLink guide's second apply is a refresh of the whole state plus the updates it
makes. Where a choice was open, the model takes the one that makes Terraform faster, and says so in the
`assumptions` it returns.

All inputs are sandbox seconds; the constants below are real seconds and are multiplied by `time_scale`
(the benchmark runs a time-scaled replica). No provision import: benchmark.py imports it from scripts/.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Generator
from dataclasses import dataclass, field

PARALLELISM = 10  # terraform apply/destroy -parallelism default
CAP_S = 10.0  # helper/retry StateChangeConf: the doubling backoff stops at 10 s
FIRST_S = 0.1  # ... and starts from 0.1 s (doubled before the first wait: 0.2 s)
ARM_CAP_S = 10.0  # the sandbox's ARM emulator: Retry-After is the whole seconds left, at most 10


@dataclass
class StepCost:
    """One of our steps, as the provider made us wait for it (sandbox seconds)."""

    kind: str  # our step kind, e.g. "ec2.nat_gateway", "databricks.workspace"
    pending_s: float  # provider-side pending time drawn for its resource (0 if none)
    calls: int  # non-poll API calls the step made
    call_s: float  # mean latency of one of those calls


@dataclass(frozen=True)
class Poll:
    """A provider waiter (terraform-plugin-sdk helper/retry.StateChangeConf fields), real seconds; or ARM."""

    delay: float = 0.0  # Delay: before the first refresh
    min_timeout: float = 0.0  # MinTimeout: floor of the backoff
    poll_interval: float = 0.0  # PollInterval: fixed interval instead of the backoff (when < 180 s)
    repeats: int = 1  # ContinuousTargetOccurence
    arm: str = ""  # "put" | "delete": go-azure-sdk's LRO poller instead (see settle_arm)


DEFAULT = Poll()  # StateChangeConf with no Delay/MinTimeout/PollInterval
RETRY = Poll(min_timeout=0.5)  # retry.RetryContext / tfresource.Retry: MinTimeout 500 ms
VPCE = Poll(delay=5, min_timeout=5)  # ec2 wait.go waitVPCEndpointAvailable / waitVPCEndpointDeleted
ATTR = Poll(delay=10, min_timeout=3)  # ec2 wait.go waitVPCAttributeUpdated / waitSubnet*Updated
NAT_DELETED = Poll(delay=10, min_timeout=10)  # ec2 wait.go waitNATGatewayDeleted


@dataclass(frozen=True)
class Kind:
    """How Terraform's provider creates or deletes one kind of resource."""

    wait: str = "exact"  # "poll" (waiter), "blocked" (retry until unblocked), "ready" (IAM role), "exact"
    poll: Poll | None = None
    extra: tuple[Poll, ...] = ()  # attribute waiters after the resource is ready (pending 0)
    extra_calls: int = 0


_NO_WAITER = [
    "ec2.elastic_ip", "ec2.flow_log", "ec2.network_acl", "network_firewall.rule_group", "network_firewall.firewall_policy",
    "iam.role_policy", "s3.bucket", "s3.bucket_policy", "logs.log_group", "guardduty.detector", "config.recorder",
    "config.rules", "budgets.budget", "databricks.network", "databricks.storage_configuration",
    "databricks.private_access_settings", "databricks.customer_managed_key", "databricks.metastore",
    "databricks.metastore_assignment", "databricks.deployer_admin", "databricks.service_principal",
    "databricks.service_principal_secret", "databricks.group", "databricks.permission_assignment",
    "databricks.external_location", "databricks.catalog", "databricks.schema", "databricks.default_namespace",
    "databricks.cluster_policy", "databricks.network_policy", "databricks.network_policy_binding",
    "databricks.workspace_setting", "databricks.workspace_token",
]
_AZURE = ["resource_group", "nsg", "nsg_association", "vnet", "subnet", "databricks_workspace", "private_dns_zone",
          "private_dns_link", "private_endpoint", "private_dns_zone_group"]

CREATE: dict[str, Kind] = {
    **{k: Kind() for k in _NO_WAITER},
    "ec2.vpc": Kind("poll", DEFAULT, extra=(ATTR,)),  # waitVPCCreated, then enable_dns_hostnames
    "ec2.subnet": Kind("poll", DEFAULT),  # waitSubnetAvailable (+ ATTR for public subnets, see _kind)
    "ec2.internet_gateway": Kind("poll", DEFAULT),  # WaitInternetGatewayAttached
    "ec2.nat_gateway": Kind("poll", DEFAULT),  # waitNATGatewayCreated
    # aws_route_table ready twice in a row, then its aws_route/association resources (also twice).
    "ec2.route_table": Kind("poll", Poll(repeats=2), extra=(Poll(repeats=2),), extra_calls=1),
    "ec2.route": Kind("poll", Poll(repeats=2)),  # waitRouteReady
    "ec2.security_group": Kind("poll", Poll(repeats=3)),  # waitSecurityGroupCreated
    "ec2.vpc_endpoint": Kind("poll", VPCE),
    "ec2.vpc_endpoint_private_dns": Kind("poll", VPCE),  # ModifyVpcEndpoint, then waitVPCEndpointAvailable
    "ec2.transit_gateway": Kind("poll", DEFAULT),
    "ec2.transit_gateway_route_table": Kind("poll", DEFAULT),
    "ec2.transit_gateway_vpc_attachment": Kind("poll", DEFAULT),
    "ec2.transit_gateway_route": Kind("poll", DEFAULT),
    "network_firewall.firewall": Kind("poll", DEFAULT),  # networkfirewall waitFirewallCreated
    "iam.role": Kind("ready"),  # no waiter: its propagation delays only those that validate it
    # CreateKey retried while its policy's new principal does not resolve (MalformedPolicyDocument); then
    # kms wait.go: policy and description propagated, 5 reads in a row, 1 s and 2 s apart.
    "kms.key": Kind("blocked", RETRY, extra=(Poll(min_timeout=1, repeats=5), Poll(min_timeout=2, repeats=5))),
    # mws WaitForExpectedStatus (RetryContext) until RUNNING, then one GET on the workspace (reachable).
    "databricks.workspace": Kind("poll", RETRY, extra_calls=1),
    "databricks.vpc_endpoint": Kind("poll", RETRY),  # mws VPCEndpointAPI.Create: RetryContext until available
    "databricks.grants": Kind("poll", RETRY),  # catalog permissions WaitForUpdate
    # Validated against the IAM role on creation; one attempt, no retry (hence the guides' sleeps).
    "databricks.credentials": Kind("blocked"),
    "databricks.storage_credential": Kind("blocked"),
    **{f"azure.{k}": Kind("poll", Poll(arm="put")) for k in _AZURE},
}
DELETE: dict[str, Kind] = {
    **{k: Kind() for k in _NO_WAITER + ["iam.role", "kms.key", "databricks.credentials", "databricks.storage_credential",
                                         "databricks.vpc_endpoint", "databricks.grants", "ec2.route", "ec2.vpc_endpoint_private_dns"]},
    "ec2.nat_gateway": Kind("poll", NAT_DELETED),
    "ec2.vpc_endpoint": Kind("poll", VPCE),
    "ec2.transit_gateway": Kind("poll", DEFAULT),
    "ec2.transit_gateway_route_table": Kind("poll", DEFAULT),
    "ec2.transit_gateway_vpc_attachment": Kind("poll", DEFAULT),
    "ec2.transit_gateway_route": Kind("poll", DEFAULT),
    "network_firewall.firewall": Kind("poll", DEFAULT),  # networkfirewall waitFirewallDeleted
    "ec2.route_table": Kind("poll", Poll(repeats=2)),  # waitRouteTableDeleted
    # DeleteX retried on DependencyViolation (tfresource.RetryWhenAWSErrCodeEquals) until unblocked.
    **{k: Kind("blocked", RETRY) for k in ("ec2.subnet", "ec2.security_group", "ec2.vpc", "ec2.internet_gateway")},
    "databricks.workspace": Kind("poll", RETRY),  # mws WorkspacesAPI.Delete: RetryContext until 404
    "databricks.network": Kind("poll", RETRY),  # mws NetworksAPI.Delete: RetryContext until 404
    **{f"azure.{k}": Kind("poll", Poll(arm="delete")) for k in _AZURE},
}


# --- the guides ------------------------------------------------------------------------------------------

Match = tuple[tuple[str, str], ...]  # (step kind, substring of the step id): a step matches either pair


@dataclass(frozen=True)
class Sleep:
    name: str
    seconds: float  # real seconds (create_duration)
    after: Match  # the time_sleep depends on these (empty: on nothing)
    before: Match  # these depend on the time_sleep
    where: str


@dataclass(frozen=True)
class Guide:
    name: str
    sleeps: tuple[Sleep, ...] = ()
    second_apply: bool = False  # private DNS on the endpoints in a second apply (seed 000); else on creation


_ROLE_SLEEP = Sleep("time_sleep.wait", 10, (("iam.role", "crossaccount"),), (("databricks.workspace", ""),),
                    "after the cross-account role, before the workspace")
_SRA_WORKSPACE = Sleep("time_sleep.wait_for_workspace", 60, (("databricks.workspace", ""),),
                       (("databricks.workspace_setting", ""), ("databricks.default_namespace", "")),
                       "after the workspace, before workspace settings")
GUIDES = {
    "aws-workspace": Guide("Databricks provider guide aws-workspace (seed 002's credentials workaround)", (_ROLE_SLEEP,)),
    "aws-private-link": Guide("Databricks provider guide aws-private-link-workspace as in seed 000", second_apply=True),
    "aws-hub-spoke": Guide("Databricks provider guide aws-e2-firewall-hub-and-spoke (seeds 001/002)", (_ROLE_SLEEP,)),
    "sra-aws": Guide("Databricks security reference architecture, aws/tf (classic compute)", (
        Sleep("time_sleep.wait_30_seconds", 30, (), (("databricks.credentials", ""),), "before the credentials"),
        _SRA_WORKSPACE,
        Sleep("time_sleep.wait_60_seconds", 60, (("databricks.metastore_assignment", ""),),
              (("databricks.external_location", ""),), "after the metastore assignment, before the external location"),
    )),
    "sra-aws-serverless": Guide("Databricks security reference architecture, aws/tf (compute_mode SERVERLESS)", (_SRA_WORKSPACE,)),
    "seed-004": Guide("seed 004 (Databricks on AWS enterprise infrastructure)", (
        Sleep("time_sleep.wait_for_iam_propagation", 180, (("iam.role_policy", "crossaccount"),),
              (("databricks.credentials", ""),), "after the cross-account policy, before the credentials"),
    )),
    "azure-private-link": Guide("Databricks provider guide azure-private-link-workspace (no sleeps, one apply)"),
    "none": Guide("no guide"),
}
TOPOLOGY_GUIDES = {"basic": "aws-workspace", "privatelink": "aws-private-link", "hub-spoke": "aws-hub-spoke",
                   "enterprise": "sra-aws", "serverless": "sra-aws-serverless", "governance": "seed-004",
                   "azure-privatelink": "azure-private-link"}

GENERAL = [
    ("A model, not a run: Terraform's graph walk on our step graph, one step = one Terraform resource, "
     f"list-scheduled in graph order with -parallelism={PARALLELISM}; a time_sleep holds a slot like any resource."),
    ("Each resource: its first call (create or delete), then the provider's waiter over the pending time the sandbox "
     "drew, on the provider's poll schedule (helper/retry StateChangeConf: Delay, then 0.2 s doubling to 10 s, "
     "floored at MinTimeout; each refresh sees the state as it is when it returns), then the step's other calls. "
     "Terraform's read after create is taken as our own lookup before create: the same call count."),
    ("Left out (favours Terraform): terraform/provider process start, data-source reads during plan, state writes, "
     "and apply failures (an early Databricks credential validation or an unreachable new workspace)."),
    "A pending time on a kind with no provider waiter is waited exactly, with no poll rounding (favours Terraform).",
    ("A new IAM role's propagation delays only what validates it: the Databricks credentials and storage credential "
     "(one attempt, no retry: modelled as made the moment it can succeed, favours Terraform) and a KMS key whose "
     "policy names it (retried on MalformedPolicyDocument); any time_sleep before them overlaps it."),
    ("Route tables: aws_route_table then its aws_route/association resources, one extra call and one more "
     "twice-in-a-row read; a security group's inline rules and an S3 bucket's settings stay in their one node."),
    ("The guides' VPCs set enable_dns_hostnames = true, and their public subnets (ids naming them public) "
     "map_public_ip_on_launch = true (VPC module v3.2.0 default; the hub-and-spoke guide's hub subnets): each "
     "creation also waits its attribute waiter (Delay 10 s, MinTimeout 3 s)."),
]
TEARDOWN = [
    ("terraform destroy: refresh of every resource in state (one read each, parallelism 10), then the reversed graph; "
     "time_sleep has no destroy_duration in the guides, so sleeps cost nothing on the way down."),
    ("Lingering interfaces are in the NAT/endpoint's pending time (as the benchmark attributes them), waited on the "
     "NAT/endpoint's delete schedule; the provider really retries the blocked subnet/security group delete "
     "(0.5 s doubling to 10 s), which can only end later (favours Terraform)."),
]
SECOND_APPLY = ("Second apply (seed 000, terraform-provider-aws#7148): private_dns_enabled is uncommented on both "
                "aws_vpc_endpoints, so the first apply has no private-DNS step (the network and workspace do not wait "
                "for it) and the second is a refresh of every resource in state plus two in-place updates "
                "(ModifyVpcEndpoint, then waitVPCEndpointAvailable).")
SINGLE_APPLY = ("single_apply_seconds: the current upstream guide sets private_dns_enabled = true on creation: one "
                "apply, the endpoints' own pending covering the DNS.")
ARM = ("ARM operations polled as go-azure-sdk's poller does against the sandbox's ARM emulator: first poll after "
       "the PUT's Retry-After (whole seconds left, <= 10 s), then at that interval (its operation status sends no "
       "Retry-After); deletes re-read Retry-After from each 202.")


# --- poll schedules --------------------------------------------------------------------------------------


def _sdk_waits(poll: Poll, scale: float) -> Generator[float, bool, None]:
    """StateChangeConf's wait after each refresh; the caller sends whether the target was seen."""
    wait = FIRST_S * scale
    while True:
        hit = yield wait
        if not hit:
            wait *= 2
        if 0 < poll.poll_interval < 180:
            wait = poll.poll_interval * scale
        elif wait < poll.min_timeout * scale:
            wait = poll.min_timeout * scale
        elif wait > CAP_S * scale:
            wait = CAP_S * scale


def settle(pending: float, poll: Poll, call_s: float, scale: float) -> float:
    """When a waiter following `poll`, started at 0, returns for a state due at `pending` (sandbox seconds)."""
    if poll.arm:
        return settle_arm(pending, call_s, scale, countdown=poll.arm == "delete")
    t, hits = poll.delay * scale, 0
    waits = _sdk_waits(poll, scale)
    next(waits)
    while True:
        t += call_s
        hits = hits + 1 if t >= pending - 1e-9 else 0
        if hits >= poll.repeats:
            return t
        wait = waits.send(hits > 0)
        if wait + call_s <= 0:  # no latency and no wait: the state is seen the moment it is due
            return max(t, pending)
        t += wait


def settle_arm(pending: float, call_s: float, scale: float, *, countdown: bool) -> float:
    """go-azure-sdk's poller: wait Retry-After (or keep the first one), poll, until the operation is done."""

    def retry_after(rest: float) -> float:
        return scale * min(ARM_CAP_S, math.floor(max(rest, 0.0) / scale + 1e-9))

    interval = retry_after(pending)
    t = interval
    while True:
        t += call_s
        if t >= pending - 1e-9:
            return t
        wait = retry_after(pending - t) if countdown else interval
        if wait + call_s <= 0:
            return pending
        t += wait


# --- the walk --------------------------------------------------------------------------------------------


@dataclass
class _Node:
    id: str
    kind: str
    needs: tuple[str, ...]
    cost: StepCost
    order: int
    sleep_s: float | None = None  # a time_sleep (scaled seconds)
    profile: Kind = field(default_factory=Kind)


@dataclass
class _Timing:
    start: float
    finish: float  # Terraform moves on
    done: float  # the provider reached the target state
    ready: float  # an IAM role's propagation (what validating consumers wait for)


def _time(node: _Node, start: float, seen: dict[str, _Timing], nodes: dict[str, _Node], scale: float) -> _Timing:
    ready = max((seen[d].ready for d in node.needs), default=0.0)
    if node.sleep_s is not None:
        end = start + node.sleep_s
        return _Timing(start, end, end, ready)
    cost, prof = node.cost, node.profile
    call = cost.call_s
    first = start + call
    if prof.wait == "poll" and prof.poll is not None:
        done = first + cost.pending_s
        end = first + settle(cost.pending_s, prof.poll, call, scale)
    elif prof.wait == "blocked":
        real = [seen[d].done for d in node.needs if nodes[d].sleep_s is None]
        unblock = max(max(real, default=start) + cost.pending_s, ready)
        if prof.poll is None:  # one attempt, made the moment it can succeed
            end = max(start, unblock) + call
        else:  # the first call is the first attempt
            end = start + settle(unblock - start, prof.poll, call, scale)
        done = end
    elif prof.wait == "ready":
        end = done = first
        ready = max(ready, first + cost.pending_s)
    else:
        end = done = first + cost.pending_s
    end += (max(cost.calls, 1) - 1 + prof.extra_calls) * call
    end += sum(settle(0.0, p, call, scale) for p in prof.extra)
    return _Timing(start, end, done, ready)


def _walk(nodes: dict[str, _Node], scale: float) -> dict[str, _Timing]:
    """List scheduling: a node starts when its needs are done and one of the slots is free, in graph order."""
    left = {n.id: set(n.needs) for n in nodes.values()}
    users: dict[str, list[str]] = {n: [] for n in nodes}
    for n in nodes.values():
        for d in n.needs:
            users[d].append(n.id)
    ready = [(n.order, n.id) for n in nodes.values() if not n.needs]
    heapq.heapify(ready)
    running: list[tuple[float, int, str]] = []
    seen: dict[str, _Timing] = {}
    now = 0.0
    while ready or running:
        while ready and len(running) < PARALLELISM:
            _, nid = heapq.heappop(ready)
            seen[nid] = _time(nodes[nid], now, seen, nodes, scale)
            heapq.heappush(running, (seen[nid].finish, nodes[nid].order, nid))
        now, _, nid = heapq.heappop(running)
        for user in users[nid]:
            left[user].discard(nid)
            if not left[user]:
                heapq.heappush(ready, (nodes[user].order, user))
    if len(seen) != len(nodes):
        raise ValueError(f"the step graph has a cycle or a missing step: {sorted(set(nodes) - set(seen))}")
    return seen


def _critical(nodes: dict[str, _Node], seen: dict[str, _Timing]) -> list[str]:
    if not seen:
        return []
    chain = [max(seen, key=lambda n: (seen[n].finish, seen[n].start, nodes[n].order))]
    while nodes[chain[-1]].needs:
        chain.append(max(nodes[chain[-1]].needs, key=lambda d: seen[d].finish))
    return chain[::-1]


def _refresh(nodes: dict[str, _Node]) -> float:
    """One read per resource in state (time_sleep reads no API), PARALLELISM at a time."""
    reads = sorted((n.cost.call_s for n in nodes.values() if n.sleep_s is None), reverse=True)
    slots = [0.0] * min(PARALLELISM, max(len(reads), 1))
    for read in reads:
        heapq.heappush(slots, heapq.heappop(slots) + read)
    return max(slots)


# --- building the Terraform graph ------------------------------------------------------------------------


def _kind(nid: str, cost: StepCost, table: dict[str, Kind], unknown: set[str], up: bool) -> Kind:
    prof = table.get(cost.kind)
    if prof is None:
        unknown.add(cost.kind)
        return Kind()
    if up and cost.kind == "ec2.subnet" and "public" in nid:
        return Kind(prof.wait, prof.poll, prof.extra + (ATTR,), prof.extra_calls)
    return prof


def _bridge(graph: dict[str, tuple[str, ...]], drop: set[str]) -> dict[str, tuple[str, ...]]:
    """The graph without `drop`: whoever needed a dropped step needs what it needed instead."""
    def needs(nid: str) -> list[str]:
        out: list[str] = []
        for d in graph[nid]:
            for x in (needs(d) if d in drop else [d]):
                if x not in out:
                    out.append(x)
        return out

    return {nid: tuple(needs(nid)) for nid in graph if nid not in drop}


def _nodes(graph: dict[str, tuple[str, ...]], costs: dict[str, StepCost], guide: Guide, *, up: bool,
           scale: float, unknown: set[str]) -> dict[str, _Node]:
    missing = sorted({d for deps in graph.values() for d in deps} - set(graph))
    if missing:
        raise ValueError(f"the step graph needs steps it does not have: {missing}")
    table = CREATE if up else DELETE
    kinds = {nid: costs[nid].kind if nid in costs else "unknown" for nid in graph}
    cost = {nid: costs.get(nid, StepCost("unknown", 0.0, 1, 0.0)) for nid in graph}
    sleeps = []
    for s in guide.sleeps:
        after = tuple(n for n in graph if any(kinds[n] == k and sub in n for k, sub in s.after))
        before = [n for n in graph if any(kinds[n] == k and sub in n for k, sub in s.before)]
        if s.after and not after:
            continue
        sleeps.append((s, after, before))
    if up:
        needs = {nid: list(graph[nid]) for nid in graph}
    else:  # reversed: a step goes after everything that needed it
        needs = {nid: [] for nid in graph}
        for nid, deps in graph.items():
            for d in deps:
                needs[d].append(nid)
    nodes: dict[str, _Node] = {}
    for i, (s, after, before) in enumerate(sleeps):
        first, then = (after, before) if up else (tuple(before), after)
        for b in then:
            needs[b].append(s.name)
        # Sleeps go first among ready nodes; the guides set no destroy_duration, so they are free on the way down.
        nodes[s.name] = _Node(s.name, "time_sleep", tuple(first), StepCost("time_sleep", 0.0, 0, 0.0), i - len(sleeps),
                              sleep_s=s.seconds * scale if up else 0.0)
    order = list(graph) if up else list(graph)[::-1]
    for i, nid in enumerate(order):
        nodes[nid] = _Node(nid, kinds[nid], tuple(needs[nid]), cost[nid], i,
                           profile=_kind(nid, cost[nid], table, unknown, up))
    return nodes


def guide_for(topology: str, kinds: set[str]) -> tuple[Guide, str | None]:
    """The guide a topology is modelled on; for an unknown topology, the nearest one (and a note saying so)."""
    if topology in TOPOLOGY_GUIDES:
        return GUIDES[TOPOLOGY_GUIDES[topology]], None
    if "ec2.vpc_endpoint_private_dns" in kinds:
        name = "aws-private-link"
    elif any(k.startswith("azure.") for k in kinds):
        name = "azure-private-link"
    elif {"iam.role", "databricks.workspace"} <= kinds:
        name = "aws-workspace"
    else:
        name = "none"
    return GUIDES[name], f"topology {topology!r} has no guide of its own: modelled on {GUIDES[name].name}"


def _first(graph: dict[str, tuple[str, ...]], costs: dict[str, StepCost], topology: str, up: bool,
           scale: float, unknown: set[str]) -> tuple[Guide, str | None, set[str], dict[str, _Node]]:
    """The guide, the private-DNS steps and the nodes of the first (or only) walk."""
    guide, note = guide_for(topology, {c.kind for nid, c in costs.items() if nid in graph})
    dns = {nid for nid in graph if nid in costs and costs[nid].kind == "ec2.vpc_endpoint_private_dns"}
    # Private DNS is an attribute of aws_vpc_endpoint: never a node of its own in the first apply or in destroy.
    nodes = _nodes(_bridge(graph, dns) if dns else graph, costs, guide, up=up, scale=scale, unknown=unknown)
    return guide, note, dns, nodes


def model(graph: dict[str, tuple[str, ...]], costs: dict[str, StepCost], *, topology: str, operation: str,
          time_scale: float) -> dict:
    """Modelled Terraform seconds (sandbox seconds) for `up` (apply) or `teardown` (destroy) of `graph`."""
    if operation not in ("up", "teardown"):
        raise ValueError(f"operation must be 'up' or 'teardown', not {operation!r}")
    if not time_scale > 0:
        raise ValueError("time_scale must be greater than 0")
    up, unknown = operation == "up", set()
    guide, note, dns, nodes = _first(graph, costs, topology, up, time_scale, unknown)
    assumptions = [*GENERAL, *([] if up else TEARDOWN), f"guide: {guide.name}", *([note] if note else [])]
    if any(n.kind.startswith("azure.") for n in nodes.values()):
        assumptions.append(ARM)
    phases = [] if up else [("refresh", _refresh(nodes))]
    seen = _walk(nodes, time_scale)
    walk_s = max((t.finish for t in seen.values()), default=0.0)
    phases.append(("apply" if up else "destroy", walk_s))
    critical = _critical(nodes, seen)
    sleeps = [n for n in nodes.values() if n.sleep_s]
    where = {s.name: s.where for s in guide.sleeps}
    assumptions += [f"{n.id}: {n.sleep_s / time_scale:g} s, {where[n.id]}" for n in sleeps]
    extra: dict = {}
    if up and dns and guide.second_apply:
        # The guide's second apply: plan refreshes the whole state, then the endpoints get private DNS.
        updates = {nid: _Node(nid, costs[nid].kind, (), costs[nid], i, profile=CREATE["ec2.vpc_endpoint_private_dns"])
                   for i, nid in enumerate(n for n in graph if n in dns)}
        phases += [("apply 2: refresh", _refresh(nodes)),
                   ("apply 2: private DNS on the endpoints", max(t.finish for t in _walk(updates, time_scale).values()))]
        assumptions += [SECOND_APPLY, SINGLE_APPLY]
        extra["single_apply_seconds"] = round(walk_s, 3)
    elif up and dns:
        assumptions.append("private_dns_enabled = true on creation: the endpoints' pending covers the DNS, one apply.")
    assumptions += [f"kind {k}: no provider poll schedule known; its calls, and its pending time waited exactly"
                    for k in sorted(unknown)]
    return {"seconds": sum(s for _, s in phases), "applies": 2 if len(phases) > 2 and up else 1,
            "sleeps_s": sum(n.sleep_s or 0.0 for n in sleeps),
            "critical_sleeps_s": sum(nodes[n].sleep_s or 0.0 for n in critical), "critical": critical,
            "phases": [{"phase": p, "seconds": round(s, 3)} for p, s in phases], **extra, "assumptions": assumptions}


def schedule(graph: dict[str, tuple[str, ...]], costs: dict[str, StepCost], *, topology: str, operation: str,
             time_scale: float) -> list[dict]:
    """Per node of the first (or only) walk, its start and finish: a per-step breakdown next to our own."""
    _, _, _, nodes = _first(graph, costs, topology, operation == "up", time_scale, set())
    seen = _walk(nodes, time_scale)
    return [{"id": nid, "kind": nodes[nid].kind, "start": round(t.start, 3), "finish": round(t.finish, 3)}
            for nid, t in sorted(seen.items(), key=lambda kv: (kv[1].start, nodes[kv[0]].order))]
