"""The one layer through which the sandbox changes moto: a registry of patches with a loud contract.

Each fidelity module declares its patches with `@patch(cls, name)`. The replacement is called as
`replacement(self, original, settings, *args, **kwargs)` and only for requests served by a sandbox app
(`ACTIVE` is set); moto used any other way in the same process (e.g. `mock_aws` in unit tests) stays
stock. All patched code runs under `STATE_LOCK`: werkzeug serves requests on threads and moto's backends
are not thread-safe.

The contract, checked by `verify()` when the sandbox app is made (before anything is installed):
- moto is the version the patches were written for (`MOTO_VERSION`, the pin in pyproject.toml);
- every target exists (unless the patch `adds` an action moto lacks) and has the signature the
  replacement expects: its own parameters after `original, settings`. A replacement that only passes
  `*args, **kwargs` through accepts any signature.
Otherwise the sandbox refuses to start with a `PatchContractError` naming `Class.method`, instead of
silently patching a name moto no longer calls.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import moto

from provision.errors import SandboxError
from provision.sandbox.settings import SandboxSettings

MOTO_VERSION = "5.2.5"

# Settings of the sandbox app serving the current request; None means "plain moto".
ACTIVE: contextvars.ContextVar[SandboxSettings | None] = contextvars.ContextVar("sandbox_aws", default=None)
STATE_LOCK = threading.RLock()
_INSTALL_LOCK = threading.Lock()
PATCHED_MARK = "__sandbox_patched__"
_PASS_THROUGH = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class PatchContractError(SandboxError):
    """moto is not what the sandbox's patches were written for; the message names the target."""


@dataclass(frozen=True)
class Patch:
    cls: type
    name: str
    replacement: Callable[..., Any]
    adds: bool  # the action is missing in moto; the patch supplies it

    @property
    def target(self) -> str:
        return f"{self.cls.__name__}.{self.name}"

    def expected_parameters(self) -> list[inspect.Parameter] | None:
        """moto's parameters as the replacement receives them, or None if it accepts any."""
        params = list(inspect.signature(self.replacement).parameters.values())
        rest = [params[0], *params[3:]]  # self, then what follows (original, settings)
        if all(p.kind in _PASS_THROUGH for p in rest[1:]) and len(rest) > 1:
            return None
        return rest


PATCHES: list[Patch] = []


def patch(cls: type, name: str, adds: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn` as the sandbox's replacement of `cls.name` (see the module docstring)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if any(p.cls is cls and p.name == name for p in PATCHES):
            raise ValueError(f"{cls.__name__}.{name} is patched twice; compose the rules in one replacement")
        PATCHES.append(Patch(cls, name, fn, adds))
        return fn

    return register


# --- the contract --------------------------------------------------------------------------------------


def moto_original(cls: type, name: str) -> Any:
    """moto's own `cls.name`, looking past a wrapper installed here (None if moto has no such attribute)."""
    found = cls.__dict__.get(name)
    if found is not None and getattr(found, PATCHED_MARK, False):
        if found.__sandbox_own__:  # moto defined it on cls itself: only the wrapper still holds it
            return found.__wrapped__
        return next((k.__dict__[name] for k in cls.__mro__[1:] if name in k.__dict__), None)
    return getattr(cls, name, None)


def _shape(params: list[inspect.Parameter]) -> list[tuple[str, Any, bool]]:
    return [(p.name, p.kind, p.default is not inspect.Parameter.empty) for p in params]


def _render(params: list[inspect.Parameter]) -> str:
    return "(" + ", ".join(str(p.replace(annotation=inspect.Parameter.empty)) for p in params) + ")"


def problems(patches: list[Patch] | None = None) -> list[str]:
    """What in the installed moto breaks the patches' contract: one line per target, naming it."""
    if moto.__version__ != MOTO_VERSION:
        return [
            (
                f"the sandbox's moto patches were written for moto {MOTO_VERSION}, but moto {moto.__version__} "
                f"is installed: install moto[server]=={MOTO_VERSION} (the pin in pyproject.toml)"
            )
        ]
    found = []
    for p in PATCHES if patches is None else patches:
        if p.adds:
            continue
        original = moto_original(p.cls, p.name)
        if not callable(original):
            found.append(f"{p.target} does not exist in moto {moto.__version__}")
            continue
        expected = p.expected_parameters()
        actual = list(inspect.signature(original).parameters.values())
        if expected is not None and _shape(actual) != _shape(expected):
            found.append(
                f"{p.target} has signature {_render(actual)} in moto {moto.__version__}, but the patch was "
                f"written for {_render(expected)}"
            )
    return found


def verify(patches: list[Patch] | None = None) -> None:
    """Refuse (PatchContractError) a moto whose version, targets or signatures the patches do not expect."""
    found = problems(patches)
    if found:
        raise PatchContractError(
            "the sandbox refuses to start: its patches of moto do not fit the installed moto:\n"
            + "\n".join(f"  - {line}" for line in found)
        )


# --- installation ----------------------------------------------------------------------------------------


def _gated(p: Patch, original: Callable[..., Any], own: bool) -> Callable[..., Any]:
    fn = p.replacement

    @functools.wraps(original)  # keeps a plain function, so moto still finds response actions
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        settings = ACTIVE.get()
        if settings is None:
            return original(self, *args, **kwargs)
        with STATE_LOCK:
            return fn(self, original, settings, *args, **kwargs)

    setattr(wrapper, PATCHED_MARK, True)
    wrapper.__sandbox_own__ = own  # type: ignore[attr-defined]
    return wrapper


def _not_implemented(name: str) -> Callable[..., Any]:
    """What moto does for an action it lacks, as the `original` of a patch that adds the action."""

    def missing(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"The {name} action has not been implemented")

    missing.__name__ = missing.__qualname__ = name
    return missing


def install() -> None:
    """Verify the contract, then wrap every target once (the mark also survives a reload of a module)."""
    with _INSTALL_LOCK:
        verify()
        for p in PATCHES:
            if getattr(p.cls.__dict__.get(p.name), PATCHED_MARK, False):
                continue
            original = getattr(p.cls, p.name, None) or _not_implemented(p.name)
            setattr(p.cls, p.name, _gated(p, original, own=p.name in p.cls.__dict__))
