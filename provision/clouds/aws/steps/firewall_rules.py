"""The hub firewall's rule-group bodies, in strict rule order (SRA's firewall), and the metastore's addresses.

Every group is STRICT_ORDER: the policy evaluates them by priority, each rule in the order written, and a
flow none of them passes meets the policy's default drop. The order the topology gives them matters:
the deny rules first; the control plane and the metastore passed by address before the domain allow-list,
whose generated rules drop any TLS or HTTP flow whose SNI or Host it does not name.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from provision.errors import ProvisionError
from provision.orchestrator.step import Context

STRICT_ORDER = "STRICT_ORDER"
_STRICT = {"StatefulRuleOptions": {"RuleOrder": STRICT_ORDER}}
# Databricks' examples allow the whole of .cloud.databricks.com (workspace and account hosts, the relay).
DATABRICKS_DOMAIN = ".cloud.databricks.com"
METASTORE_PORT = "3306"
# The sandbox has no DNS: each name resolves to one fixed address of TEST-NET-3 (RFC 5737) derived from it.
SANDBOX_NET = ipaddress.IPv4Network("203.0.113.0/24")

Resolver = Callable[[str], list[str]]


def _home(home_net: list[str]) -> dict[str, Any]:
    return {"RuleVariables": {"IPSets": {"HOME_NET": {"Definition": home_net}}}}


def _rule(action: str, protocol: str, destination: str, port: str, sid: int, direction: str = "FORWARD") -> dict[str, Any]:
    return {
        "Action": action,
        "Header": {"Protocol": protocol, "Source": "ANY", "SourcePort": "ANY", "Direction": direction, "Destination": destination, "DestinationPort": port},
        "RuleOptions": [{"Keyword": "sid", "Settings": [str(sid)]}],
    }


def domain_allowlist(domains: list[str], home_net: list[str]) -> dict[str, Any]:
    """TLS (by SNI) and HTTP (by Host) to these domains only; a leading dot allows the subdomains too."""
    targets = list(dict.fromkeys([*domains, DATABRICKS_DOMAIN]))
    return {
        **_home(home_net), **_STRICT,
        "RulesSource": {"RulesSourceList": {"Targets": targets, "TargetTypes": ["TLS_SNI", "HTTP_HOST"], "GeneratedRulesType": "ALLOWLIST"}},
    }


# ICMP, FTP and SSH as in Databricks' examples, plus UDP: the default drop acts on established flows only,
# and an unanswered UDP datagram never establishes one. Nothing Databricks needs goes out as UDP (DNS is the
# VPC resolver, time the link-local Time Sync Service), and the hub's NAT gateway carries only TCP, UDP and ICMP.
DENIED_PROTOCOLS = ("ICMP", "FTP", "SSH", "UDP")


def deny_protocols(home_net: list[str]) -> dict[str, Any]:
    rules = [_rule("DROP", p, "ANY", "ANY", i + 1, direction="ANY") for i, p in enumerate(DENIED_PROTOCOLS)]
    return {**_home(home_net), **_STRICT, "RulesSource": {"StatefulRules": rules}}


def allow_control_plane(control_plane_cidr: str, home_net: list[str]) -> dict[str, Any]:
    return {**_home(home_net), **_STRICT, "RulesSource": {"StatefulRules": [_rule("PASS", "TCP", control_plane_cidr, "443", 1)]}}


def metastore_allowlist(addresses: list[str], home_net: list[str]) -> dict[str, Any]:
    """TCP 3306 to the metastore's addresses only, and to nowhere else (SRA's metastore rules)."""
    rules = [_rule("PASS", "TCP", f"{a}/32", METASTORE_PORT, i + 1) for i, a in enumerate(addresses)]
    rules.append(_rule("DROP", "TCP", "ANY", METASTORE_PORT, len(addresses) + 1))
    return {**_home(home_net), **_STRICT, "RulesSource": {"StatefulRules": rules}}


def dns_resolver(host: str) -> list[str]:
    """The host's IPv4 addresses (A records), as this machine's resolver answers now."""
    infos = socket.getaddrinfo(host, int(METASTORE_PORT), family=socket.AF_INET, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def sandbox_resolver(host: str) -> list[str]:
    """What the sandbox answers for `host`: one stable address, so sandbox runs are deterministic."""
    offset = 1 + hashlib.sha256(host.lower().encode()).digest()[0] % 254
    return [str(SANDBOX_NET.network_address + offset)]


class MetastoreRules:
    """The metastore group's body, computed when the step runs: the spec's fixed addresses if it names any,
    else the host's A records resolved now (SRA resolved them at apply time). An RDS instance's address can
    change (failover, maintenance); each `up` resolves again and converges the group in place."""

    def __init__(self, host: str, home_net: list[str], *, addresses: tuple[str, ...] = (), resolver: Resolver | None = None):
        self.host, self.home_net, self.addresses, self.resolver = host, home_net, addresses, resolver

    def resolve(self, ctx: Context) -> list[str]:
        if self.addresses:
            return sorted(set(self.addresses))
        resolver = self.resolver
        if resolver is None:
            target = getattr(ctx.clients, "target", None)
            resolver = sandbox_resolver if target is not None and target.is_sandbox else dns_resolver
        try:
            found = resolver(self.host)
        except OSError as exc:
            raise ProvisionError(
                f"cannot resolve the metastore host {self.host} ({exc}); the firewall passes TCP {METASTORE_PORT} only "
                "to its addresses. Check DNS, or set firewall.metastore_addresses in the spec"
            ) from None
        addresses = sorted({a for a in found if ipaddress.ip_address(a).version == 4})
        if not addresses:
            raise ProvisionError(f"the metastore host {self.host} has no IPv4 address; set firewall.metastore_addresses in the spec")
        return addresses

    def __call__(self, ctx: Context) -> dict[str, Any]:
        return metastore_allowlist(self.resolve(ctx), self.home_net)
