"""Local emulator of the Databricks Account API (AWS), reached by the real databricks-sdk over HTTP.

It serves the provisioning endpoints the tool uses (credentials, storage configurations, networks,
workspaces, VPC endpoint registrations, private access settings) plus the host-metadata probe the
SDK sends while constructing a client. Paths, JSON field names and error bodies follow
databricks-sdk 0.156 (service/provisioning.py, errors/), so the SDK parses responses and raises its
typed errors exactly as against the real service.

It checks references against the sandbox's AWS account (IAM roles, S3 buckets, EC2 VPCs/subnets/security
groups), read only through aws_bridge.py, mimicking the real API's validation: cross-account role trust and IAM propagation, VPC/subnet/security-group consistency, and
the network checks Databricks runs when a workspace finishes provisioning. Like Databricks, a workspace
that reaches RUNNING writes into its root bucket (`<region>-prod/<workspace_id>/...` and
`ephemeral/<region>-prod/<workspace_id>/...`, two versions of one object if the bucket is versioned),
straight into the bucket as Databricks' own principal would (bucket policies are not consulted),
so a teardown that does not empty the bucket meets BucketNotEmpty as on AWS. A failed write fails the
deployment.

Back-end PrivateLink, with the AWS half in provision/clouds/aws/sandbox/endpoints.py (rule 13), so the "apply twice" ordering is real:
- POST vpc-endpoints registers an AWS interface endpoint that must exist in the given region and
  connect to that region's Databricks workspace or relay service (else 400 INVALID_PARAMETER_VALUE).
  Registering is what makes Databricks accept the endpoint: it leaves `pendingAcceptance` and goes
  `pending` -> `available` on the AWS side, and only then can private DNS be enabled there. The
  record's use_case is WORKSPACE_ACCESS or DATAPLANE_RELAY_ACCESS (the SDK's EndpointUseCase values)
  and its state mirrors the AWS endpoint's State on every read (`deleted` once it is gone). DELETE
  is refused (400 INVALID_STATE) while a network lists it in vpc_endpoints.
- private-access-settings: create / get / list / PUT (the SDK's `replace`) / delete, checking
  region, private_access_level (ACCOUNT or ENDPOINT) and that allowed_vpc_endpoint_ids are
  registrations in the same region. DELETE is refused (INVALID_STATE) while a workspace uses it; a
  workspace must name existing settings of its own region.
- A network's vpc_endpoints.rest_api / dataplane_relay must be registrations of the workspace /
  relay service whose AWS endpoint is in the network's VPC.
- A workspace whose network has vpc_endpoints goes RUNNING only if every listed AWS endpoint is
  `available` with private DNS enabled when provisioning ends; otherwise it is FAILED with a status
  message saying the back-end PrivateLink endpoints are not ready (clusters could not reach the
  control plane), and fixing them then PATCHing the workspace re-runs the deployment.

Each workspace's own REST API, minimally, reached by the real WorkspaceClient: the workspace with
deployment name D is served under this host at the path prefix `/workspaces/D` (`workspace_host()`;
the SDK keeps a path in `host`, so its requests go to `/workspaces/D/api/2.0/...`):
- GET  .well-known/databricks-config (no auth): what a workspace host answers, with account_id and
  workspace_id (a string, as the SDK copies it into Config.workspace_id and sends it back in the
  X-Databricks-Workspace-Id header), so the SDK treats the host as a workspace.
- POST api/2.0/token/create {comment, lifetime_seconds} -> {token_value: "dapi<32 hex>", token_info};
  GET api/2.0/token/list -> {token_infos} (never values); POST api/2.0/token/delete {token_id} -> {}.
  Tokens belong to their workspace and go with it; only a SHA-256 of each value is kept, never the
  value, and the token_infos appear in inventory() under "tokens" (with their workspace_id).
  Omitted lifetime_seconds means two years (the SDK's documented default); expired tokens vanish.
- GET api/2.0/preview/scim/v2/Me: the authenticated user (the sandbox account admin).
Requests are checked the way the real host would meet them: first the host itself (unknown or
deleted deployment -> 404 RESOURCE_DOES_NOT_EXIST), then its state, then auth (the sandbox token or
a live token of this workspace as Bearer, else 401 UNAUTHENTICATED). A real workspace URL does not
resolve until the first deployment finishes, which the SDK meets as connection errors and retries;
here a workspace still in its first PROVISIONING answers 503 TEMPORARILY_UNAVAILABLE with
Retry-After: 1, which the SDK retries the same way (so a client that outlasts provisioning gets
through). A workspace that has been RUNNING keeps serving while an update re-provisions it. A FAILED
workspace (or any other state) is refused at once with 400 INVALID_STATE instead of a retry loop that
could only time out. Every workspace response carries X-Databricks-Org-Id, like the real host.

Customer-managed keys (keys.py): `customer-managed-keys` create / get / list / delete in the real JSON shape
(`aws_key_info`, `use_cases`). A key whose policy (read from the sandbox's KMS through aws_bridge.py) does
not grant Databricks for its use case, or that is missing or disabled, is refused (400 MALFORMED_REQUEST); a
workspace naming a key of another region or of the wrong use case is refused (400 INVALID_PARAMETER_VALUE);
a key configuration a workspace uses cannot be deleted (400 INVALID_STATE); a workspace whose key is
disabled when provisioning ends goes FAILED.

Unity Catalog, identities and serverless egress on the Account API (databricks-sdk's AccountMetastoresAPI,
AccountMetastoreAssignmentsAPI, Account{Users,ServicePrincipals,Groups}API, ServicePrincipalSecretsAPI,
WorkspaceAssignmentAPI, NetworkPoliciesAPI, WorkspaceNetworkConfigurationAPI, NetworkConnectivityAPI):
- unity_account.py: metastores (name and region, no storage root needed; one per region: W5 400 INVALID_STATE;
  DELETE refused while assigned or not empty unless force=true: W6) and metastore assignments (workspace and
  metastore of one region, at most one per workspace; `_assigned_at` starts identity federation).
- identity_api.py: SCIM users (the sandbox admin is one, with the id each workspace's SCIM Me answers), service
  principals (applicationId a UUID), groups (members by PATCH PatchOp or PUT), with filter and startIndex/count
  paging and SCIM-shaped errors. identity_access.py: OAuth secrets of service principals (the value answered
  once, a hash kept); workspace permission assignments (USER/ADMIN; 400 BAD_REQUEST W2 until the workspace's metastore assignment
  is `identity_federation_seconds` old; the principal must exist).
- network_api.py: network policies (client-chosen ids; `default-policy`, FULL_ACCESS, made per account on first
  use, cannot be deleted; one bound to a workspace cannot be deleted: W9), each workspace's network option
  (bound to `default-policy` when created), network connectivity configurations (one a workspace names cannot be
  deleted) and their AWS private endpoint rules (PENDING, then ESTABLISHED).
- workspaces.py: compute_mode SERVERLESS workspaces take no credentials, storage or network (400
  INVALID_PARAMETER_VALUE), need PREMIUM or ENTERPRISE and write no root bucket. Deleting a workspace removes its
  metastore assignment, permission assignments, network option, tokens and cluster policies.

Workspace settings (settings_api.py): the compliance security profile, enhanced security monitoring and
automatic cluster update settings of each workspace (GET, and PATCH with `allow_missing`, `setting`,
`field_mask` and the current etag). The profile needs an ENTERPRISE workspace and cannot be turned off;
monitoring and cluster update cannot be turned off while it is on; a stale etag is refused.

All state lives in one module-level, lock-protected store (store.py), keyed by Databricks account id and
kind. `inventory()` dumps it and `reset()` clears it.

Modules: store.py (state, errors, request helpers), aws_bridge.py (the only one that reads AWS),
account_api.py (credentials, storage, networks, endpoint registrations, private access settings),
keys.py (customer-managed keys), unity_account.py, identity_api.py, identity_access.py, network_api.py, workspaces.py, workspace_api.py, settings_api.py, oauth.py, app.py (routes
and the WSGI app).
"""

from provision.clouds.databricks.sandbox.app import (
    inventory,
    make_databricks_app,
    metastore_objects,
    reset,
)
from provision.clouds.databricks.sandbox.store import KINDS, STORE, ApiError
from provision.clouds.databricks.sandbox.workspace_api import workspace_host

__all__ = ["KINDS", "STORE", "ApiError", "inventory", "make_databricks_app", "metastore_objects", "reset", "workspace_host"]
