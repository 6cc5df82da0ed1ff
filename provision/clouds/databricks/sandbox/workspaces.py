"""Workspaces of the Account API: their references, lazy provisioning (the network and PrivateLink checks
Databricks runs when provisioning ends) and updates. A workspace that reaches RUNNING writes into its root
bucket (`<region>-prod/<workspace_id>/...` and `ephemeral/<region>-prod/<workspace_id>/...`, two versions
of one object if the bucket is versioned) as Databricks' own principal would, so a teardown that does not
empty the bucket meets BucketNotEmpty as on AWS. A failed write fails the deployment.

A serverless workspace (compute_mode SERVERLESS, CreateWorkspaceRequest) has no customer resources: it refuses
credentials_id, storage_configuration_id and network_id (400 INVALID_PARAMETER_VALUE, on create and PATCH), needs
the PREMIUM or ENTERPRISE tier and writes no root bucket. A classic one (no compute_mode, or HYBRID) needs
credentials and storage as ever. Every new workspace is bound to the account's `default-policy` network policy
(network_api.py); a network_connectivity_config_id must name an NCC of the workspace's region. Deleting a
workspace (forget_workspace) frees its network and removes its tokens, metastore assignment, permission
assignments, network option and cluster policies."""

from __future__ import annotations

import json
import random
import re
import time
from typing import Any

import provision.clouds.databricks.sandbox.aws_bridge as aws_bridge  # noqa: PLR0402  (imports the module, not its package)
import provision.clouds.databricks.sandbox.keys as keys  # noqa: PLR0402
import provision.clouds.databricks.sandbox.network_api as network_api  # noqa: PLR0402
from provision.clouds.databricks.sandbox.account_api import (
    network_errors,
    privatelink_problems,
)
from provision.clouds.databricks.sandbox.store import (
    STORE,
    ApiError,
    invalid,
    now_ms,
    referenced,
    required_str,
)
from provision.sandbox.settings import SandboxSettings

_DEPLOYMENT_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PRICING_TIERS = {"COMMUNITY_EDITION", "DEDICATED", "ENTERPRISE", "PREMIUM", "STANDARD", "UNKNOWN"}
_COMPUTE_MODES = {"HYBRID", "SERVERLESS"}  # CustomerFacingComputeMode
# What a serverless workspace does not take: Databricks runs its compute and storage (default storage).
_CUSTOMER_RESOURCES = ("credentials_id", "storage_configuration_id", "network_id")
_SERVERLESS_TIERS = {"PREMIUM", "ENTERPRISE"}
# Fields a PATCH may change; the SDK sends a whole Workspace body, so read-only ones are ignored.
MUTABLE_FIELDS = (
    "workspace_name",
    "credentials_id",
    "storage_configuration_id",
    "network_id",
    "private_access_settings_id",
    "custom_tags",
    "managed_services_customer_managed_key_id",
    "storage_customer_managed_key_id",
    "network_connectivity_config_id",
    "pricing_tier",
)
# Optional fields a create takes as given: the mutable ones minus those every create sets itself.
_OPTIONAL_FIELDS = tuple(f for f in MUTABLE_FIELDS if f not in ("workspace_name", "credentials_id",
                                                                 "storage_configuration_id", "pricing_tier"))
# Changing these re-runs deployment on a RUNNING workspace, as the real API does.
_REDEPLOY_FIELDS = {"credentials_id", "storage_configuration_id", "network_id", "private_access_settings_id"}


def _write_root_bucket(bucket_name: str, ws: dict) -> None:
    """What a new workspace leaves in its root bucket (DBFS root and ephemeral job/cluster data)."""
    prefix = f"{ws['aws_region']}-prod/{ws['workspace_id']}"
    manifest = {"workspace_id": ws["workspace_id"], "deployment_name": ws["deployment_name"]}
    # Written twice in a versioned bucket, so emptying it needs the noncurrent versions too.
    writes = 2 if aws_bridge.bucket_is_versioned(bucket_name) else 1
    for n in range(writes):
        body = json.dumps({**manifest, "generation": n + 1}).encode()
        aws_bridge.put_object(bucket_name, f"{prefix}/databricks/workspace-manifest.json", body)
    aws_bridge.put_object(bucket_name, f"{prefix}/user/hive/warehouse/", b"")
    aws_bridge.put_object(bucket_name, f"ephemeral/{prefix}/cluster-logs/README", b"cluster logs of this workspace\n")


def advance_workspace(settings: SandboxSettings, account_id: str, ws: dict) -> None:
    """Finish provisioning lazily: once the delay has passed, validate and go RUNNING or FAILED."""
    if ws["workspace_status"] != "PROVISIONING":
        return
    if time.monotonic() - ws["_provisioning_since"] < settings.delay("workspace_provisioning_seconds", str(ws["workspace_id"])):
        return
    problems: list[str] = []
    storage = STORE.kind(account_id, "storage_configurations").get(ws.get("storage_configuration_id"))
    if storage and not aws_bridge.bucket_exists(storage["root_bucket_info"]["bucket_name"]):
        problems.append(f"root bucket {storage['root_bucket_info']['bucket_name']} no longer exists")
    network = STORE.kind(account_id, "networks").get(ws.get("network_id"))
    if network is not None:
        errors = network_errors(network, ws["aws_region"])
        network["error_messages"] = errors
        network["vpc_status"] = "BROKEN" if errors else "VALID"
        problems += [e["error_message"] for e in errors]
        not_ready = privatelink_problems(settings, account_id, network, ws["aws_region"])
        if not_ready:
            problems.append(
                "back-end PrivateLink endpoints are not ready, so clusters cannot reach the control plane: "
                + ", ".join(not_ready)
            )
    problems += keys.provisioning_problems(account_id, ws)
    if storage and not problems:
        bucket = storage["root_bucket_info"]["bucket_name"]
        try:
            _write_root_bucket(bucket, ws)
        except Exception as e:  # moto's S3 errors; Databricks fails the deployment the same way
            problems.append(f"could not write to root bucket {bucket}: {type(e).__name__}: {e}")
    if problems:
        ws["workspace_status"] = "FAILED"
        ws["workspace_status_message"] = "Workspace failed to deploy: " + "; ".join(problems)
    else:
        ws["workspace_status"] = "RUNNING"
        ws["workspace_status_message"] = "Workspace is running."
        ws["_served"] = True  # its URL now answers, and keeps answering through later updates
        ws.setdefault("_running_since", time.monotonic())  # the first RUNNING: its API warms up from here


def _check_workspace_refs(account_id: str, values: dict, workspace_id: int | None) -> None:
    if values.get("compute_mode") != "SERVERLESS":
        referenced(account_id, "credentials", values.get("credentials_id"), "credentials_id")
        storage_id = values.get("storage_configuration_id")
        referenced(account_id, "storage_configurations", storage_id, "storage_configuration_id")
    network_id = values.get("network_id")
    if network_id:
        referenced(account_id, "networks", network_id, "network_id")
        # A network configuration describes one workspace's subnets and cannot be shared.
        for other in STORE.kind(account_id, "workspaces").values():
            if other.get("network_id") == network_id and other["workspace_id"] != workspace_id:
                used_by = other["workspace_id"]
                raise invalid(f"Network configuration {network_id} is already used by workspace {used_by}.")
    pas_id = values.get("private_access_settings_id")
    if pas_id:
        pas = referenced(account_id, "private_access_settings", pas_id, "private_access_settings_id")
        if pas["region"] != values.get("aws_region"):
            raise invalid(
                f"Private access settings {pas_id} are for region {pas['region']}, "
                f"not the workspace's region {values.get('aws_region')}."
            )
    keys.check_workspace_keys(account_id, values)
    tier = values.get("pricing_tier")
    if tier is not None and tier not in _PRICING_TIERS:
        raise invalid(f"pricing_tier {tier} is not one of {sorted(_PRICING_TIERS)}.")
    if values.get("compute_mode") == "SERVERLESS" and (tier or "PREMIUM") not in _SERVERLESS_TIERS:
        raise invalid(f"A serverless workspace needs pricing_tier PREMIUM or ENTERPRISE, not {tier}.")
    ncc_id = values.get("network_connectivity_config_id")
    if ncc_id:
        ncc = referenced(account_id, "network_connectivity_configs", ncc_id, "network_connectivity_config_id")
        if ncc["region"] != values.get("aws_region"):
            raise invalid(
                f"Network connectivity configuration {ncc_id} is for region {ncc['region']}, "
                f"not the workspace's region {values.get('aws_region')}."
            )


def _check_serverless(values: dict) -> None:
    given = [f for f in _CUSTOMER_RESOURCES if values.get(f)]
    if values.get("compute_mode") == "SERVERLESS" and given:
        raise invalid(
            f"{', '.join(given)} cannot be set on a serverless workspace (compute_mode SERVERLESS): Databricks manages "
            "its compute, storage and network."
        )


def attach_network(account_id: str, network_id: str | None, workspace_id: int | None) -> None:
    network = STORE.kind(account_id, "networks").get(network_id)
    if network is None:
        return
    if workspace_id is not None:
        network["workspace_id"] = workspace_id
    else:  # freed: the next workspace re-validates it
        network.pop("workspace_id", None)
        network["vpc_status"], network["error_messages"] = "UNATTACHED", []


def _unique_deployment_name(workspace_name: str) -> str:
    taken = {ws["deployment_name"] for ws in STORE.all_workspaces()}
    base = re.sub(r"[^a-z0-9-]+", "-", workspace_name.lower()).strip("-")[:50].strip("-") or "workspace"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def create_workspace(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    name = required_str(body, "workspace_name")
    region = required_str(body, "aws_region")
    if not aws_bridge.region_exists(region):
        raise invalid(f"aws_region {region} is not a valid AWS region.")
    compute_mode = body.get("compute_mode")
    if compute_mode is not None and compute_mode not in _COMPUTE_MODES:
        raise invalid(f"compute_mode {compute_mode!r} is not one of {sorted(_COMPUTE_MODES)}.")
    serverless = compute_mode == "SERVERLESS"
    _check_serverless(body)
    if not serverless:
        required_str(body, "credentials_id")
        required_str(body, "storage_configuration_id")
    _check_workspace_refs(account_id, body, None)
    deployment = body.get("deployment_name")
    if deployment is not None:
        if not isinstance(deployment, str) or not _DEPLOYMENT_RE.match(deployment):
            raise invalid(f"deployment_name {deployment!r} is not a valid subdomain label.")
        # Deployment names are global across accounts: they form the workspace URL.
        if any(ws["deployment_name"] == deployment for ws in STORE.all_workspaces()):
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"Deployment name {deployment} is already in use.")
    else:
        deployment = _unique_deployment_name(name)
    workspace_id = random.randint(10**15, 10**16 - 1)
    record: dict[str, Any] = {
        "workspace_id": workspace_id,
        "workspace_name": name,
        "deployment_name": deployment,
        "aws_region": region,
        "cloud": "aws",
        "account_id": account_id,
        "pricing_tier": body.get("pricing_tier") or "PREMIUM",
        "workspace_status": "PROVISIONING",
        "workspace_status_message": "Workspace resources are being set up.",
        "creation_time": now_ms(),
        "_provisioning_since": time.monotonic(),
    }
    if serverless:
        record["compute_mode"] = compute_mode
    else:
        record["credentials_id"] = body["credentials_id"]
        record["storage_configuration_id"] = body["storage_configuration_id"]
        if compute_mode is not None:
            record["compute_mode"] = compute_mode
    for optional in _OPTIONAL_FIELDS:
        if body.get(optional) is not None:
            record[optional] = body[optional]
    STORE.kind(account_id, "workspaces")[workspace_id] = record
    attach_network(account_id, record.get("network_id"), workspace_id)
    network_api.bind_default_policy(account_id, workspace_id)
    return record


def forget_workspace(account_id: str, ws: dict) -> None:
    """What goes with a deleted workspace: its network is freed, and its tokens, metastore assignment, permission
    assignments, network option and cluster policies are gone."""
    workspace_id = ws["workspace_id"]
    attach_network(account_id, ws.get("network_id"), None)
    for kind in ("tokens", "permission_assignments", "cluster_policies"):
        records = STORE.kind(account_id, kind)
        for key in [k for k, r in records.items() if r.get("workspace_id") == workspace_id]:
            del records[key]
    STORE.kind(account_id, "metastore_assignments").pop(workspace_id, None)
    STORE.kind(account_id, "workspace_network_options").pop(workspace_id, None)
    del STORE.kind(account_id, "workspaces")[workspace_id]


def update_workspace(account_id: str, ws: dict, body: dict, mask: str | None) -> dict:
    if mask and mask != "*":
        fields = [f.strip() for f in mask.split(",") if f.strip()]
        bad = [f for f in fields if f not in MUTABLE_FIELDS]
        if bad:
            raise invalid(f"update_mask names fields that cannot be updated: {', '.join(bad)}.")
    else:
        fields = [f for f in MUTABLE_FIELDS if body.get(f) is not None]
    changes = {f: body.get(f) for f in fields if body.get(f) != ws.get(f)}
    _check_serverless({**ws, **changes})
    _check_workspace_refs(account_id, {**ws, **changes}, ws["workspace_id"])
    if "network_id" in changes:
        attach_network(account_id, ws.get("network_id"), None)
        attach_network(account_id, changes["network_id"], ws["workspace_id"])
    for field, value in changes.items():
        if value is None:
            ws.pop(field, None)
        else:
            ws[field] = value
    redeploy = ws["workspace_status"] == "RUNNING" and bool(_REDEPLOY_FIELDS & changes.keys())
    if ws["workspace_status"] == "FAILED" or redeploy:
        ws["workspace_status"] = "PROVISIONING"
        ws["workspace_status_message"] = "Workspace is being updated."
        ws["_provisioning_since"] = time.monotonic()
    return ws
