"""What a Network Firewall policy does to a flow: PASS or DROP. No operation of the service, a helper for
tests, which read a live policy and its rule groups back from the sandbox and ask what passes.

The model (AWS Network Firewall Developer Guide, "Evaluation order for stateful rules"; Suricata's flow
states), for the rule sources provision writes; anything else raises NotImplementedError rather than guess:
- A TCP flow is met twice: its handshake (no application protocol known yet, not established), then its
  first data packet (established; the application protocol and the TLS SNI or HTTP Host known). A UDP or
  ICMP flow is met once, by its first packet, which is not established (an unanswered datagram never is).
- STRICT_ORDER: rule groups by ascending Priority, rules in the order written; the first PASS passes the
  flow, the first DROP or REJECT drops it, ALERT goes on. A packet no rule matched meets the policy's
  StatefulDefaultActions: aws:drop_strict drops it, aws:drop_established* drops it if established;
  otherwise it passes.
- DEFAULT_ACTION_ORDER: at each packet every matching rule counts, PASS before DROP/REJECT before ALERT;
  what no rule matches passes.
- 5-tuple StatefulRules: protocol (IP, TCP, UDP, ICMP, or an application protocol, which matches the data
  packet of a flow of that protocol), source and destination (ANY, CIDRs, lists, `!`, $HOME_NET and
  $EXTERNAL_NET, its complement), ports, Direction FORWARD or ANY (either way round). Options other than
  sid/msg/rev/priority/classtype/metadata are not modelled.
- Domain lists (RulesSourceList) act on the data packet of a TLS flow (TLS_SNI) or an HTTP flow (HTTP_HOST)
  from $HOME_NET to $EXTERNAL_NET: ALLOWLIST passes a listed name and drops any other (or none);
  DENYLIST and REJECTLIST drop a listed name; a leading dot matches the domain and its subdomains.
- HOME_NET is the rule group's own variable (or the policy's); the firewall VPC's CIDR, the service's
  default, is unknown here and must not be relied on.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

PASS, DROP = "PASS", "DROP"
_APP_PROTOCOLS = {
    "HTTP", "FTP", "TLS", "SMB", "DNS", "DCERPC", "SSH", "SMTP", "IMAP", "MSN", "KRB5", "IKEV2", "TFTP", "NTP", "DHCP",
    "HTTP2", "QUIC",
}
_INERT_OPTIONS = {"sid", "msg", "rev", "priority", "classtype", "metadata"}


@dataclass(frozen=True)
class Flow:
    """One connection attempt leaving `source` for `destination`:`port`."""

    source: str
    destination: str
    port: int
    protocol: str = "TCP"  # TCP, UDP or ICMP
    app: str | None = None  # the application protocol its data shows (tls, http, ssh, ...), if any
    host: str | None = None  # the TLS SNI or HTTP Host it names
    source_port: int = 49152


def _address_in(spec: str, address: str, variables: dict[str, list[str]]) -> bool:
    spec = spec.strip()
    if spec.upper() == "ANY":
        return True
    if spec.startswith("!"):
        return not _address_in(spec[1:], address, variables)
    if spec.startswith("["):
        return any(_address_in(part, address, variables) for part in _split(spec[1:-1]))
    if spec.startswith("$"):
        name = spec[1:]
        if name == "EXTERNAL_NET" and name not in variables:
            return not _address_in("$HOME_NET", address, variables)
        if name not in variables:
            raise ValueError(f"rule variable ${name} is not defined (the firewall VPC's CIDR is not known here)")
        return any(_address_in(d, address, variables) for d in variables[name])
    return ipaddress.ip_address(address) in ipaddress.ip_network(spec, strict=False)


def _port_in(spec: str, port: int) -> bool:
    spec = spec.strip()
    if spec.upper() == "ANY":
        return True
    if spec.startswith("!"):
        return not _port_in(spec[1:], port)
    if spec.startswith("["):
        return any(_port_in(part, port) for part in _split(spec[1:-1]))
    if ":" in spec:
        low, high = spec.split(":", 1)
        return int(low or 0) <= port <= int(high or 65535)
    return port == int(spec)


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p for p in (*parts, current) if p.strip()]


def _protocol_matches(protocol: str, flow: Flow, established: bool) -> bool:
    protocol = protocol.upper()
    if protocol == "IP":
        return True
    if protocol in ("TCP", "UDP", "ICMP"):
        return flow.protocol.upper() == protocol
    if protocol in _APP_PROTOCOLS:
        return established and (flow.app or "").upper() == protocol
    raise NotImplementedError(f"protocol {protocol} is not modelled")


def _rule_matches(rule: dict[str, Any], flow: Flow, established: bool, variables: dict[str, list[str]]) -> bool:
    for option in rule.get("RuleOptions") or []:
        keyword = option.get("Keyword", "").split(":", 1)[0].strip()
        if keyword not in _INERT_OPTIONS:
            raise NotImplementedError(f"rule option {keyword} is not modelled")
    header = rule["Header"]
    if not _protocol_matches(header["Protocol"], flow, established):
        return False

    def oriented(src: str, sport: int, dst: str, dport: int) -> bool:
        return (_address_in(header["Source"], src, variables) and _port_in(header["SourcePort"], sport)
                and _address_in(header["Destination"], dst, variables) and _port_in(header["DestinationPort"], dport))

    forward = oriented(flow.source, flow.source_port, flow.destination, flow.port)
    if header.get("Direction", "FORWARD") == "ANY":
        return forward or oriented(flow.destination, flow.port, flow.source, flow.source_port)
    return forward


def _listed(targets: list[str], host: str | None) -> bool:
    if not host:
        return False
    host = host.lower().rstrip(".")
    for target in targets:
        target = target.lower()
        if target.startswith(".") and (host == target[1:] or host.endswith(target)):
            return True
        if host == target:
            return True
    return False


def _domain_list(listing: dict[str, Any], flow: Flow, established: bool, variables: dict[str, list[str]]) -> str | None:
    kinds = {"tls": "TLS_SNI", "http": "HTTP_HOST"}
    kind = kinds.get((flow.app or "").lower())
    if not established or kind not in listing.get("TargetTypes", []):
        return None
    if not (_address_in("$HOME_NET", flow.source, variables) and _address_in("$EXTERNAL_NET", flow.destination, variables)):
        return None
    listed = _listed(listing.get("Targets", []), flow.host)
    generated = listing["GeneratedRulesType"]
    if generated == "ALLOWLIST":
        return PASS if listed else DROP
    if generated in ("DENYLIST", "REJECTLIST"):
        return DROP if listed else None
    return None  # ALERTLIST


def _variables(group: dict[str, Any], policy: dict[str, Any]) -> dict[str, list[str]]:
    merged = {k: v["Definition"] for k, v in ((policy.get("PolicyVariables") or {}).get("RuleVariables") or {}).items()}
    merged.update({k: v["Definition"] for k, v in ((group.get("RuleVariables") or {}).get("IPSets") or {}).items()})
    return merged


def _actions(group: dict[str, Any], policy: dict[str, Any], flow: Flow, established: bool) -> list[str]:
    """The actions of the group's rules that match this packet, in the order written."""
    source, variables = group["RulesSource"], _variables(group, policy)
    if source.get("RulesString"):
        raise NotImplementedError("Suricata rule strings are not modelled")
    if source.get("StatelessRulesAndCustomActions"):
        raise NotImplementedError("stateless rule groups are not modelled")
    if source.get("RulesSourceList"):
        action = _domain_list(source["RulesSourceList"], flow, established, variables)
        return [action] if action else []
    return [r["Action"] for r in source.get("StatefulRules") or [] if _rule_matches(r, flow, established, variables)]


def verdict(policy: dict[str, Any], groups: dict[str, dict[str, Any]], flow: Flow) -> str:
    """PASS or DROP: what the firewall policy `policy` (a FirewallPolicy document) does to `flow`, its
    stateful rule groups given by ARN (RuleGroup documents)."""
    if policy.get("StatelessRuleGroupReferences"):
        raise NotImplementedError("stateless rule groups are not modelled")
    stateless = set(policy.get("StatelessDefaultActions") or [])
    if "aws:pass" in stateless:
        return PASS
    if "aws:drop" in stateless:
        return DROP
    references = policy.get("StatefulRuleGroupReferences") or []
    strict = (policy.get("StatefulEngineOptions") or {}).get("RuleOrder") == "STRICT_ORDER"
    if strict:
        references = sorted(references, key=lambda r: r["Priority"])
    ordered = [groups[r["ResourceArn"]] for r in references]
    defaults = policy.get("StatefulDefaultActions") or []
    stages = (False, True) if flow.protocol.upper() == "TCP" else (False,)
    for established in stages:
        actions = [a for group in ordered for a in _actions(group, policy, flow, established)]
        if strict:
            decided = next((a for a in actions if a != "ALERT"), None)
            if decided is not None:
                return PASS if decided == PASS else DROP
            if "aws:drop_strict" in defaults or (established and any(d.startswith("aws:drop_established") for d in defaults)):
                return DROP
        elif PASS in actions:
            return PASS
        elif DROP in actions or "REJECT" in actions:
            return DROP
    return PASS


def live_verdict(nfw: Any, policy_arn: str, flow: Flow) -> str:
    """`verdict` of a policy as the service (a boto3 network-firewall client) describes it now."""
    policy = nfw.describe_firewall_policy(FirewallPolicyArn=policy_arn)["FirewallPolicy"]
    groups = {
        r["ResourceArn"]: nfw.describe_rule_group(RuleGroupArn=r["ResourceArn"])["RuleGroup"]
        for r in policy.get("StatefulRuleGroupReferences") or []
    }
    return verdict(policy, groups, flow)
