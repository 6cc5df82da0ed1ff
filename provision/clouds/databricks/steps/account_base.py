"""What every Account API object step shares: found by its deterministic name, checked to point at this
deployment's resources before it is adopted, and (for the objects Databricks cannot change) replaced by retiring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from provision.clouds.databricks import context as dbx
from provision.errors import OwnershipConflict
from provision.orchestrator.step import Context, Outputs, Step


def _check_references(what: str, name: str, references: list[tuple[str, Any, Any]]) -> None:
    """An object with our name that points at someone else's resources is not ours to adopt (or delete)."""
    for field_name, actual, expected in references:
        if expected is not None and actual != expected:
            raise OwnershipConflict(
                f"Databricks {what} {name!r} exists but its {field_name} is {actual!r}, not this deployment's {expected!r}; "
                "rename the deployment or delete that object"
            )


def _by_name(items: list[Any], attribute: str, name: str, what: str) -> Any | None:
    matches = [i for i in items if getattr(i, attribute, None) == name]
    if len(matches) > 1:
        raise OwnershipConflict(f"{len(matches)} Databricks {what}s are named {name!r}; expected one. Delete the extras.")
    return matches[0] if matches else None


class _AccountObject(Step):
    """An Account API object found by its deterministic name `<deployment>-<suffix>`."""

    api: ClassVar[str]  # the AccountClient attribute: credentials, storage, networks
    name_field: ClassVar[str]
    id_field: ClassVar[str]
    suffix: str
    what: ClassVar[str]

    def name(self, ctx: Context) -> str:
        return ctx.name_of(self.id, f"{ctx.deployment}-{self.suffix}")

    def _api(self, ctx: Context) -> Any:
        return getattr(dbx.account(ctx), self.api)

    def _outputs(self, obj: Any) -> Outputs:
        return {self.id_field: getattr(obj, self.id_field), "name": getattr(obj, self.name_field)}

    def find(self, ctx: Context) -> Outputs | None:
        found = _by_name(list(self._api(ctx).list()), self.name_field, self.name(ctx), self.what)
        if found is None:
            return None
        _check_references(self.what, self.name(ctx), self.references(ctx, found))
        return self._outputs(found)

    def references(self, ctx: Context, obj: Any) -> list[tuple[str, Any, Any]]:
        """(field, value on the object, value we expect or None if not known yet)."""
        return []

    def create(self, ctx: Context) -> Outputs:
        return self._outputs(self._create(ctx))

    def _create(self, ctx: Context) -> Any:
        raise NotImplementedError

    def delete(self, ctx: Context, out: Outputs) -> None:
        self._api(ctx).delete(**{self.id_field: out[self.id_field]})

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        object_id = out[self.id_field]
        ctx.wait_gone(lambda: self._api(ctx).get(**{self.id_field: object_id}), what=f"{self.what} {object_id}")


def _current(step: _AccountObject, ctx: Context, key: Callable[[Any], Any], wanted: Any, field_name: str) -> Any | None:
    """Find an immutable Account API object of the step's name whose `key` is `wanted`.

    An object of our name with another value is ours superseded when it is what the state recorded for the step
    (the endpoint behind it was replaced): it is retired, to be deleted once nothing uses it, and the step then
    creates the new one. Any other object of our name with another value is someone else's."""
    name = step.name(ctx)
    retired = {out[step.id_field] for out in ctx.retired(step.id)}
    items = [i for i in step._api(ctx).list() if getattr(i, step.name_field, None) == name and getattr(i, step.id_field) not in retired]
    if wanted is None:  # plan or teardown, before (or after) the object it points at exists
        previous = ctx.previous(step.id).get(step.id_field)
        items = [i for i in items if getattr(i, step.id_field) == previous] or items
        return _by_name(items, step.name_field, name, step.what)
    current = [i for i in items if key(i) == wanted]
    for other in (i for i in items if key(i) != wanted):
        if getattr(other, step.id_field) != ctx.previous(step.id).get(step.id_field):
            _check_references(step.what, name, [(field_name, key(other), wanted)])
        ctx.log.warning(f"{step.what} points at a replaced resource; retiring it and creating a new one",
                        old_id=getattr(other, step.id_field), old=key(other), new=wanted)
        ctx.retire(step.id, step._outputs(other))
    return _by_name(current, step.name_field, name, step.what)
