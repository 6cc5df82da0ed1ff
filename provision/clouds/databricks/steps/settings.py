"""Security settings of a running workspace, through its own settings API (databricks-sdk's WorkspaceClient
`settings.compliance_security_profile`, `.enhanced_security_monitoring`, `.automatic_cluster_update`).

Each setting always exists on a workspace: `find` reads it, a rerun converges it when it is not what the spec
asks (GET for the etag, then PATCH with that etag and a field mask naming only what changes). Provision only
turns settings on (and adds compliance standards): Databricks refuses to turn the compliance security profile
off, and a setting left off by the spec is left as it is. The settings go with the workspace, so `delete` does
nothing and never needs the workspace (it may be gone already).
"""

from __future__ import annotations

from typing import Any, ClassVar

from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.errors import is_not_found
from provision.orchestrator.step import Context, Outputs, Ref, Step

SETTING_NAME = "default"


def _unreachable(exc: BaseException) -> bool:
    """The workspace is gone, or not in a state that serves its API (its own step reports why)."""
    return is_not_found(exc) or getattr(exc, "error_code", None) == "INVALID_STATE"


class WorkspaceSetting(Step):
    """One workspace setting, on. Subclasses name the SDK API, the setting's field and how to turn it on."""

    kind = "databricks.workspace_setting"
    produces: ClassVar[tuple[str, ...]] = ("deployment_name", "enabled")
    api: ClassVar[str] = ""  # the WorkspaceClient.settings attribute
    field: ClassVar[str] = ""  # the setting's message in the API's JSON
    enabled_key: ClassVar[str] = "is_enabled"

    def __init__(self, step_id: str, *, workspace: str, after: tuple[str, ...] = ()):
        super().__init__(step_id, needs=(workspace, *after))
        self.deployment_name = Ref(workspace, "deployment_name")

    def _api(self, ctx: Context, deployment: str) -> Any:
        return getattr(dbx.workspace(ctx, deployment).settings, self.api)

    def _outputs(self, deployment: str, setting: Any) -> Outputs:
        message = setting.as_dict().get(self.field) or {}
        return {"deployment_name": deployment, "enabled": bool(message.get(self.enabled_key))}

    def satisfied(self, out: Outputs) -> bool:
        return bool(out.get("enabled"))

    def wanted(self, current: Any, etag: str) -> tuple[Any, str]:
        """The setting to PATCH (with `etag`) and its field mask."""
        raise NotImplementedError

    def find(self, ctx: Context) -> Outputs | None:
        deployment = ctx.out_if_known(self.deployment_name)
        if deployment is None:  # plan before the workspace exists, or a teardown after it went
            return None
        try:
            found = self._outputs(deployment, self._api(ctx, deployment).get())
        except Exception as exc:
            if _unreachable(exc):
                return None
            raise
        # A setting not yet as wanted is not there yet: `create` turns it on (and the crash matrix kills there).
        return found if self.satisfied(found) else None

    def create(self, ctx: Context) -> Outputs:
        return self._apply(ctx)

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        return out if self.satisfied(out) else self._apply(ctx)

    def _apply(self, ctx: Context) -> Outputs:
        deployment = ctx.out(self.deployment_name)
        api = self._api(ctx, deployment)
        current = ctx.call(api.get, f"{self.id} read")
        if self.satisfied(self._outputs(deployment, current)):
            return self._outputs(deployment, current)
        setting, mask = self.wanted(current, current.etag)
        updated = ctx.call(lambda: api.update(allow_missing=True, setting=setting, field_mask=mask), f"{self.id} update")
        return self._outputs(deployment, updated)

    def delete(self, ctx: Context, out: Outputs) -> None:
        return None  # the setting goes with the workspace


class ComplianceSecurityProfile(WorkspaceSetting):
    """The compliance security profile, with its compliance standards (added to those already on)."""

    produces = ("deployment_name", "enabled", "standards")
    api = "compliance_security_profile"
    field = "compliance_security_profile_workspace"

    def __init__(self, step_id: str, *, workspace: str, standards: tuple[str, ...] = ()):
        super().__init__(step_id, workspace=workspace)
        self.standards = tuple(standards)

    def _outputs(self, deployment: str, setting: Any) -> Outputs:
        message = setting.as_dict().get(self.field) or {}
        return {**super()._outputs(deployment, setting), "standards": sorted(message.get("compliance_standards") or [])}

    def satisfied(self, out: Outputs) -> bool:
        return bool(out.get("enabled")) and set(self.standards) <= set(out.get("standards") or ())

    def wanted(self, current: Any, etag: str) -> tuple[Any, str]:
        from databricks.sdk.service import settings

        have = [s.value for s in (current.compliance_security_profile_workspace.compliance_standards or [])] if current.compliance_security_profile_workspace else []
        standards = [settings.ComplianceStandard(s) for s in sorted({*have, *self.standards})]
        setting = settings.ComplianceSecurityProfileSetting(
            compliance_security_profile_workspace=settings.ComplianceSecurityProfile(is_enabled=True, compliance_standards=standards),
            etag=etag, setting_name=SETTING_NAME,
        )
        return setting, f"{self.field}.is_enabled,{self.field}.compliance_standards"


class EnhancedSecurityMonitoring(WorkspaceSetting):
    api = "enhanced_security_monitoring"
    field = "enhanced_security_monitoring_workspace"

    def wanted(self, current: Any, etag: str) -> tuple[Any, str]:
        from databricks.sdk.service import settings

        setting = settings.EnhancedSecurityMonitoringSetting(
            enhanced_security_monitoring_workspace=settings.EnhancedSecurityMonitoring(is_enabled=True), etag=etag, setting_name=SETTING_NAME,
        )
        return setting, f"{self.field}.is_enabled"


class AutomaticClusterUpdate(WorkspaceSetting):
    api = "automatic_cluster_update"
    field = "automatic_cluster_update_workspace"
    enabled_key = "enabled"

    def wanted(self, current: Any, etag: str) -> tuple[Any, str]:
        from databricks.sdk.service import settings

        setting = settings.AutomaticClusterUpdateSetting(
            automatic_cluster_update_workspace=settings.ClusterAutoRestartMessage(enabled=True), etag=etag, setting_name=SETTING_NAME,
        )
        return setting, f"{self.field}.enabled"
