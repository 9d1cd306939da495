"""``chave demo_portal [--port 8001]``: run the Demo Portal (``examples/demo_portal``) beside Chave.

The portal is a separate application that imports nothing from Chave: this command only finds
what it needs to start it — the ``client_id`` that ``chave seed_demo`` registered for the portal's
address, Chave's issuer URL (``CHAVE_PUBLIC_URL``) and a folder for the portal's private key
(``CHAVE_DATA_DIR/demo_portal``) — then serves it with waitress in the foreground until SIGINT or
SIGTERM. ``chave serve --with-demo-portal`` runs this command as a child process.
"""

from __future__ import annotations

import importlib.util
import sys
import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils.translation import gettext as _

from chave.commands import ChaveCommand

EXAMPLES_DIR = settings.PROJECT_DIR / "examples"
PACKAGE = "demo_portal"
DEFAULT_PORT = 8001


def portal_package():
    """The Demo Portal's package, loaded from ``examples/demo_portal`` of the source tree (it is
    not installed with Chave). Raises ``CommandError`` when the folder is missing."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    folder = EXAMPLES_DIR / PACKAGE
    if not (folder / "__init__.py").is_file():
        raise CommandError(_("The demo portal is not here (%(path)s): it comes with Chave's source tree.")
                           % {"path": folder})
    spec = importlib.util.spec_from_file_location(PACKAGE, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACKAGE]
        raise
    return module


def portal_module(name: str):
    """A module of the Demo Portal's package (``saml``, ``saml_app``), loaded with it."""
    import importlib

    return importlib.import_module(f"{portal_package().__name__}.{name}")


def portal_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve_portal(command, package, config, host: str, port: int, banner: str) -> None:
    """Serve a demo portal ``package`` in the foreground, saying ``banner`` once it listens; the
    error of a port that cannot be had as a ``CommandError``."""

    def ready(bound_port):
        command.stdout.write(banner)
        if not os.environ.get("CHAVE_SERVE_CHILD"):  # under `chave serve`, the service says it once
            command.stdout.write(_("Press Ctrl-C to stop."))
        command.stdout.flush()

    try:
        package.serve(config, host=host, port=port, ready=ready)
    except OSError as exc:
        raise CommandError(_("Cannot listen on %(host)s:%(port)s: %(error)s")
                           % {"host": host, "port": port, "error": exc.strerror or exc})
    command.stdout.write(_("Stopped."))


def database_unusable(exc: DatabaseError) -> CommandError:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return CommandError(_("The database cannot be used (%(error)s). Is it running, and was `chave migrate` "
                          "run?") % {"error": detail})


class Command(ChaveCommand):
    help = "Run the Demo Portal (a separate portal that logs citizens in with Chave) on http://HOST:PORT/."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
        parser.add_argument("--issuer", default="", help="Chave's issuer URL (default CHAVE_PUBLIC_URL)")
        parser.add_argument("--data-dir", default="", help="where the portal keeps its private key "
                                                           "(default CHAVE_DATA_DIR/demo_portal)")

    def handle(self, *args, host, port, issuer, data_dir, **options):
        if settings.CHAVE_ENV == "production":
            raise CommandError(_("The demo portal is for development only."))
        if not 1 <= port <= 65535:
            raise CommandError(_("--port must be a number from 1 to 65535."))
        base_url = portal_url(host, port)
        package = portal_package()
        relying_party = self._registration(base_url)
        issuer = (issuer or settings.CHAVE_PUBLIC_URL).rstrip("/")
        config = package.Config(issuer=issuer, client_id=relying_party.client_id, base_url=base_url,
                                data_dir=Path(data_dir) if data_dir else settings.DATA_DIR / PACKAGE)

        serve_portal(self, package, config, host, port, _(
            "Demo portal (%(name)s) at %(url)s — it logs citizens in with Chave at %(issuer)s")
            % {"name": relying_party.name, "url": f"{base_url}/", "issuer": issuer})

    def _registration(self, base_url: str):
        from chave.federation.models import RelyingParty
        from chave.public.management.commands.seed_demo import demo_portal

        try:
            relying_party = demo_portal(base_url)
        except DatabaseError as exc:
            raise database_unusable(exc) from exc
        if relying_party is None:
            raise CommandError(_("The demo portal is not registered for %(url)s: run `chave seed_demo "
                                 "--demo-portal-url %(url)s` first.") % {"url": base_url})
        if relying_party.state != RelyingParty.State.APPROVED:
            raise CommandError(_("The demo portal's registration is %(state)s: run `chave seed_demo` again to "
                                 "approve it.") % {"state": relying_party.get_state_display()})
        return relying_party
