"""The governance fragment: what turns a running workspace into a governed one, from the spec's
[unity_catalog], [identity], [[cluster_policies]] and [serverless] sections.

- Unity Catalog: the region's metastore (adopted when the account has one) assigned to the workspace; with a
  catalog bucket (the AWS topologies), the storage credential, then its IAM role trusting the credential's own
  external id, the role's policy, and an external location once the credential validates; the catalog, its
  schemas, grants and the workspace's default namespace.
- Identities: account service principals (an OAuth secret kept only in Secrets Manager when asked), groups, their
  workspace permissions, and the deploying principal made workspace admin, so no one has to log in by hand.
- Cluster policies, and serverless egress: a network policy bound to the workspace (DRY_RUN first) and an
  optional network connectivity configuration with private endpoint rules.

Workspace-level calls wait for the deploying principal's admin assignment, which waits for the metastore
assignment: Databricks serves permission assignments only once a metastore is assigned. The short windows
right after RUNNING and right after the assignment are retried by the classifier, never slept through.
"""

from __future__ import annotations

from typing import Any

from provision.clouds.aws.steps.uc_storage import (
    CatalogBucket,
    UnityCatalogRole,
    UnityCatalogRolePolicy,
)
from provision.clouds.databricks import (
    spec_identity,
    spec_policies,
    spec_serverless,
    spec_unity,
)
from provision.clouds.databricks.spec_identity import slug
from provision.clouds.databricks.steps.cluster_policies import ClusterPolicy
from provision.clouds.databricks.steps.identity import (
    Group,
    ServicePrincipal,
    ServicePrincipalSecret,
)
from provision.clouds.databricks.steps.identity_access import (
    DeployerAdmin,
    PermissionAssignment,
)
from provision.clouds.databricks.steps.network_policy import (
    NccBinding,
    NetworkConnectivityConfig,
    NetworkPolicy,
    NetworkPolicyBinding,
    PrivateEndpointRule,
)
from provision.clouds.databricks.steps.unity import (
    Catalog,
    DefaultNamespace,
    ExternalLocation,
    Grants,
    Metastore,
    MetastoreAssignment,
    Schema,
    StorageCredential,
)
from provision.orchestrator.step import Step
from provision.spec import Spec

ASSIGNMENT, ADMIN = "uc.assignment", "id.admin.deployer"
# The sections basic and privatelink read after their security sections (serverless has its own list).
SECTIONS = (spec_unity.UNITY_CATALOG, spec_identity.IDENTITY, spec_policies.CLUSTER_POLICIES, spec_serverless.SERVERLESS)


def sp_step(name: str) -> str:
    return f"id.sp.{slug(name)}"


def group_step(name: str) -> str:
    return f"id.group.{slug(name)}"


def governance(spec: Spec, *, workspace: str = "dbx.workspace", bucket_key: str | None = None) -> list[Step]:
    """The governance steps of the workspace made by step `workspace`; `bucket_key`: the KMS key step of
    [encryption] that the catalog bucket (and the UC role's policy) use."""
    steps: list[Step] = []
    uc = spec.unity_catalog
    admin_after: tuple[str, ...] = ()
    if uc is not None:
        steps += [
            Metastore("uc.metastore", name=uc.metastore_name),
            MetastoreAssignment(ASSIGNMENT, metastore="uc.metastore", workspace=workspace),
            DeployerAdmin(ADMIN, workspace=workspace, after=(ASSIGNMENT,), assignment=ASSIGNMENT),
        ]
        admin_after = (ADMIN,)
    steps += identities(spec, workspace)
    if uc is not None:
        steps += unity_catalog(spec, bucket_key)
    for policy in spec.cluster_policies or ():
        steps.append(ClusterPolicy(f"dbx.policy.{slug(policy.name)}", name=policy.name, definition=policy.definition,
                                   workspace=workspace, after=admin_after))
    steps += serverless_egress(spec, workspace)
    return steps


def identities(spec: Spec, workspace: str) -> list[Step]:
    ident = spec.identity
    if ident is None:
        return []
    steps: list[Step] = []
    for sp in ident.service_principals:
        steps.append(ServicePrincipal(sp_step(sp.name), display_name=sp.name))
        if sp.oauth_secret:
            steps.append(ServicePrincipalSecret(f"{sp_step(sp.name)}.secret", principal=sp_step(sp.name)))
    for group in ident.groups:
        steps.append(Group(group_step(group.name), display_name=group.name, members=tuple(sp_step(m) for m in group.members)))
    # Workspace permissions need identity federation, which a metastore assignment turns on.
    for kind, principals, step_of in (("sp", ident.service_principals, sp_step), ("group", ident.groups, group_step)):
        for principal in principals:
            if principal.workspace_permission:
                steps.append(PermissionAssignment(
                    f"id.assign.{kind}.{slug(principal.name)}", principal=step_of(principal.name), workspace=workspace,
                    permission=principal.workspace_permission, after=(ASSIGNMENT,), assignment=ASSIGNMENT,
                ))
    return steps


def unity_catalog(spec: Spec, bucket_key: str | None) -> list[Step]:
    uc = spec.unity_catalog
    assert uc is not None
    steps: list[Step] = []
    bucket = location = None
    if uc.bucket_name is not None:
        bucket, location = "s3.catalog", "uc.location"
        name = f"{spec.name}-catalog"
        steps += [
            CatalogBucket(bucket, bucket_name=uc.bucket_name, kms_key=bucket_key),
            # The credential first: its external id goes into the role's trust.
            StorageCredential("uc.credential", name=name, assignment=ASSIGNMENT, after=(ADMIN,)),
            UnityCatalogRole("iam.uc", credential="uc.credential"),
            UnityCatalogRolePolicy("iam.uc.policy", role="iam.uc", bucket=bucket, kms_key=bucket_key),
            ExternalLocation(location, name=name, credential="uc.credential", bucket=bucket, role_policy="iam.uc.policy"),
        ]
    steps.append(Catalog("uc.catalog", name=uc.catalog, assignment=ASSIGNMENT, bucket=bucket, location=location, after=(ADMIN,)))
    schemas = [f"uc.schema.{s}" for s in uc.schemas]
    steps += [Schema(step_id, name=s, catalog="uc.catalog") for step_id, s in zip(schemas, uc.schemas)]
    if uc.grants:
        principals = _grant_principals(spec)
        # Unity Catalog names a service principal by its application id, which only its step knows.
        named = {g.principal for g in uc.grants}
        service_principals = {sp.name: sp_step(sp.name) for sp in (spec.identity.service_principals if spec.identity else ()) if sp.name in named}
        steps.append(Grants("uc.grants", catalog="uc.catalog", grants=uc.grants, after=(*schemas, *principals),
                            service_principals=service_principals))
    if uc.default_namespace:
        steps.append(DefaultNamespace("uc.default_namespace", catalog="uc.catalog"))
    return steps


def _grant_principals(spec: Spec) -> list[str]:
    """The identity steps a grant names: they must exist before Unity Catalog can grant to them."""
    ident = spec.identity
    uc = spec.unity_catalog
    if ident is None or uc is None:
        return []
    named = {g.principal for g in uc.grants}
    steps = [sp_step(sp.name) for sp in ident.service_principals if sp.name in named]
    steps += [group_step(g.name) for g in ident.groups if g.name in named]
    return steps


def serverless_egress(spec: Spec, workspace: str) -> list[Step]:
    serverless = spec.serverless
    if serverless is None:
        return []
    steps: list[Step] = []
    if serverless.network_policy is not None:
        steps += [
            NetworkPolicy("dbx.network_policy", policy=serverless.network_policy),
            NetworkPolicyBinding("dbx.network_policy.binding", policy="dbx.network_policy", workspace=workspace),
        ]
    if serverless.ncc is not None:
        rules = [f"dbx.ncc.rule.{n}" for n in range(len(serverless.ncc.private_endpoint_rules))]
        steps.append(NccBinding("dbx.ncc.binding", ncc=NCC, workspace=workspace, after=tuple(rules)))
    return steps


NCC = "dbx.ncc"


def connectivity(spec: Spec) -> list[Step]:
    """The network connectivity configuration and its private endpoint rules, which the topology declares
    before the workspace and makes the workspace wait for (`workspace_after`): an NCC cannot be unbound from a
    workspace, so it can only go once the workspace has, and teardown's order must say so."""
    serverless = spec.serverless
    if serverless is None or serverless.ncc is None:
        return []
    rules = serverless.ncc.private_endpoint_rules
    return [
        NetworkConnectivityConfig(NCC, name=f"{spec.name}-ncc"),
        *(PrivateEndpointRule(f"dbx.ncc.rule.{n}", ncc=NCC, rule=rule) for n, rule in enumerate(rules)),
    ]


def workspace_after(spec: Spec) -> tuple[str, ...]:
    return (NCC,) if spec.serverless is not None and spec.serverless.ncc is not None else ()


# What a live deployment may not do with these sections --------------------------------------------------

# The catalog and its bucket are found by these names (a new name would orphan the old ones); so is a metastore
# this deployment created, when it tells its own from the account's.
GOVERNANCE_IMMUTABLE = ("unity_catalog.catalog", "unity_catalog.bucket_name", "unity_catalog.metastore_name")


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Removing what made resources from a live deployment is refused: its step would leave the graph while
    its resource lives on, and nothing could delete it any more. Adding is always fine; so is changing a
    definition, a grant or an enforcement mode (converged in place)."""
    refused: list[str] = []
    old_uc, new_uc = before.get("unity_catalog"), after.get("unity_catalog")
    if old_uc and not new_uc:
        refused.append("unity_catalog (removing it)")
    elif old_uc and new_uc:
        refused += [f"unity_catalog.schemas (removing {s})" for s in old_uc["schemas"] if s not in new_uc["schemas"]]
        if old_uc.get("default_namespace") and not new_uc.get("default_namespace"):
            refused.append("unity_catalog.default_namespace (turning it off)")
        if old_uc.get("grants") and not new_uc.get("grants"):
            refused.append("unity_catalog.grants (removing every grant: the grants step would leave the graph)")
    return refused + spec_identity.changes(before, after) + spec_policies.changes(before, after) + spec_serverless.changes(before, after)


def describe_lines(d: dict[str, Any]) -> list[str]:
    """What `validate` prints about the governance sections."""
    lines: list[str] = []
    uc = d.get("unity_catalog")
    if uc:
        where = f"bucket {uc['bucket_name']}" if uc.get("bucket_name") else "the workspace's default storage"
        lines.append(f"unity catalog: catalog {uc['catalog']} ({where}), schemas {', '.join(uc['schemas']) or 'none'}, "
                     f"{len(uc.get('grants') or ())} grant(s); metastore: the region's, or {uc['metastore_name']}")
    ident = d.get("identity")
    if ident:
        lines.append(f"identities: {len(ident['service_principals'])} service principal(s), {len(ident['groups'])} group(s)")
    if d.get("cluster_policies"):
        lines.append(f"cluster policies: {', '.join(p['name'] for p in d['cluster_policies'])}")
    np = (d.get("serverless") or {}).get("network_policy")
    if np:
        lines.append(f"serverless egress: {'restricted' if np['restricted'] else 'full'} access, {np['enforcement']}")
    return lines
