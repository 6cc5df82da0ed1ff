"""Read a Terraform state (format version 4) into flat resource instances, for ids and names only.

Format 4 (Terraform 0.12 and later) is one JSON object: `version`, `terraform_version`, `serial`, `lineage`,
`outputs` and `resources`. Each resource has `mode` (managed or data), `type`, `name`, an optional `module`
(`module.vpc`, `module.a["x"].module.b`) and `instances`, each with an optional `index_key` (an int for
`count`, a string for `for_each`) and its `attributes`. Only managed resources are kept: data sources name
what someone else owns.

Secrets never leave this module: every attribute path listed in an instance's `sensitive_attributes`, and
every key that holds a credential (a `databricks_token`'s value, a workspace's `token` block value), is
dropped when the state is read, so nothing downstream (the mapping, the report, our state file) can see it.
The Terraform state file is only read, never written.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import UsageError

SUPPORTED_VERSION = 4
# Keys whose values are credentials wherever they appear (the providers also mark most of them sensitive).
SECRET_KEYS = frozenset({"token_value", "password", "client_secret", "secret", "secret_string", "private_key", "value"})
# Types whose every attribute but these is dropped (a token is only ever an id to us).
ID_ONLY = {"databricks_token": ("id", "token_id", "comment")}


@dataclass(frozen=True)
class Instance:
    """One resource instance of the Terraform state: `address` as Terraform prints it."""

    module: str  # "" for the root module
    type: str
    name: str
    index_key: int | str | None
    attributes: dict[str, Any] = field(hash=False, compare=False)

    @property
    def address(self) -> str:
        base = f"{self.module}.{self.type}.{self.name}" if self.module else f"{self.type}.{self.name}"
        if self.index_key is None:
            return base
        return f"{base}[{json.dumps(self.index_key)}]"

    @property
    def id(self) -> str | None:
        value = self.attributes.get("id")
        return str(value) if value is not None else None

    def get(self, key: str, default: Any = None) -> Any:
        return self.attributes.get(key, default)


@dataclass
class TerraformState:
    source: str
    terraform_version: str | None
    serial: int | None
    lineage: str | None
    instances: list[Instance]

    def of_type(self, *types: str) -> list[Instance]:
        return [i for i in self.instances if i.type in types]


def _path_key(step: Any) -> Any:
    """The key of one step of a sensitive path: a `get_attr` names an attribute; an `index` holds a cty value,
    `{"value": 0, "type": "number"}` (a list element) or `{"value": "k", "type": "string"}` (a map key)."""
    if not isinstance(step, dict):
        return None
    key = step.get("value")
    if isinstance(key, dict):
        key = key.get("value")
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    return key


def _strip_paths(attributes: dict[str, Any], paths: list[Any]) -> None:
    """Drop each sensitive path (a list of {"type": "get_attr", "value": key} / {"type": "index", "value": {...}} steps).
    A path that cannot be followed to its end drops the whole top-level attribute it starts at: a secret is
    never kept because its path was not understood."""
    for path in paths or []:
        if not isinstance(path, list) or not path:
            continue
        keys = [_path_key(step) for step in path]
        node: Any = attributes
        for key in keys[:-1]:
            if isinstance(node, dict) and key in node or isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                node = node[key]
            else:
                node = None
                break
        last = keys[-1]
        if isinstance(node, dict) and last in node:
            node.pop(last)
        elif isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
            node[last] = None
        elif isinstance(keys[0], str):
            attributes.pop(keys[0], None)


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def parse(data: Any, source: str) -> TerraformState:
    """The managed resource instances of a version-4 state; UsageError (exit 2) for anything else."""
    if not isinstance(data, dict) or "version" not in data:
        raise UsageError(f"{source} is not a Terraform state file (no \"version\")")
    if data["version"] != SUPPORTED_VERSION:
        raise UsageError(
            f"{source} is a Terraform state of format version {data['version']!r}; provision imports version {SUPPORTED_VERSION} "
            "(Terraform 0.12 and later): run `terraform state pull` with a current Terraform"
        )
    instances: list[Instance] = []
    for resource in data.get("resources") or []:
        if not isinstance(resource, dict) or resource.get("mode", "managed") != "managed":
            continue
        rtype, name, module = resource.get("type"), resource.get("name"), resource.get("module") or ""
        if not isinstance(rtype, str) or not isinstance(name, str):
            raise UsageError(f"{source}: a resource without type or name")
        for raw in resource.get("instances") or []:
            attributes = copy.deepcopy(dict(raw.get("attributes") or {}))  # the caller's data is left as it was
            _strip_paths(attributes, raw.get("sensitive_attributes") or [])
            attributes = _scrub(attributes)
            if rtype in ID_ONLY:
                attributes = {k: v for k, v in attributes.items() if k in ID_ONLY[rtype]}
            instances.append(Instance(module, rtype, name, raw.get("index_key"), attributes))
    return TerraformState(source, data.get("terraform_version"), data.get("serial"), data.get("lineage"), instances)


def read(location: str, s3_client: Callable[[], Any] | None = None) -> TerraformState:
    """A local path or s3://bucket/key (read with `s3_client()`, a boto3 S3 client of the run's target)."""
    if location.startswith("s3://"):
        bucket, _, key = location[len("s3://"):].partition("/")
        if not bucket or not key:
            raise UsageError(f"--terraform-state {location}: expected s3://bucket/key")
        if s3_client is None:
            raise UsageError("an s3:// Terraform state needs an AWS client")
        try:
            body = s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "NoSuchBucket", "404", "AccessDenied", "403"):
                raise UsageError(f"cannot read the Terraform state {location}: {code}") from None
            raise
        text = body.decode("utf-8")
    else:
        path = Path(location)
        try:
            text = path.read_text()
        except OSError as exc:
            raise UsageError(f"cannot read the Terraform state {location}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{location} is not JSON: {exc}") from None
    return parse(data, location)
