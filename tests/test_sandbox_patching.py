"""The sandbox's contract with moto (provision/clouds/aws/sandbox/patching.py): it refuses to start, naming
`Class.method`, against a moto in which a patched method was renamed or changed its signature, or that is
not the version the patches were written for; and against today's pinned moto every target checks out.

Each refusal goes through make_aws_app, the function the sandbox server builds its AWS app with.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import moto
import pytest
from moto.ec2.models import EC2Backend

from provision.app import server
from provision.clouds.aws.sandbox import PatchContractError, make_aws_app, patching
from provision.errors import SandboxError
from provision.sandbox.settings import SandboxSettings

TARGETS = [p for p in patching.PATCHES if not p.adds]
# Patches dropped because provision never makes these calls (design review D2).
DROPPED = {
    "EC2Backend.enable_transit_gateway_route_table_propagation",
    "EC2Backend.disable_transit_gateway_route_table_propagation",
    "EC2Backend.disassociate_transit_gateway_route_table",
    "EC2Backend.describe_transit_gateway_attachments",
}


def _owner(cls: type, name: str) -> type:
    """The class whose own attribute moto resolves `cls.name` to, looking past a wrapper the sandbox installed."""
    for klass in cls.__mro__:
        found = klass.__dict__.get(name)
        if found is not None and not getattr(found, patching.PATCHED_MARK, False):
            return klass
    return cls  # moto defined it on cls itself: only the installed wrapper holds it


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.target)
def test_renamed_target_refuses_to_start(monkeypatch: pytest.MonkeyPatch, target: patching.Patch) -> None:
    owner = _owner(target.cls, target.name)
    original = owner.__dict__[target.name]
    monkeypatch.delattr(owner, target.name)
    monkeypatch.setattr(owner, f"{target.name}_renamed", original, raising=False)
    with pytest.raises(PatchContractError) as refused:
        make_aws_app(SandboxSettings())
    assert f"{target.target} does not exist in moto {moto.__version__}" in str(refused.value)


def test_renamed_method_stops_the_sandbox_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The server process itself refuses before it listens or writes its info file."""
    owner = _owner(EC2Backend, "delete_subnet")
    monkeypatch.setattr(owner, "remove_subnet", owner.__dict__["delete_subnet"], raising=False)
    monkeypatch.delattr(owner, "delete_subnet")
    with pytest.raises(SandboxError, match=r"EC2Backend\.delete_subnet does not exist"):
        server.serve(tmp_path, {})
    assert not (tmp_path / server.INFO_FILE).exists()


def test_changed_signature_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    owner = _owner(EC2Backend, "delete_subnet")

    def delete_subnet(self: Any, subnet_id: str, dry_run: bool) -> None:  # a new required parameter
        raise AssertionError("never called: the sandbox must refuse first")

    monkeypatch.setattr(owner, "delete_subnet", delete_subnet)
    with pytest.raises(PatchContractError) as refused:
        make_aws_app(SandboxSettings())
    message = str(refused.value)
    assert "EC2Backend.delete_subnet has signature (self, subnet_id, dry_run)" in message
    assert "written for (self, subnet_id)" in message


@pytest.mark.parametrize("target", [p for p in TARGETS if p.expected_parameters() is not None], ids=lambda p: p.target)
def test_every_signature_is_checked(monkeypatch: pytest.MonkeyPatch, target: patching.Patch) -> None:
    owner = _owner(target.cls, target.name)
    original = owner.__dict__[target.name]
    params = list(inspect.signature(original).parameters.values())

    def changed(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
        raise AssertionError

    extra = inspect.Parameter("sandbox_extra", inspect.Parameter.KEYWORD_ONLY)
    changed.__signature__ = inspect.Signature([*params, extra])  # type: ignore[attr-defined]
    monkeypatch.setattr(owner, target.name, changed)
    with pytest.raises(PatchContractError, match=rf"{target.target} has signature .*sandbox_extra"):
        patching.verify()


def test_other_moto_version_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(PatchContractError, match=r"written for moto 5\.2\.5, but moto 5\.3\.0 is installed"):
        make_aws_app(SandboxSettings())


def test_every_patch_target_exists_in_the_pinned_moto() -> None:
    assert moto.__version__ == patching.MOTO_VERSION
    assert patching.problems() == []
    patching.verify()  # what make_aws_app runs first
    make_aws_app(SandboxSettings())
    targets = {p.target for p in patching.PATCHES}
    assert len(targets) == len(patching.PATCHES) == 63  # one patch per attribute
    assert not targets & DROPPED
    for p in patching.PATCHES:
        installed = p.cls.__dict__[p.name]
        assert getattr(installed, patching.PATCHED_MARK, False), p.target


def test_a_target_patched_twice_is_refused_at_registration() -> None:
    with pytest.raises(ValueError, match="EC2Backend.delete_subnet is patched twice"):
        patching.patch(EC2Backend, "delete_subnet")(lambda self, original, settings, subnet_id: None)
