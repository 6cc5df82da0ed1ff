"""A workspace's security settings API, as databricks-sdk 0.156 calls it (service/settings.py):
GET and PATCH /api/2.0/settings/types/<type>/names/default for
- shield_csp_enablement_ws_db: the compliance security profile ({is_enabled, compliance_standards});
- shield_esm_enablement_ws_db: enhanced security monitoring ({is_enabled});
- automatic_cluster_update: automatic cluster update ({enabled, can_toggle, enablement_details, ...}).

GET answers the setting with its etag (a `?etag=` asks for one at least that fresh: the current one is).
PATCH takes {allow_missing: true, setting: {<field>: {...}, etag}, field_mask: "a.b,a.c"} and changes only
the masked fields (`*`: all of them), then answers the setting with a new etag. Fidelity rules:
1. allow_missing must be true, setting must hold the setting's own message, field_mask must name fields of
   it: else 400 INVALID_PARAMETER_VALUE.
2. The etag is optimistic concurrency: a PATCH without one fails 404 NOT_FOUND, one with a stale etag 409
   RESOURCE_CONFLICT; both carry the current etag in an ErrorInfo detail (metadata.etag), which is what
   Terraform's provider reads to retry.
3. The compliance security profile, enhanced security monitoring and automatic cluster update are parts of
   the Enhanced Security and Compliance add-on: turning one on in a workspace that is not on the ENTERPRISE
   tier fails 403 PERMISSION_DENIED (automatic cluster update reports it in
   enablement_details.unavailable_for_non_enterprise_tier, as the SDK documents).
4. The compliance security profile cannot be turned off once on (the SDK: "This settings can NOT be disabled
   once it is enabled"); turning it on turns the other two on, and while it is on they cannot be turned off
   (ESM's API: "If the compliance security profile is enabled, this is automatically enabled"); automatic
   cluster update then reports can_toggle false and enablement_details.forced_for_compliance_mode. Refusals
   are 400 INVALID_PARAMETER_VALUE. Standards are the SDK's ComplianceStandard values.
5. default_namespace_ws: the workspace's default catalog ({namespace: {value}}). Unset, GET answers 404 NOT_FOUND
   carrying the etag to write with (as the SDK documents); PATCH (field_mask "namespace.value" or "*", a
   non-empty value) sets it under the same etag rules as above; DELETE ?etag= unsets it (a missing etag 404, a
   stale one 409, both with the current etag; an unset setting 404) and answers {etag}.
The settings live in the workspace's record and go with it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from werkzeug.wrappers import Request, Response

from provision.clouds.databricks.sandbox.store import ApiError, invalid, json_body

CSP, ESM, ACU = "shield_csp_enablement_ws_db", "shield_esm_enablement_ws_db", "automatic_cluster_update"
FIELDS = {
    CSP: "compliance_security_profile_workspace",
    ESM: "enhanced_security_monitoring_workspace",
    ACU: "automatic_cluster_update_workspace",
}
ENABLED = {CSP: "is_enabled", ESM: "is_enabled", ACU: "enabled"}
_MASKABLE = {
    CSP: {"is_enabled", "compliance_standards"},
    ESM: {"is_enabled"},
    ACU: {"enabled", "can_toggle", "maintenance_window", "restart_even_if_no_updates_available"},
}
STANDARDS = {
    "CANADA_PROTECTED_B", "CYBER_ESSENTIAL_PLUS", "FEDRAMP_HIGH", "FEDRAMP_IL5", "FEDRAMP_MODERATE", "GERMANY_C5",
    "GERMANY_TISAX", "HIPAA", "HITRUST", "IRAP_PROTECTED", "ISMAP", "ITAR_EAR", "KSA_ECC_CCC_DCC", "K_FSI", "NONE", "PCI_DSS",
}
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def _defaults(ws: dict) -> dict[str, dict[str, Any]]:
    enterprise = ws.get("pricing_tier") == "ENTERPRISE"
    return {
        CSP: {"is_enabled": False, "compliance_standards": []},
        ESM: {"is_enabled": False},
        ACU: {
            "enabled": False, "can_toggle": enterprise, "restart_even_if_no_updates_available": False,
            "enablement_details": {"forced_for_compliance_mode": False, "unavailable_for_disabled_entitlement": False,
                                   "unavailable_for_non_enterprise_tier": not enterprise},
        },
    }


def _state(ws: dict) -> dict[str, Any]:
    """The workspace's settings and their versions, made on first use (private: `_` keys never leave the store)."""
    if "_settings" not in ws:
        ws["_settings"] = {"values": _defaults(ws), "versions": dict.fromkeys(FIELDS, 1)}
    return ws["_settings"]


def _etag(ws: dict, kind: str) -> str:
    return f"{ws['workspace_id']}-{kind}-v{_state(ws)['versions'][kind]}"


def _answer(ws: dict, kind: str) -> dict[str, Any]:
    return {FIELDS[kind]: copy.deepcopy(_state(ws)["values"][kind]), "etag": _etag(ws, kind), "setting_name": "default"}


def _etag_error(status: int, code: str, message: str, etag: str) -> ApiError:
    error = ApiError(status, code, message)
    error.details = [{"@type": _ERROR_INFO, "reason": "ETAG_MISMATCH" if status == 409 else "ETAG_MISSING",  # type: ignore[attr-defined]
                      "domain": "settings.databricks.com", "metadata": {"etag": etag}}]
    return error


def _masked(kind: str, mask: Any) -> set[str]:
    if not isinstance(mask, str) or not mask.strip():
        raise invalid("field_mask is required: the fields of the setting to update, separated by commas.")
    if mask.strip() == "*":
        return set(_MASKABLE[kind])
    fields = set()
    for path in mask.split(","):
        head, _, tail = path.strip().partition(".")
        if head != FIELDS[kind] or tail not in _MASKABLE[kind]:
            raise invalid(f"field_mask path {path.strip()!r} is not a field of {FIELDS[kind]}.")
        fields.add(tail)
    return fields


def _check_rules(ws: dict, kind: str, after: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]]) -> None:
    enterprise = ws.get("pricing_tier") == "ENTERPRISE"
    turned_on = after[kind][ENABLED[kind]] and not before[kind][ENABLED[kind]]
    if turned_on and not enterprise:
        raise ApiError(403, "PERMISSION_DENIED", f"{FIELDS[kind]} requires the Enhanced Security and Compliance add-on, available "
                       f"on the ENTERPRISE pricing tier; workspace {ws['workspace_id']} is on {ws.get('pricing_tier')}.")
    if kind == CSP:
        if before[CSP]["is_enabled"] and not after[CSP]["is_enabled"]:
            raise invalid("The compliance security profile cannot be disabled once it is enabled.")
        standards = after[CSP].get("compliance_standards") or []
        if not isinstance(standards, list) or [s for s in standards if s not in STANDARDS]:
            raise invalid(f"compliance_standards {standards!r} must be a list of ComplianceStandard values.")
    elif before[CSP]["is_enabled"] and not after[kind][ENABLED[kind]]:
        raise invalid(f"{FIELDS[kind]} cannot be disabled while the compliance security profile is enabled.")


def patch(ws: dict, kind: str, body: dict) -> dict[str, Any]:
    if body.get("allow_missing") is not True:
        raise invalid("allow_missing must be true.")
    setting = body.get("setting")
    if not isinstance(setting, dict) or not isinstance(setting.get(FIELDS[kind]), dict):
        raise invalid(f"setting must hold {FIELDS[kind]}.")
    fields = _masked(kind, body.get("field_mask"))
    current = _etag(ws, kind)
    if not setting.get("etag"):
        raise _etag_error(404, "NOT_FOUND", "The setting needs the etag of a GET (setting.etag).", current)
    if setting["etag"] != current:
        raise _etag_error(409, "RESOURCE_CONFLICT", "The setting was changed since its etag was read; read it again.", current)
    state = _state(ws)
    before = copy.deepcopy(state["values"])
    after = copy.deepcopy(before)
    for name in fields:
        if name in setting[FIELDS[kind]]:
            after[kind][name] = setting[FIELDS[kind]][name]
    _check_rules(ws, kind, after, before)
    changed = {kind}
    if kind == CSP and after[CSP]["is_enabled"]:
        # The profile forces monitoring and cluster updates on, for as long as it is on.
        after[ESM]["is_enabled"] = True
        after[ACU].update(enabled=True, can_toggle=False)
        after[ACU]["enablement_details"]["forced_for_compliance_mode"] = True
        changed |= {ESM, ACU}
    for name in changed:
        if after[name] != before[name] or name == kind:
            state["versions"][name] += 1
    state["values"] = after
    return _answer(ws, kind)


# --- default namespace -----------------------------------------------------------------------------------

DNS = "default_namespace_ws"


def _namespace(ws: dict) -> dict[str, Any]:
    if "_default_namespace" not in ws:
        ws["_default_namespace"] = {"value": None, "version": 1}
    return ws["_default_namespace"]


def _namespace_etag(ws: dict) -> str:
    return f"{ws['workspace_id']}-{DNS}-v{_namespace(ws)['version']}"


def _namespace_answer(ws: dict) -> dict[str, Any]:
    state = _namespace(ws)
    if state["value"] is None:
        raise _etag_error(404, "NOT_FOUND", f"Setting {DNS}/default does not exist.", _namespace_etag(ws))
    return {"namespace": {"value": state["value"]}, "etag": _namespace_etag(ws), "setting_name": "default"}


def _check_etag(ws: dict, etag: Any) -> None:
    current = _namespace_etag(ws)
    if not etag:
        raise _etag_error(404, "NOT_FOUND", "The setting needs the etag of a GET (etag).", current)
    if etag != current:
        raise _etag_error(409, "RESOURCE_CONFLICT", "The setting was changed since its etag was read; read it again.", current)


def namespace(ws: dict, request: Request) -> dict[str, Any]:
    """GET, PATCH or DELETE of the default namespace setting."""
    state = _namespace(ws)
    if request.method == "GET":
        return _namespace_answer(ws)
    if request.method == "DELETE":
        _check_etag(ws, request.args.get("etag"))
        if state["value"] is None:
            raise _etag_error(404, "NOT_FOUND", f"Setting {DNS}/default does not exist.", _namespace_etag(ws))
        state.update(value=None, version=state["version"] + 1)
        return {"etag": _namespace_etag(ws)}
    body = json_body(request)
    if body.get("allow_missing") is not True:
        raise invalid("allow_missing must be true.")
    setting = body.get("setting")
    value = (setting.get("namespace") or {}).get("value") if isinstance(setting, dict) else None
    if not isinstance(setting, dict) or not isinstance(setting.get("namespace"), dict):
        raise invalid("setting must hold namespace.")
    mask = body.get("field_mask")
    if not isinstance(mask, str) or {m.strip() for m in mask.split(",")} - {"namespace.value", "*"} or not mask.strip():
        raise invalid(f"field_mask {mask!r} must be namespace.value.")
    if not isinstance(value, str) or not value.strip():
        raise invalid("namespace.value must be the name of a catalog.")
    _check_etag(ws, setting.get("etag"))
    state.update(value=value, version=state["version"] + 1)
    return _namespace_answer(ws)


def respond(ws: dict, request: Request, args: dict, headers: dict[str, str]) -> Response:
    """The GET or PATCH (DELETE: the default namespace) of one setting (authentication is the caller's)."""
    kind = args["setting_type"]
    try:
        if kind not in FIELDS and kind != DNS or (request.method == "DELETE" and kind != DNS):
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'.")
        if args["setting_name"] != "default":
            raise ApiError(404, "NOT_FOUND", f"Setting {kind}/{args['setting_name']} does not exist; its name is default.")
        if kind == DNS:
            result = namespace(ws, request)
        else:
            result = patch(ws, kind, json_body(request)) if request.method == "PATCH" else _answer(ws, kind)
        return Response(json.dumps(result), mimetype="application/json", headers=headers)
    except ApiError as e:
        body: dict[str, Any] = {"error_code": e.error_code, "message": e.message}
        if getattr(e, "details", None):
            body["details"] = e.details  # type: ignore[attr-defined]
        return Response(json.dumps(body), status=e.status, mimetype="application/json", headers={**headers, **e.headers})
