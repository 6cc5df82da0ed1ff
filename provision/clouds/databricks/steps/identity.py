"""Account identities: service principals (and their OAuth secrets, kept only in AWS Secrets Manager) and groups.
Their workspace permission assignments, and the deploying principal made workspace admin, are identity_access.py.

Service principals and groups have no tags: each is found by its display name (a SCIM filter, then an exact
comparison), and more than one with our name is an OwnershipConflict. One found before this step ever attempted a
create (`ctx.claimed`, as keys.py does) is someone else's and adopted: used, converged where the spec says so
(a group's members), never deleted. One this step created is deleted on teardown unless another workspace assigns it
a permission by then (another deployment may have adopted it by name): then it is left, with a warning. A group's
members converge by PATCH: spec members missing from the group are added; a member is removed only when this step
added it earlier and the spec no longer lists it (the members this step added are kept in the state file's facts),
so members someone else put in a group are left alone.

A service principal's OAuth secret is shown once, at creation: it goes straight into Secrets Manager as
{"client_id", "client_secret"}, and outputs, state and logs only ever hold the secret's ARN and its id. A secret
made by an earlier attempt that died before storing it can never be read again: each create attempt records when it
started (a fact, until a secret is stored), and before creating one the step revokes the principal's secrets made at or
after the earliest of those times, never an older one. The stored secret counts only while its id is still listed for
the principal and its client id tag names the principal's application id: else (the principal recreated, the secret
revoked by hand) a new one replaces its value.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import is_not_found as aws_not_found
from provision.clouds.databricks import context as dbx
from provision.clouds.databricks.errors import is_not_found
from provision.errors import OwnershipConflict
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Ref, Step

SECRET_ID_TAG, CLIENT_ID_TAG = "provision:secret-id", "provision:client-id"
_FEDERATION_OFF = "Permission assignment APIs are not available"
ADMIN, USER = "ADMIN", "USER"
_utcnow = partial(datetime.now, UTC)  # the wall clock, to the tests' liking


def _scim_filter(name: str) -> str:
    return 'displayName eq "{}"'.format(name.replace("\\", "\\\\").replace('"', '\\"'))


def _one(items: list[Any], name: str, what: str) -> Any | None:
    """The one principal with exactly that display name (SCIM's `eq` may ignore case), or None."""
    matches = [i for i in items if i.display_name == name]
    if len(matches) > 1:
        ids = ", ".join(str(i.id) for i in matches)
        raise OwnershipConflict(f"{len(matches)} Databricks {what}s are named {name!r} ({ids}); expected one. Delete or rename the extras.")
    return matches[0] if matches else None


def _adopted(step: Step, ctx: Context, out: Outputs) -> bool:
    # A record without the mark predates it: the same rule as find's.
    return bool(out.get("adopted", step.id not in ctx.claimed))


def _principal_id(value: Any) -> Any:
    """Account principal ids are numeric strings in SCIM and integers in permission assignments."""
    return int(str(value)) if str(value).isdigit() else value


def _missing(exc: BaseException) -> bool:
    """Not found, also as SCIM says it: a 404 with no error code, which databricks-sdk raises as NotFound."""
    return is_not_found(exc) or any(k.__name__ == "NotFound" for k in type(exc).__mro__)


def _scim_get(api: Any, principal_id: str) -> Any | None:
    try:
        return api.get(id=principal_id)
    except Exception as exc:
        if _missing(exc):
            return None
        raise


def _keep(ctx: Context, key: str, value: Any) -> None:
    """A fact this step updates (kept in the state file)."""
    ctx.facts[key] = value
    ctx.remember(key, value)


def _instant(text: Any) -> datetime | None:
    """An RFC 3339 time to the second (what Databricks' create_time resolves), or None if absent or unreadable."""
    try:
        moment = datetime.fromisoformat(str(text))  # 3.11 reads "Z"
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).replace(microsecond=0)


def _assignment(ctx: Context, workspace_id: int, principal_id: Any, *, unserved_ok: bool = False) -> Any | None:
    """The principal's permission assignment on the workspace, or None (also when the workspace is gone, and with
    unserved_ok when it serves no assignments: no metastore, a refusal otherwise retried as transient)."""
    try:
        assignments = list(dbx.account(ctx).workspace_assignment.list(workspace_id=workspace_id))
    except Exception as exc:
        if _missing(exc):
            return None
        if unserved_ok and _FEDERATION_OFF in str(exc):
            return None
        raise
    return next((a for a in assignments if a.principal is not None and str(a.principal.principal_id) == str(principal_id)), None)


class _Principal(Step):
    """A service principal or a group, which teardown deletes only if this step made it and no workspace uses it."""

    def __init__(self, step_id: str, needs: tuple[str, ...] = ()):
        super().__init__(step_id, needs)
        self._left: set[str] = set()  # principals `delete` left in place, which wait_deleted does not wait for

    def _in_use(self, ctx: Context, out: Outputs, what: str) -> bool:
        """Whether a workspace assigns the principal a permission: then it is left. This deployment's own assignments
        are gone by now (they need the principal), and a workspace that is gone or serves no assignments has none."""
        pid = out["principal_id"]
        users = [ws.workspace_id for ws in dbx.account(ctx).workspaces.list() if _assignment(ctx, ws.workspace_id, pid, unserved_ok=True)]
        if users:
            ctx.log.warning(f"{what} left in place: another workspace assigns it a permission", principal_id=pid, workspaces=users)
            self._left.add(str(pid))
        return bool(users)

    def _wait_gone(self, ctx: Context, out: Outputs, api: Any, what: str) -> None:
        if not _adopted(self, ctx, out) and str(out["principal_id"]) not in self._left:
            ctx.wait_gone(lambda: _scim_get(api, out["principal_id"]), what=f"{what} {out['principal_id']}")


def _unreachable(exc: BaseException) -> bool:
    """The workspace is gone, or not in a state that serves its API."""
    return is_not_found(exc) or getattr(exc, "error_code", None) == "INVALID_STATE"


class ServicePrincipal(_Principal):
    kind = "databricks.service_principal"
    produces = ("principal_id", "application_id", "display_name", "adopted")

    def __init__(self, step_id: str, *, display_name: str):
        super().__init__(step_id)
        self.display_name = display_name

    @staticmethod
    def _outputs(sp: Any, *, adopted: bool) -> Outputs:
        return {"principal_id": sp.id, "application_id": sp.application_id, "display_name": sp.display_name, "adopted": adopted}

    def find(self, ctx: Context) -> Outputs | None:
        found = _one(list(dbx.account(ctx).service_principals.list(filter=_scim_filter(self.display_name))), self.display_name, "service principal")
        if found is None:
            return None
        # Ours only if this step has attempted a create (a lost response included); else someone else's.
        return self._outputs(found, adopted=self.id not in ctx.claimed)

    def create(self, ctx: Context) -> Outputs:
        sp = dbx.account(ctx).service_principals.create(display_name=self.display_name, active=True)
        return self._outputs(sp, adopted=False)

    def delete(self, ctx: Context, out: Outputs) -> None:
        if _adopted(self, ctx, out):
            ctx.log.info("leaving the service principal in place (adopted: this step did not create it)", principal_id=out["principal_id"])
            return
        try:
            if not self._in_use(ctx, out, "service principal"):
                dbx.account(ctx).service_principals.delete(id=out["principal_id"])
        except Exception as exc:
            if not _missing(exc):
                raise

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        self._wait_gone(ctx, out, dbx.account(ctx).service_principals, "service principal")


class ServicePrincipalSecret(Step):
    """An OAuth secret of a service principal, whose value goes straight into AWS Secrets Manager (as WorkspaceToken's
    token does): the state file, logs and outputs only ever hold the secret's ARN and the secret's id."""

    kind = "databricks.service_principal_secret"
    produces = ("secret_arn", "secret_id")

    def __init__(self, step_id: str, *, principal: str):
        super().__init__(step_id, needs=(principal,))
        self.principal_id, self.application_id = Ref(principal, "principal_id"), Ref(principal, "application_id")

    def secret_name(self, ctx: Context) -> str:
        return f"{ctx.deployment}/{self.id}"

    def _fact(self) -> str:
        return f"secret_attempts:{self.id}"

    def _secrets(self, ctx: Context) -> Any:
        return aws.client(ctx, "secretsmanager")

    def _stored(self, ctx: Context) -> tuple[dict[str, Any], dict[str, str]] | None:
        """The Secrets Manager secret with our name (also one scheduled for deletion) and its tags."""
        try:
            secret = self._secrets(ctx).describe_secret(SecretId=self.secret_name(ctx))
        except Exception as exc:
            if aws_not_found(exc):
                return None
            raise
        tags = {t["Key"]: t["Value"] for t in secret.get("Tags", [])}
        if tags.get(TAG_DEPLOYMENT) != ctx.deployment:
            raise OwnershipConflict(f"secret {self.secret_name(ctx)} exists but is not tagged as this deployment's")
        return secret, tags

    def find(self, ctx: Context) -> Outputs | None:
        stored = self._stored(ctx)
        if stored is None or stored[0].get("DeletedDate"):
            return None
        secret, tags = stored
        secret_id = tags.get(SECRET_ID_TAG)
        principal_id, application_id = ctx.out_if_known(self.principal_id), ctx.out_if_known(self.application_id)
        if principal_id is None or not secret_id:
            return None  # no principal (yet) for it to authenticate as
        # It authenticates only while its secret is listed for the principal it names (a recreated principal has a new
        # application id and none of the old one's secrets). A record without the client id tag predates it.
        if tags.get(CLIENT_ID_TAG, str(application_id)) == str(application_id):
            try:
                if secret_id in {str(s.id) for s in dbx.account(ctx).service_principal_secrets.list(service_principal_id=str(principal_id))}:
                    return {"secret_arn": secret["ARN"], "secret_id": secret_id}
            except Exception as exc:
                if not _missing(exc):
                    raise
        ctx.log.warning("the stored OAuth secret no longer authenticates (revoked, or its principal recreated): a new one replaces it",
                        secret_id=secret_id)
        return None

    def create(self, ctx: Context) -> Outputs:
        api = dbx.account(ctx).service_principal_secrets
        principal_id, application_id = str(ctx.out(self.principal_id)), ctx.out(self.application_id)
        # Recorded before any call: a secret this attempt makes is not older than this (to the second, as create_time).
        started = list((ctx.facts.get(self._fact()) or {}).get("started") or ()) + [_utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")]
        _keep(ctx, self._fact(), {"started": started})
        stored = self._stored(ctx)
        keep_id = stored and stored[1].get(SECRET_ID_TAG)
        # Made since this step's first unfinished attempt, other than the stored one: an earlier attempt made it and
        # never stored it, and no one can ever read it. Older ones (an adopted principal's own, an operator's) stay.
        since = min(t for t in map(_instant, started) if t is not None)
        for info in api.list(service_principal_id=principal_id):
            made_at = _instant(info.create_time)
            if str(info.id) != keep_id and made_at is not None and made_at >= since:
                ctx.log.warning("revoking a secret an earlier attempt made but never stored", secret_id=info.id)
                api.delete(service_principal_id=principal_id, secret_id=info.id)
        made = api.create(service_principal_id=principal_id)
        value = json.dumps({"client_id": application_id, "client_secret": made.secret})
        ours = [{"Key": SECRET_ID_TAG, "Value": str(made.id)}, {"Key": CLIENT_ID_TAG, "Value": str(application_id)}]
        sm = self._secrets(ctx)
        if stored is None:
            arn = sm.create_secret(
                Name=self.secret_name(ctx), SecretString=value,
                Description=f"OAuth secret of Databricks service principal {application_id}", Tags=aws.tags(ctx, self.id) + ours,
            )["ARN"]
        else:
            # Ours, holding a value that no longer authenticates: replaced (the value first, then the tags that vouch for it).
            arn = stored[0]["ARN"]
            if stored[0].get("DeletedDate"):
                sm.restore_secret(SecretId=arn)
            sm.put_secret_value(SecretId=arn, SecretString=value)
            sm.tag_resource(SecretId=arn, Tags=ours)
        _keep(ctx, self._fact(), None)  # stored: the next create (if ever) starts a new series of attempts
        return {"secret_arn": arn, "secret_id": str(made.id)}

    def delete(self, ctx: Context, out: Outputs) -> None:
        principal_id = ctx.out_if_known(self.principal_id)
        if out.get("secret_id") and principal_id is not None:
            try:
                dbx.account(ctx).service_principal_secrets.delete(service_principal_id=str(principal_id), secret_id=out["secret_id"])
            except Exception as exc:  # noqa: BLE001  (best effort, as the workspace token's revocation)
                # Transient: retried by the engine's delete call (an adopted principal would keep the secret). The
                # principal may be gone already (its secrets with it); anything else must not block the rest.
                if ctx.retry.errors.classify(exc) is not None:
                    raise
                if not _missing(exc):
                    ctx.log.warning("could not revoke the service principal's secret", error=type(exc).__name__)
        if out.get("secret_arn"):  # (one scheduled for deletion too)
            try:
                self._secrets(ctx).delete_secret(SecretId=out["secret_arn"], ForceDeleteWithoutRecovery=True)
            except Exception as exc:
                if not aws_not_found(exc):
                    raise
        _keep(ctx, self._fact(), None)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        if out.get("secret_arn"):
            describe = self._secrets(ctx).describe_secret
            ctx.wait_gone(lambda: None if describe(SecretId=out["secret_arn"]).get("DeletedDate") else "present", what=f"secret {out['secret_arn']}")


class Group(_Principal):
    kind = "databricks.group"
    produces = ("principal_id", "display_name", "members", "adopted")

    def __init__(self, step_id: str, *, display_name: str, members: tuple[str, ...] = ()):
        super().__init__(step_id, needs=tuple(members))
        self.display_name = display_name
        self.member_ids = tuple(Ref(m, "principal_id") for m in members)

    def _fact(self) -> str:
        return f"group_members:{self.id}"

    def _added(self, ctx: Context) -> set[str]:
        """The members this step added to the group (and may therefore remove)."""
        return set((ctx.facts.get(self._fact()) or {}).get("ids") or ())

    def _wanted(self, ctx: Context) -> set[str]:
        return {str(ctx.out(m)) for m in self.member_ids}

    @staticmethod
    def _outputs(group: Any, *, adopted: bool) -> Outputs:
        members = sorted(str(m.value) for m in group.members or () if m.value is not None)
        return {"principal_id": group.id, "display_name": group.display_name, "members": members, "adopted": adopted}

    def find(self, ctx: Context) -> Outputs | None:
        api = dbx.account(ctx).groups
        found = _one(list(api.list(filter=_scim_filter(self.display_name))), self.display_name, "group")
        if found is None:
            return None
        # Listings may leave members out: read the group itself.
        return self._outputs(api.get(id=found.id), adopted=self.id not in ctx.claimed)

    def _plan(self, ctx: Context, current: set[str]) -> tuple[set[str], set[str]]:
        wanted = self._wanted(ctx)
        return wanted - current, (self._added(ctx) - wanted) & current

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        add, remove = self._plan(ctx, set(found.get("members") or ()))
        return bool(add or remove)

    def create(self, ctx: Context) -> Outputs:
        from databricks.sdk.service.iam import ComplexValue

        wanted = sorted(self._wanted(ctx))
        # Recorded first: whatever happens next, these members are the ones this step puts in.
        _keep(ctx, self._fact(), {"ids": wanted})
        group = dbx.account(ctx).groups.create(display_name=self.display_name, members=[ComplexValue(value=m) for m in wanted] or None)
        out = self._outputs(group, adopted=False)
        return {**out, "members": wanted} if not group.members else out

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        add, remove = self._plan(ctx, set(out.get("members") or ()))
        if not (add or remove):
            return out
        self._patch(ctx, out["principal_id"], add, remove)
        _keep(ctx, self._fact(), {"ids": sorted((self._added(ctx) - remove) | add)})
        group = ctx.call(lambda: dbx.account(ctx).groups.get(id=out["principal_id"]), f"{self.id} read")
        return self._outputs(group, adopted=bool(out.get("adopted")))

    def _patch(self, ctx: Context, group_id: str, add: set[str], remove: set[str]) -> None:
        from databricks.sdk.service.iam import Patch, PatchOp, PatchSchema

        ops = [Patch(op=PatchOp.ADD, path="members", value=[{"value": m} for m in sorted(add)])] if add else []
        ops += [Patch(op=PatchOp.REMOVE, path=f'members[value eq "{m}"]') for m in sorted(remove)]
        ctx.log.info("converging the group's members", added=sorted(add), removed=sorted(remove))
        # Adding a member twice or removing an absent one changes nothing: the PATCH is safe to retry.
        ctx.call(lambda: dbx.account(ctx).groups.patch(id=group_id, operations=ops, schemas=[PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]),
                 f"{self.id} members")

    def delete(self, ctx: Context, out: Outputs) -> None:
        group_id = out["principal_id"]
        try:
            if _adopted(self, ctx, out):
                # Someone else's group: leave it as it was, without the members this step put in.
                current = set(self._outputs(dbx.account(ctx).groups.get(id=group_id), adopted=True)["members"])
                added = self._added(ctx) & current
                if added:
                    self._patch(ctx, group_id, set(), added)
                ctx.log.info("leaving the group in place (adopted: this step did not create it)", principal_id=group_id)
            elif not self._in_use(ctx, out, "group"):
                dbx.account(ctx).groups.delete(id=group_id)
        except Exception as exc:
            if not _missing(exc):
                raise
        _keep(ctx, self._fact(), None)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        self._wait_gone(ctx, out, dbx.account(ctx).groups, "group")
