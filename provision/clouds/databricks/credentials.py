"""The Databricks half of the credentials preflight: one authenticated Account API call before any state is
written, so missing or refused credentials are a CredentialsError (exit 2) naming how to authenticate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provision.errors import CredentialsError

Call = Callable[[Callable[[], Any], str], Any]

HOW = (
    "authenticate as an account admin: an account service principal's OAuth secret in DATABRICKS_CLIENT_ID and "
    "DATABRICKS_CLIENT_SECRET, or a profile of ~/.databrickscfg (DATABRICKS_CONFIG_FILE) named in databricks.profile "
    "or DATABRICKS_CONFIG_PROFILE"
)


def check(spec: Any, clients: Any, call: Call) -> str:
    if clients.signs_in_with_sandbox_token:
        # The daemon just answered with this token; proving it again would cost the SDK's import up front (about two
        # seconds) that the run otherwise overlaps with its first AWS steps.
        return f"Databricks sandbox account {clients.account_id}"
    from databricks.sdk.errors import PermissionDenied, Unauthenticated

    looked = f"profile {clients.profile!r} of ~/.databrickscfg" if clients.profile else "DATABRICKS_* environment variables, ~/.databrickscfg"
    try:
        # Making the client resolves the credentials (a ValueError when none are found); listing proves them.
        call(lambda: list(clients.account.workspaces.list()), "credentials check (account workspaces)")
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CredentialsError("databricks", f"no Databricks account credentials found ({first}); looked in {looked}; {HOW}") from None
    except (Unauthenticated, PermissionDenied) as exc:
        raise CredentialsError(
            "databricks", f"the Databricks account {clients.account_id} refused the credentials from {looked} ({exc}); {HOW}"
        ) from None
    return f"Databricks account {clients.account_id}"
