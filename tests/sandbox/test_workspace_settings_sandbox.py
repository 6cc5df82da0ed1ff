"""A workspace's security settings in the Databricks emulator (clouds/databricks/sandbox/settings_api.py), over
HTTP with the real databricks-sdk WorkspaceClient, and the steps that turn them on (clouds/databricks/steps/
settings.py) run by the engine against it.

Each refusal below fails against a lenient emulator (one that stores any PATCH): the compliance security
profile cannot be turned off once on, nor can enhanced security monitoring or automatic cluster update while it
is on; the three need an ENTERPRISE workspace; a PATCH needs allow_missing, a field mask of the setting's own
fields and the current etag.
"""

from __future__ import annotations

import random
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import (
    InvalidParameterValue,
    NotFound,
    PermissionDenied,
    ResourceConflict,
)
from databricks.sdk.service import settings as sdk
from structlog.testing import CapturingLogger

from provision import topologies
from provision.clouds import error_rules
from provision.clouds.databricks import sandbox as emulator
from provision.clouds.databricks.sandbox import STORE, workspace_host
from provision.orchestrator.clients import CallStats
from provision.orchestrator.engine import Engine
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import Context, Outputs, Step
from provision.orchestrator.wait import PollPolicy
from provision.sandbox.settings import SandboxSettings
from provision.state.store import StateFile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "basic.toml"
CSP_MASK = "compliance_security_profile_workspace.is_enabled,compliance_security_profile_workspace.compliance_standards"


@pytest.fixture(autouse=True)
def fresh() -> None:
    emulator.reset()


def seed_workspace(settings: SandboxSettings, tier: str = "ENTERPRISE") -> str:
    """A RUNNING workspace in the emulator's store; its deployment name."""
    workspace_id = random.randint(10**15, 10**16 - 1)
    deployment = f"dbc-{uuid.uuid4().hex[:8]}"
    STORE.kind(settings.account_id, "workspaces")[workspace_id] = {
        "workspace_id": workspace_id, "workspace_name": deployment, "deployment_name": deployment, "aws_region": "us-east-1",
        "account_id": settings.account_id, "pricing_tier": tier, "workspace_status": "RUNNING", "_served": True,
    }
    return deployment


def client(dbx_url: str, settings: SandboxSettings, deployment: str) -> WorkspaceClient:
    config = Config(host=workspace_host(dbx_url, deployment), token=settings.token, auth_type="pat",
                    retry_timeout_seconds=5, http_timeout_seconds=5)
    return WorkspaceClient(config=config)


@pytest.fixture
def ws(dbx_url: str, settings: SandboxSettings) -> WorkspaceClient:
    return client(dbx_url, settings, seed_workspace(settings))


def csp(enabled: bool, etag: str | None, standards: list[str] | None = None) -> sdk.ComplianceSecurityProfileSetting:
    return sdk.ComplianceSecurityProfileSetting(
        compliance_security_profile_workspace=sdk.ComplianceSecurityProfile(
            is_enabled=enabled, compliance_standards=[sdk.ComplianceStandard(s) for s in standards or []]),
        etag=etag, setting_name="default")


def esm(enabled: bool, etag: str | None) -> sdk.EnhancedSecurityMonitoringSetting:
    return sdk.EnhancedSecurityMonitoringSetting(
        enhanced_security_monitoring_workspace=sdk.EnhancedSecurityMonitoring(is_enabled=enabled), etag=etag, setting_name="default")


def acu(enabled: bool, etag: str | None) -> sdk.AutomaticClusterUpdateSetting:
    return sdk.AutomaticClusterUpdateSetting(
        automatic_cluster_update_workspace=sdk.ClusterAutoRestartMessage(enabled=enabled), etag=etag, setting_name="default")


# --- the API ---------------------------------------------------------------------------------------------------


def test_settings_are_read_with_an_etag_and_off_by_default(ws: WorkspaceClient) -> None:
    profile = ws.settings.compliance_security_profile.get()
    assert profile.compliance_security_profile_workspace.is_enabled is False and profile.etag and profile.setting_name == "default"
    assert ws.settings.enhanced_security_monitoring.get().enhanced_security_monitoring_workspace.is_enabled is False
    updates = ws.settings.automatic_cluster_update.get().automatic_cluster_update_workspace
    assert updates.enabled is False and updates.can_toggle is True
    assert updates.enablement_details.unavailable_for_non_enterprise_tier is False


def test_an_update_needs_the_current_etag(ws: WorkspaceClient) -> None:
    api = ws.settings.enhanced_security_monitoring
    first = api.get().etag
    with pytest.raises(NotFound) as missing:
        api.update(allow_missing=True, setting=esm(True, None), field_mask="enhanced_security_monitoring_workspace.is_enabled")
    assert missing.value.get_error_info()[0].metadata["etag"] == first  # what a client retries with
    updated = api.update(allow_missing=True, setting=esm(True, first), field_mask="enhanced_security_monitoring_workspace.is_enabled")
    assert updated.enhanced_security_monitoring_workspace.is_enabled is True and updated.etag != first
    with pytest.raises(ResourceConflict) as stale:
        api.update(allow_missing=True, setting=esm(False, first), field_mask="enhanced_security_monitoring_workspace.is_enabled")
    assert stale.value.get_error_info()[0].metadata["etag"] == updated.etag
    assert api.get().enhanced_security_monitoring_workspace.is_enabled is True


@pytest.mark.parametrize(("allow_missing", "mask"), [
    (False, "enhanced_security_monitoring_workspace.is_enabled"),
    (True, ""),
    (True, "enhanced_security_monitoring_workspace.enabled"),
    (True, "compliance_security_profile_workspace.is_enabled"),
], ids=["allow_missing false", "no field mask", "not a field", "another setting's field"])
def test_an_update_needs_allow_missing_and_a_mask_of_its_fields(ws: WorkspaceClient, allow_missing: bool, mask: str) -> None:
    api = ws.settings.enhanced_security_monitoring
    with pytest.raises(InvalidParameterValue):
        api.update(allow_missing=allow_missing, setting=esm(True, api.get().etag), field_mask=mask)
    assert api.get().enhanced_security_monitoring_workspace.is_enabled is False


def test_only_the_masked_fields_change(ws: WorkspaceClient) -> None:
    api = ws.settings.compliance_security_profile
    api.update(allow_missing=True, setting=csp(True, api.get().etag, ["HIPAA"]), field_mask="compliance_security_profile_workspace.is_enabled")
    profile = api.get().compliance_security_profile_workspace
    assert profile.is_enabled is True and not profile.compliance_standards
    with pytest.raises(InvalidParameterValue):
        ws.api_client.do("PATCH", "/api/2.0/settings/types/shield_csp_enablement_ws_db/names/default", body={
            "allow_missing": True, "field_mask": CSP_MASK,
            "setting": {"etag": api.get().etag, "compliance_security_profile_workspace": {"is_enabled": True, "compliance_standards": ["SOC2"]}}})


def test_the_profile_stays_on_and_keeps_the_others_on(ws: WorkspaceClient) -> None:
    profile = ws.settings.compliance_security_profile
    turned_on = profile.update(allow_missing=True, setting=csp(True, profile.get().etag, ["HIPAA", "PCI_DSS"]), field_mask=CSP_MASK)
    assert [s.value for s in turned_on.compliance_security_profile_workspace.compliance_standards] == ["HIPAA", "PCI_DSS"]
    # It turned monitoring and cluster updates on, for as long as it is on.
    assert ws.settings.enhanced_security_monitoring.get().enhanced_security_monitoring_workspace.is_enabled is True
    updates = ws.settings.automatic_cluster_update.get()
    assert updates.automatic_cluster_update_workspace.enabled is True and updates.automatic_cluster_update_workspace.can_toggle is False
    assert updates.automatic_cluster_update_workspace.enablement_details.forced_for_compliance_mode is True

    with pytest.raises(InvalidParameterValue, match="cannot be disabled once it is enabled"):
        profile.update(allow_missing=True, setting=csp(False, profile.get().etag), field_mask="compliance_security_profile_workspace.is_enabled")
    monitoring = ws.settings.enhanced_security_monitoring
    with pytest.raises(InvalidParameterValue, match="while the compliance security profile is enabled"):
        monitoring.update(allow_missing=True, setting=esm(False, monitoring.get().etag), field_mask="enhanced_security_monitoring_workspace.is_enabled")
    cluster = ws.settings.automatic_cluster_update
    with pytest.raises(InvalidParameterValue, match="while the compliance security profile is enabled"):
        cluster.update(allow_missing=True, setting=acu(False, cluster.get().etag), field_mask="automatic_cluster_update_workspace.enabled")
    assert profile.get().compliance_security_profile_workspace.is_enabled is True


def test_the_settings_need_an_enterprise_workspace(dbx_url: str, settings: SandboxSettings) -> None:
    premium = client(dbx_url, settings, seed_workspace(settings, tier="PREMIUM"))
    assert premium.settings.automatic_cluster_update.get().automatic_cluster_update_workspace.enablement_details.unavailable_for_non_enterprise_tier
    calls = [
        (premium.settings.compliance_security_profile, lambda etag: csp(True, etag), "compliance_security_profile_workspace.is_enabled"),
        (premium.settings.enhanced_security_monitoring, lambda etag: esm(True, etag), "enhanced_security_monitoring_workspace.is_enabled"),
        (premium.settings.automatic_cluster_update, lambda etag: acu(True, etag), "automatic_cluster_update_workspace.enabled"),
    ]
    for api, setting, mask in calls:
        with pytest.raises(PermissionDenied, match="ENTERPRISE"):
            api.update(allow_missing=True, setting=setting(api.get().etag), field_mask=mask)
    assert premium.settings.compliance_security_profile.get().compliance_security_profile_workspace.is_enabled is False


# --- the steps ------------------------------------------------------------------------------------------------


class Given(Step):
    """The workspace step, stood in: its outputs are fixed."""

    kind = "test.given"
    produces = ("deployment_name",)

    def __init__(self, step_id: str, deployment: str) -> None:
        super().__init__(step_id)
        self.deployment = deployment

    def find(self, ctx: Context) -> Outputs | None:
        return {"deployment_name": self.deployment}

    def create(self, ctx: Context) -> Outputs:
        return {"deployment_name": self.deployment}

    def delete(self, ctx: Context, out: Outputs) -> None:
        return None


class EmulatorClients:
    """`ctx.clients["databricks"].workspace(deployment)`: a real WorkspaceClient of the emulator; requests counted."""

    def __init__(self, dbx_url: str, settings: SandboxSettings) -> None:
        self.dbx_url, self.settings, self.stats, self.requests = dbx_url, settings, CallStats(), []

    def __getitem__(self, cloud: str) -> Any:
        assert cloud == "databricks", cloud
        return self

    def workspace(self, deployment: str) -> WorkspaceClient:
        made = client(self.dbx_url, self.settings, deployment)
        do = made.api_client.do

        def counted(method: str, path: str, **kwargs: Any) -> Any:
            self.requests.append(f"{method} {path.rsplit('/types/', 1)[-1]}")
            return do(method, path, **kwargs)

        made.api_client.do = counted  # type: ignore[method-assign]
        return made


class Run:
    def __init__(self, tmp_path: Path, dbx_url: str, settings: SandboxSettings, security: dict[str, Any]) -> None:
        data = tomllib.loads(EXAMPLE.read_text())
        data["databricks"]["pricing_tier"] = "ENTERPRISE"
        data["workspace"] = {"security": security}
        self.spec = topologies.from_dict(data, str(EXAMPLE))
        self.deployment = seed_workspace(settings)
        self.steps = [Given("dbx.workspace", self.deployment),
                      *[s for s in topologies.build(self.spec) if s.kind == "databricks.workspace_setting"]]
        self.path, self.dbx_url, self.settings = tmp_path / "state.json", dbx_url, settings
        self.clients = EmulatorClients(dbx_url, settings)

    def engine(self) -> Engine:
        state = StateFile.load(self.path) if self.path.exists() else StateFile.new(
            self.path, deployment=self.spec.name, cloud="aws", target="sandbox", spec=self.spec.to_json(), spec_path=None)
        self.clients = EmulatorClients(self.dbx_url, self.settings)
        ctx = Context(
            spec=self.spec, clients=self.clients,  # type: ignore[arg-type]
            retry=RetryPolicy(deadline_seconds=5, initial_seconds=0.01, max_seconds=0.05, rng=random.Random(1), errors=error_rules()),
            poll=PollPolicy(initial_seconds=0.01, factor=2, max_seconds=0.05, timeout_seconds=5, visibility_seconds=0),
            log=structlog.wrap_logger(CapturingLogger(), processors=[]),
        )
        return Engine(self.steps, state, ctx, parallelism=1)


def test_the_steps_turn_the_settings_on_then_leave_them(tmp_path: Path, dbx_url: str, settings: SandboxSettings) -> None:
    run = Run(tmp_path, dbx_url, settings, {"compliance_security_profile": True, "compliance_standards": ["HIPAA"]})
    out = run.engine().up()
    assert out["dbx.settings.compliance_profile"] == {"deployment_name": run.deployment, "enabled": True, "standards": ["HIPAA"]}
    assert set(out) >= {"dbx.settings.compliance_profile"} and "dbx.settings.security_monitoring" not in out
    assert [r for r in run.clients.requests if r.startswith("PATCH")] == ["PATCH shield_csp_enablement_ws_db/names/default"]
    ws = client(dbx_url, settings, run.deployment)
    # The profile turned the other two on.
    assert ws.settings.enhanced_security_monitoring.get().enhanced_security_monitoring_workspace.is_enabled is True
    assert ws.settings.automatic_cluster_update.get().automatic_cluster_update_workspace.enabled is True
    assert [s.value for s in ws.settings.compliance_security_profile.get().compliance_security_profile_workspace.compliance_standards] == ["HIPAA"]

    # A rerun reads each setting once and writes nothing; a standard added by hand stays (provision adds, never removes).
    api = ws.settings.compliance_security_profile
    api.update(allow_missing=True, setting=csp(True, api.get().etag, ["HIPAA", "PCI_DSS"]), field_mask=CSP_MASK)
    run.engine().up()
    assert all(r.startswith("GET") for r in run.clients.requests) and len(run.clients.requests) == 1

    # Teardown: the settings go with the workspace; nothing is called, even once the workspace is gone.
    STORE.kind(settings.account_id, "workspaces").clear()
    run.engine().teardown()
    assert [r for r in run.clients.requests if not r.startswith("GET")] == []


def test_a_setting_turned_off_by_hand_is_turned_on_again(tmp_path: Path, dbx_url: str, settings: SandboxSettings) -> None:
    run = Run(tmp_path, dbx_url, settings, {"enhanced_security_monitoring": True, "automatic_cluster_update": True})
    run.engine().up()
    api = client(dbx_url, settings, run.deployment).settings.enhanced_security_monitoring
    api.update(allow_missing=True, setting=esm(False, api.get().etag), field_mask="enhanced_security_monitoring_workspace.is_enabled")
    out = run.engine().up()
    assert out["dbx.settings.security_monitoring"]["enabled"] and api.get().enhanced_security_monitoring_workspace.is_enabled
    assert [r for r in run.clients.requests if r.startswith("PATCH")] == ["PATCH shield_esm_enablement_ws_db/names/default"]
