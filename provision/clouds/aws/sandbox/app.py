"""The sandbox's AWS app: moto's server WSGI app (as ThreadedMotoServer builds it) with every fidelity
family installed, refusing to start on a moto the patches were not written for (patching.verify)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    create_backend_app,
)

# Every fidelity family, imported here for its patches, advance hooks and inventory listings (listing.py;
# nothing registers itself through an import cycle). Hook order does not matter: each family times its own
# resources, and lingering network interfaces are released after all of them (lifecycle.advance). The
# inventory lists kinds in the order these imports register them. Plain module imports: `from package
# import module` would count as importing the package (tools/import_graph.py).
import provision.clouds.aws.sandbox.dependencies as dependencies  # noqa: PLR0402
import provision.clouds.aws.sandbox.endpoints as endpoints  # noqa: PLR0402
import provision.clouds.aws.sandbox.flowlogs as flowlogs  # noqa: PLR0402
import provision.clouds.aws.sandbox.guardrails as guardrails  # noqa: PLR0402
import provision.clouds.aws.sandbox.iam as iam  # noqa: PLR0402
import provision.clouds.aws.sandbox.idempotency as idempotency  # noqa: PLR0402
import provision.clouds.aws.sandbox.kms as kms  # noqa: PLR0402
import provision.clouds.aws.sandbox.lifecycle as lifecycle  # noqa: PLR0402
import provision.clouds.aws.sandbox.nat as nat  # noqa: PLR0402
import provision.clouds.aws.sandbox.network_firewall as network_firewall  # noqa: PLR0402
import provision.clouds.aws.sandbox.patching as patching  # noqa: PLR0402
import provision.clouds.aws.sandbox.s3 as s3  # noqa: PLR0402
import provision.clouds.aws.sandbox.secretsmanager as secretsmanager  # noqa: PLR0402
import provision.clouds.aws.sandbox.transit as transit  # noqa: PLR0402
import provision.clouds.aws.sandbox.transit_routes as transit_routes  # noqa: PLR0402
from provision.sandbox.settings import SandboxSettings

FAMILIES = (
    lifecycle, idempotency, nat, dependencies, endpoints, transit, transit_routes, network_firewall, s3, iam, secretsmanager,
    kms, flowlogs, guardrails,
)


class SandboxAWSApp:
    """Thin WSGI middleware: marks requests as sandbox requests so the patches apply to them."""

    def __init__(self, moto_app: DomainDispatcherApplication, settings: SandboxSettings) -> None:
        self.moto_app = moto_app
        self.settings = settings

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        token = patching.ACTIVE.set(self.settings)
        try:
            # moto builds the whole body inside this call, so resetting afterwards is safe.
            return self.moto_app(environ, start_response)
        finally:
            patching.ACTIVE.reset(token)


def make_aws_app(settings: SandboxSettings) -> SandboxAWSApp:
    """The sandbox's AWS WSGI app. Raises patching.PatchContractError (naming Class.method) when moto's
    version or a patch target is not what the patches were written for."""
    patching.install()
    return SandboxAWSApp(DomainDispatcherApplication(create_backend_app), settings)
