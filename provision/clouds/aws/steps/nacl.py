"""A custom network ACL on the Databricks (private) subnets: stateless, subnet-level defense in depth under
the workspace security group.

The entries are what Databricks requires of subnet-level network ACLs (Databricks docs, "Configure a
customer-managed VPC", section "Subnet-level network ACLs"; Databricks validates them when the workspace's
network is checked, and reports a failure as a `networkAcl` error):
- ingress: allow all from 0.0.0.0/0. Databricks requires exactly this. It is also what a stateless ACL needs
  for the return traffic of the egress below. Clusters have no public addresses, so nothing on the internet
  can open a connection to them; the security group stays the stateful filter.
- egress: all to the VPC's own CIDR (cluster nodes among themselves, the VPC endpoints, the VPC's DNS
  resolver); TCP to 0.0.0.0/0 on the ports of the workspace security group only: 443 (control plane,
  AWS services, repositories), 3306 (legacy Hive metastore), 5432 (Lakebase, as in SRA), 6666 and 2443
  (secure cluster connectivity), 8443-8451 (control plane and Unity Catalog, with Databricks' reserved
  ports). The ports come from the Databricks docs and SRA's workspace security group.
- everything else falls to the ACL's own final deny rule (`*`, number 32767, which cannot be changed).
No UDP rule is needed to 0.0.0.0/0: DNS goes to the VPC resolver (inside the VPC CIDR), and network ACLs do not
filter the Route 53 Resolver, the instance metadata service or the Amazon Time Sync Service (AWS: "Network
ACLs").

Rules required by Databricks carry the lowest numbers, as its docs ask, so later additions cannot shadow them.
On rerun the entries converge to exactly these; teardown gives the subnets back to the VPC's default ACL first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code, is_not_found
from provision.orchestrator.drift import Drift
from provision.orchestrator.step import Context, Outputs, Ref, Step, single

ANYWHERE = "0.0.0.0/0"
ALL, TCP, UDP = "-1", "6", "17"
_PROTOCOLS = {"all": ALL, "tcp": TCP, "udp": UDP, "icmp": "1"}
# The ACL's unchangeable final rule ("*"): listed by EC2, never ours to converge.
FINAL_RULE = 32767
# TCP ports open to 0.0.0.0/0, as in the workspace security group (provision/clouds/aws/steps/network.py).
EGRESS_TCP_PORTS: tuple[tuple[int, int], ...] = ((443, 443), (3306, 3306), (5432, 5432), (6666, 6666), (2443, 2443), (8443, 8451))


@dataclass(frozen=True, order=True)
class Entry:
    rule_number: int
    egress: bool
    protocol: str  # EC2's protocol numbers ("-1" all, "6" TCP, "17" UDP), as it reports them
    cidr: str
    ports: tuple[int, int] | None = None
    action: str = "allow"

    @property
    def key(self) -> tuple[int, bool]:
        return (self.rule_number, self.egress)

    def request(self, acl_id: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "NetworkAclId": acl_id, "RuleNumber": self.rule_number, "Protocol": self.protocol,
            "RuleAction": self.action, "Egress": self.egress, "CidrBlock": self.cidr,
        }
        if self.ports is not None:
            params["PortRange"] = {"From": self.ports[0], "To": self.ports[1]}
        return params


def databricks_entries(vpc_cidr: str) -> tuple[Entry, ...]:
    """The entries of the Databricks subnets' ACL, for a VPC whose CIDR is `vpc_cidr`."""
    return (
        Entry(100, False, ALL, ANYWHERE),
        Entry(100, True, ALL, vpc_cidr),
        *(Entry(110 + 10 * i, True, TCP, ANYWHERE, ports) for i, ports in enumerate(EGRESS_TCP_PORTS)),
    )


def live_entries(acl: dict[str, Any]) -> tuple[Entry, ...]:
    """An ACL's entries as EC2 describes them, without the final rule (IPv6 entries as their CIDR)."""
    entries = []
    for e in acl.get("Entries", []):
        if e["RuleNumber"] == FINAL_RULE:
            continue
        protocol = str(e["Protocol"])
        ports = e.get("PortRange")
        entries.append(Entry(
            e["RuleNumber"], bool(e["Egress"]), _PROTOCOLS.get(protocol.lower(), protocol), e.get("CidrBlock") or e.get("Ipv6CidrBlock", ""),
            (ports["From"], ports["To"]) if ports and protocol not in (ALL, "all") else None, e["RuleAction"],
        ))
    return tuple(sorted(entries))


def entries_digest(entries: tuple[Entry, ...]) -> str:
    return hashlib.sha256(repr(sorted(entries)).encode()).hexdigest()[:16]


class NetworkAcl(Step):
    kind = "ec2.network_acl"
    produces = ("network_acl_id", "vpc_id", "entries_digest", "subnet_ids")

    def __init__(
        self, step_id: str, *, vpc: str, subnets: list[str],
        entries: Callable[[str], tuple[Entry, ...]] = databricks_entries,
    ):
        """entries: the ACL's entries, given the VPC's CIDR (known once the VPC step is done)."""
        super().__init__(step_id, needs=(vpc, *subnets))
        self.vpc_id, self.vpc_cidr = Ref(vpc, "vpc_id"), Ref(vpc, "cidr")
        self.subnet_ids = [Ref(s, "subnet_id") for s in subnets]
        self.entries = entries

    def wanted(self, ctx: Context) -> tuple[Entry, ...]:
        return tuple(sorted(self.entries(ctx.out(self.vpc_cidr))))

    @staticmethod
    def _outputs(acl: dict[str, Any]) -> Outputs:
        return {
            "network_acl_id": acl["NetworkAclId"], "vpc_id": acl["VpcId"], "entries_digest": entries_digest(live_entries(acl)),
            "subnet_ids": sorted(a["SubnetId"] for a in acl.get("Associations", [])),
        }

    def _read(self, ctx: Context, acl_id: str) -> dict[str, Any] | None:
        acls = aws.ec2(ctx).describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"]
        return acls[0] if acls else None

    def find(self, ctx: Context) -> Outputs | None:
        acl = single(aws.find_owned(ctx, self.id, "describe_network_acls", "NetworkAcls"), "network ACL", self.id)
        return self._outputs(acl) if acl else None

    def create(self, ctx: Context) -> Outputs:
        vpc_id = ctx.out(self.vpc_id)
        acl = aws.ec2(ctx).create_network_acl(
            VpcId=vpc_id, ClientToken=ctx.client_token(self.id, vpc_id), TagSpecifications=aws.tag_spec(ctx, "network-acl", self.id),
        )["NetworkAcl"]
        return self._outputs(acl)

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        subnets = {ctx.out(s) for s in self.subnet_ids}
        return found.get("entries_digest") != entries_digest(self.wanted(ctx)) or not subnets <= set(found.get("subnet_ids") or ())

    def drift(self, ctx: Context, found: Outputs) -> list[Drift]:
        wanted = entries_digest(self.wanted(ctx))
        drifts = [] if found.get("entries_digest") == wanted else [Drift("entries (digest)", wanted, found.get("entries_digest"))]
        associated = set(found.get("subnet_ids") or ())
        return drifts + [Drift("association", s, None) for s in (ctx.out(r) for r in self.subnet_ids) if s not in associated]

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        ec2, acl_id = aws.ec2(ctx), out["network_acl_id"]
        # Converging: right after create the new ACL may not be visible yet (NotFound is retried).
        acl = ctx.call(lambda: self._read(ctx, acl_id), f"{self.id} read")
        assert acl is not None
        have = {e.key: e for e in live_entries(acl)}
        want = {e.key: e for e in self.wanted(ctx)}
        for key, entry in want.items():
            if key not in have:
                ctx.call(lambda e=entry: self._create_entry(ctx, e, acl_id), f"{self.id} entry {key[0]}")
            elif have[key] != entry:
                ctx.call(lambda e=entry: ec2.replace_network_acl_entry(**e.request(acl_id)), f"{self.id} entry {key[0]}")
        for rule, egress in sorted(have.keys() - want.keys()):
            ctx.call(lambda r=rule, e=egress: self._delete_entry(ctx, acl_id, r, e), f"{self.id} entry {rule}")
        # Entries first, then the subnets: a subnet never sits behind a half-written ACL.
        subnets = [ctx.out(s) for s in self.subnet_ids]
        associated = {a["SubnetId"] for a in acl.get("Associations", [])}
        missing = [s for s in subnets if s not in associated]
        if missing:
            ctx.call(lambda: self._associate(ctx, acl_id, missing), f"{self.id} associate")
        return {**out, "entries_digest": entries_digest(tuple(want.values())), "subnet_ids": sorted(associated | set(subnets))}

    @staticmethod
    def _create_entry(ctx: Context, entry: Entry, acl_id: str) -> None:
        ec2 = aws.ec2(ctx)
        try:
            ec2.create_network_acl_entry(**entry.request(acl_id))
        except Exception as exc:
            # Our own retried create whose first response was lost: make sure it says what we want.
            if error_code(exc) != "NetworkAclEntryAlreadyExists":
                raise
            ec2.replace_network_acl_entry(**entry.request(acl_id))

    @staticmethod
    def _delete_entry(ctx: Context, acl_id: str, rule: int, egress: bool) -> None:
        try:
            aws.ec2(ctx).delete_network_acl_entry(NetworkAclId=acl_id, RuleNumber=rule, Egress=egress)
        except Exception as exc:
            if not is_not_found(exc):  # our own retried delete whose first response was lost
                raise

    @staticmethod
    def _associate(ctx: Context, acl_id: str, subnets: list[str]) -> None:
        """Move each subnet's one association (every subnet always has one) to this ACL."""
        ec2 = aws.ec2(ctx)
        holders = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": subnets}])["NetworkAcls"]
        for holder in holders:
            for association in holder.get("Associations", []):
                if association["SubnetId"] in subnets and holder["NetworkAclId"] != acl_id:
                    ec2.replace_network_acl_association(AssociationId=association["NetworkAclAssociationId"], NetworkAclId=acl_id)

    def delete(self, ctx: Context, out: Outputs) -> None:
        ec2, acl_id = aws.ec2(ctx), out["network_acl_id"]
        acl = self._read(ctx, acl_id)  # NotFound: already gone
        if acl is None:
            return
        if acl.get("Associations"):
            # A network ACL cannot be deleted while a subnet uses it: give the subnets back to the default ACL.
            default = ec2.describe_network_acls(
                Filters=[{"Name": "vpc-id", "Values": [acl["VpcId"]]}, {"Name": "default", "Values": ["true"]}],
            )["NetworkAcls"][0]["NetworkAclId"]
            for association in acl["Associations"]:
                ec2.replace_network_acl_association(AssociationId=association["NetworkAclAssociationId"], NetworkAclId=default)
        ec2.delete_network_acl(NetworkAclId=acl_id)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self._read(ctx, out["network_acl_id"]), what=f"network ACL {out['network_acl_id']}")
