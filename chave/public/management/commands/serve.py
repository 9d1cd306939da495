"""``chave serve``: the web service over HTTP, optionally with the delivery worker.

``--processes N`` serves with N processes (gunicorn, ``gthread`` workers of ``--threads`` threads
each: a pre-forking master that restarts a worker that dies or grows old, after
``CHAVE_SERVE_MAX_REQUESTS`` requests); one process is waitress, what ``make run`` uses. gunicorn's
master loads the application once (``--preload``: every view imported, the system checks run)
and forks its workers from it, so they share those pages instead of each holding its own copy
(:func:`static_application`); this command itself, which only supervises, checks everything but
the URLs and imports no view. The default is
one process per core in production (``CHAVE_ENV=production``, ``CHAVE_SERVE_PROCESSES`` to
change it) and one process elsewhere. The Argon2 slots of :mod:`chave.identity.pins` are shared
out between the processes, so all of them together run at most one PIN hash per core.

Static files: the WSGI application is wrapped in Django's ``StaticFilesHandler``, which serves
``STATIC_URL`` through the staticfiles finders with ``insecure=True``, so it works with DEBUG off
and needs no ``collectstatic`` (the files are read where the apps keep them, never a stale copy).
It is what ``runserver --insecure`` does: path traversal is refused (``safe_join``; our subclass
:class:`StaticFiles` answers it with 400 where Django's handler would fail with 500), but every file
goes through Python; a deployment expecting heavy traffic puts a proxy in front that serves the
output of ``chave collectstatic`` (``STATIC_ROOT``) at ``STATIC_URL``.

``--with-worker`` starts ``chave worker`` as a child process in its own process group (so that
Ctrl-C reaches only this command, which then asks the worker once to finish its current message)
and stops it when the service stops: on Ctrl-C (SIGINT), SIGTERM or SIGHUP. On Linux the worker
is also told to stop if this process dies without cleaning up (``PR_SET_PDEATHSIG``). If the
worker dies on its own, the service stops too, with a non-zero exit, rather than keep accepting
logins whose codes would never be sent.

``--with-demo-portal`` starts the Demo Portal (``chave demo_portal --port N``, a separate portal
that logs citizens in with Chave; ``chave seed_demo`` registers it) the same way: a child process
in its own process group, stopped with the service, and the service stops if it dies on its own.
``--with-demo-saml-portal`` does the same for the SAML demo portal (``chave demo_saml_portal``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.exception import response_for_exception
from django.core.checks import Tags
from django.core.management.base import CommandError
from django.core.handlers.wsgi import WSGIHandler
from django.db import DatabaseError
from django.http import Http404
from django.utils.translation import gettext as _

from chave.commands import ChaveCommand
from chave.ops.loaded import settle

WORKER_COMMAND = [sys.executable, "-m", "chave.cli", "worker"]
DEMO_PORTAL_COMMAND = [sys.executable, "-m", "chave.cli", "demo_portal"]
DEMO_SAML_PORTAL_COMMAND = [sys.executable, "-m", "chave.cli", "demo_saml_portal"]
CARD_AGENT_COMMAND = [sys.executable, "-m", "chave.cli", "card-agent"]
# How long the worker may take to finish the message it is sending before it is killed.
WORKER_STOP_SECONDS = 15
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
# Set in the environment of the processes the service runs beside itself (see _start).
SERVE_CHILD = "CHAVE_SERVE_CHILD"


@dataclass
class Child:
    """A process the service runs beside itself, and what to say about it."""

    command: list[str]
    cannot_start: str  # %(error)s
    stopped: str  # %(code)s: it stopped while the service ran
    killed: str  # %(n)d: it did not stop in time
    stopped_on_its_own: str  # %(code)s: the service's exit message
    process: subprocess.Popen | None = None
    exit_code: int | None = None
    env: dict | None = None


def worker_child() -> Child:
    return Child(
        WORKER_COMMAND,
        _("Cannot start the delivery worker: %(error)s"),
        _("The delivery worker stopped (exit code %(code)s): stopping the service."),
        _("The delivery worker did not stop in %(n)d seconds: killing it."),
        _("The delivery worker stopped on its own (exit code %(code)s), so the service stopped too."),
    )


def demo_portal_child(port: int) -> Child:
    return Child(
        [*DEMO_PORTAL_COMMAND, "--port", str(port)],
        _("Cannot start the demo portal: %(error)s"),
        _("The demo portal stopped (exit code %(code)s): stopping the service."),
        _("The demo portal did not stop in %(n)d seconds: killing it."),
        _("The demo portal stopped on its own (exit code %(code)s), so the service stopped too."),
    )


def demo_saml_portal_child(port: int) -> Child:
    return Child(
        [*DEMO_SAML_PORTAL_COMMAND, "--port", str(port)],
        _("Cannot start the SAML demo portal: %(error)s"),
        _("The SAML demo portal stopped (exit code %(code)s): stopping the service."),
        _("The SAML demo portal did not stop in %(n)d seconds: killing it."),
        _("The SAML demo portal stopped on its own (exit code %(code)s), so the service stopped too."),
    )


def card_agent_child() -> Child:
    return Child(
        CARD_AGENT_COMMAND,
        _("Cannot start the card agent: %(error)s"),
        _("The card agent stopped (exit code %(code)s): stopping the service."),
        _("The card agent did not stop in %(n)d seconds: killing it."),
        _("The card agent stopped on its own (exit code %(code)s), so the service stopped too."),
    )


def gunicorn_child(fd: int, processes: int, threads: int) -> Child:
    """gunicorn's master on the socket ``fd``: ``processes`` workers of ``threads`` threads, each
    taking its share of the cores for Argon2 (unless ``CHAVE_ARGON2_CONCURRENCY`` says)."""
    env = dict(os.environ)
    if not settings.CHAVE_ARGON2_CONCURRENCY:
        env["CHAVE_ARGON2_CONCURRENCY"] = str(max(1, -(-len(os.sched_getaffinity(0)) // processes)))
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", str(processes),
        "--worker-class", "gthread", "--threads", str(threads),
        "--timeout", str(settings.CHAVE_SERVE_TIMEOUT_SECONDS), "--graceful-timeout", str(WORKER_STOP_SECONDS),
        "--keep-alive", str(settings.CHAVE_SERVE_KEEPALIVE_SECONDS),
        "--max-requests", str(settings.CHAVE_SERVE_MAX_REQUESTS),
        "--max-requests-jitter", str(settings.CHAVE_SERVE_MAX_REQUESTS // 10),
        "--no-control-socket", "--name", "chave", "--log-level", "warning", "--preload",
        "chave.public.management.commands.serve:static_application()",
    ]
    return Child(
        command,
        _("Cannot start the web server processes: %(error)s"),
        _("The web server processes stopped (exit code %(code)s): stopping the service."),
        _("The web server processes did not stop in %(n)d seconds: killing them."),
        _("The web server processes stopped on their own (exit code %(code)s), so the service stopped too."),
        env=env,
    )


def static_application():
    """The WSGI application with its static files (what waitress serves too), for gunicorn.

    gunicorn's master calls it once (``--preload``) before it forks the workers: the URL
    configuration is checked here and the process settled (``chave.ops.loaded.settle``: every
    view imported, the database connections closed, what exists now frozen for the garbage
    collector), so each worker starts ready and keeps sharing those pages with the master."""
    from django.core.management.base import BaseCommand
    from django.core.wsgi import get_wsgi_application

    from chave.cli import enable_faulthandler

    enable_faulthandler()  # as the chave command does; the workers it forks inherit it
    application = StaticFiles(get_wsgi_application())
    BaseCommand().check(tags=[Tags.urls])  # raises SystemCheckError: gunicorn's master does not start
    settle()
    return application


class StaticFiles(StaticFilesHandler):
    """Django's handler, answering a path that climbs out of a static folder with 400, not 500."""

    def get_response(self, request):
        try:
            response = self.serve(request)
        except (Http404, SuspiciousOperation) as exc:
            return response_for_exception(request, exc)
        # The middleware does not run for static files; keep the one header that matters for them.
        response.setdefault("X-Content-Type-Options", "nosniff")
        return response


def default_processes() -> int:
    """One server process per core in production (``CHAVE_SERVE_PROCESSES`` overrides), else one."""
    if settings.CHAVE_SERVE_PROCESSES:
        return settings.CHAVE_SERVE_PROCESSES
    return len(os.sched_getaffinity(0)) if settings.IS_PRODUCTION else 1


def _die_with_parent(parent_pid: int):
    """Runs in the worker child before exec: ask Linux to SIGTERM it when this process dies."""

    def set_death_signal():
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return set_death_signal


class Command(ChaveCommand):
    help = ("Serve Chave on http://HOST:PORT/ with waitress; --with-worker also runs the delivery worker, "
            "--with-demo-portal the demo portal.")
    requires_migrations_checks = True
    # Inherited: every check but the URLs', which whoever serves runs (below, or static_application).

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
        parser.add_argument("--threads", type=int, default=8, help="request threads per process (default 8)")
        parser.add_argument("--processes", type=int, default=None,
                            help="server processes (gunicorn when more than one; default: one per core in "
                                 "production, else 1; CHAVE_SERVE_PROCESSES)")
        parser.add_argument("--with-worker", action="store_true",
                            help="also run the delivery worker (`chave worker`) and stop it on exit")
        parser.add_argument("--with-demo-portal", action="store_true",
                            help="also run the demo portal (`chave demo_portal`) and stop it on exit")
        parser.add_argument("--with-card-agent", action="store_true",
                            help="also run the Citizen Card agent (`chave card-agent`, development: the citizen "
                                 "runs it on their own computer) and stop it on exit")
        parser.add_argument("--demo-portal-port", type=int, default=8001,
                            help="the demo portal's port (default 8001; `chave seed_demo --demo-portal-url` "
                                 "registers it)")
        parser.add_argument("--with-demo-saml-portal", action="store_true",
                            help="also run the SAML demo portal (`chave demo_saml_portal`) and stop it on exit")
        parser.add_argument("--demo-saml-portal-port", type=int, default=8002,
                            help="the SAML demo portal's port (default 8002; `chave seed_demo "
                                 "--demo-saml-portal-url` registers it)")

    def check_migrations(self):
        try:
            super().check_migrations()
        except DatabaseError as exc:
            self.stderr.write(_("The database cannot be used yet (%(error)s): pages will fail until it can.")
                              % {"error": (str(exc).strip().splitlines() or [type(exc).__name__])[0]})

    def handle(self, *args, host, port, threads, with_worker, with_demo_portal, demo_portal_port,
               with_card_agent=False, processes=None, with_demo_saml_portal=False, demo_saml_portal_port=8002,
               **options):
        if not 0 <= port <= 65535:
            raise CommandError(_("--port must be a number from 0 to 65535."))
        if threads < 1:
            raise CommandError(_("--threads must be at least 1."))
        processes = default_processes() if processes is None else processes
        if processes < 1:
            raise CommandError(_("--processes must be at least 1."))
        if with_demo_portal and not 1 <= demo_portal_port <= 65535:
            raise CommandError(_("--demo-portal-port must be a number from 1 to 65535."))
        if with_demo_saml_portal and not 1 <= demo_saml_portal_port <= 65535:
            raise CommandError(_("--demo-saml-portal-port must be a number from 1 to 65535."))
        self.saml_portal, self.saml_portal_port = None, demo_saml_portal_port
        import waitress

        if processes == 1:  # this process serves: it checks the URL configuration too
            self.check(tags=[Tags.urls])
        application = StaticFiles(WSGIHandler())  # Django is already set up
        self.stopping = False
        self.children: list[Child] = []
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop_signal)
        try:
            try:
                # The children are started before waitress starts its threads: forking a threaded
                # process is what preexec_fn must avoid.
                worker = self._start(worker_child()) if with_worker else None
                portal = self._start(demo_portal_child(demo_portal_port)) if with_demo_portal else None
                if with_demo_saml_portal:
                    self.saml_portal = self._start(demo_saml_portal_child(demo_saml_portal_port))
                agent = self._start(card_agent_child()) if with_card_agent else None
                if processes > 1:
                    self._run_gunicorn(host, port, threads, processes, worker, portal, demo_portal_port, agent)
                else:
                    try:
                        # Behind proxies (CHAVE_TRUSTED_PROXIES > 0) Chave reads X-Forwarded-For itself,
                        # counting the trusted hops (login.services.client_ip): waitress must pass the
                        # header on rather than strip it as an untrusted proxy's, or every citizen would
                        # share the proxy's address and its per-address throttles.
                        server = waitress.create_server(application, host=host, port=port, threads=threads,
                                                        ident="chave",
                                                        clear_untrusted_proxy_headers=not settings.CHAVE_TRUSTED_PROXIES)
                    except (OSError, ValueError) as exc:
                        raise self._cannot_listen(host, port, exc)
                    try:
                        settle()  # as gunicorn's master does before it forks (static_application)
                        self._print_banner(host, server.effective_port, worker, portal, demo_portal_port, agent)
                        server.run()  # returns when a stop signal raises SystemExit in this thread
                    finally:
                        server.close()
            except SystemExit:
                pass  # a stop signal that came before the server was running
        finally:
            self.stopping = True
            for sig in STOP_SIGNALS:  # a second Ctrl-C must not cut the children's shutdown short
                signal.signal(sig, signal.SIG_IGN)
            try:
                for child in reversed(self.children):
                    self._stop(child)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        for child in self.children:
            if child.exit_code is not None:
                raise CommandError(child.stopped_on_its_own % {"code": child.exit_code})
        self.stdout.write(_("Stopped."))

    @staticmethod
    def _cannot_listen(host, port, exc) -> CommandError:
        error = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return CommandError(_("Cannot listen on %(host)s:%(port)s: %(error)s")
                            % {"host": host, "port": port, "error": error})

    def _run_gunicorn(self, host, port, threads, processes, worker, portal, demo_portal_port, agent):
        """Serve with a gunicorn master (a child process like the worker) and ``processes`` workers
        until a stop signal.

        The listening socket is bound here first, so a busy port is the same clear error as with
        waitress and port 0 names its port in the banner; gunicorn inherits it (``fd://``).
        Connections that arrive before its workers are up wait in the socket's backlog.
        """
        import socket

        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(2048)
        except OSError as exc:
            raise self._cannot_listen(host, port, exc)
        effective_port = listener.getsockname()[1]
        try:
            server = self._start(gunicorn_child(listener.fileno(), processes, threads), pass_fds=(listener.fileno(),))
        finally:
            listener.close()  # gunicorn holds it now
        self._print_banner(host, effective_port, worker, portal, demo_portal_port, agent,
                           server=server, processes=processes, threads=threads)
        while True:
            signal.pause()  # a stop signal raises SystemExit here

    def _on_stop_signal(self, signum, frame):
        if not self.stopping:
            self.stopping = True
            raise SystemExit(0)

    # --- the worker and the demo portal ------------------------------------------------------------

    def _start(self, child: Child, pass_fds: tuple[int, ...] = ()) -> Child:
        # A child says nothing of Ctrl-C (SERVE_CHILD): the service says it once, for all of them.
        kwargs = {"pass_fds": pass_fds, "env": {**(child.env or os.environ), SERVE_CHILD: "1"}}
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _die_with_parent(os.getpid())
        try:
            child.process = subprocess.Popen(child.command, process_group=0, **kwargs)
        except OSError as exc:
            raise CommandError(child.cannot_start % {"error": exc})
        self.children.append(child)
        threading.Thread(target=self._watch, args=(child,), name="chave-child-watch", daemon=True).start()
        return child

    def _watch(self, child: Child) -> None:
        code = child.process.wait()
        if not self.stopping:
            child.exit_code = code
            self.stderr.write(child.stopped % {"code": code})
            os.kill(os.getpid(), signal.SIGTERM)

    def _stop(self, child: Child) -> None:
        process = child.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=WORKER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.stderr.write(child.killed % {"n": WORKER_STOP_SECONDS})
                process.kill()
                process.wait()

    # --- what to try ----------------------------------------------------------------------

    def _print_banner(self, host: str, port: int, worker: Child | None, portal: Child | None,
                      demo_portal_port: int, agent: Child | None = None, server: Child | None = None,
                      processes: int = 1, threads: int = 0) -> None:
        shown_host = f"[{host}]" if ":" in host else host
        base = f"http://{shown_host}:{port}"
        w = self.stdout.write
        w(_("Chave is running at %(url)s") % {"url": f"{base}/"})
        w(_("  Sign in:          %(url)s") % {"url": f"{base}/login/"})
        if settings.CHAVE_ENV == "dev":
            w(_("  Messages (codes): %(url)s") % {"url": f"{base}/dev/outbox/"})
            w(_("    or in a terminal: %(command)s") % {"command": "chave outbox --to <number-or-email> --last --json"})
            demo = self._demo_line()
            if demo:
                w(demo)
        if server is not None:
            w(_("  Web processes:    %(processes)d (gunicorn, process %(pid)s), %(threads)d threads each")
              % {"processes": processes, "pid": server.process.pid, "threads": threads})
        if worker is not None:
            w(_("  Delivery worker:  running (process %(pid)s)") % {"pid": worker.process.pid})
        else:
            w(_("  Delivery worker:  not started here: run `chave worker` too, or use --with-worker, "
                "or no message (and no code) is sent."))
        if portal is not None:
            from chave.oidc.management.commands.demo_portal import portal_url

            w(_("  Demo portal:      %(url)s (process %(pid)s): choose \"Log in with Chave\"")
              % {"url": portal_url("127.0.0.1", demo_portal_port) + "/", "pid": portal.process.pid})
        saml_portal = getattr(self, "saml_portal", None)
        if saml_portal is not None:
            from chave.oidc.management.commands.demo_portal import portal_url

            w(_("  SAML demo portal: %(url)s (process %(pid)s): pick a level, then \"Log in with Chave\"")
              % {"url": portal_url("127.0.0.1", self.saml_portal_port) + "/", "pid": saml_portal.process.pid})
        if agent is not None:
            w(_("  Card agent:       http://127.0.0.1:%(port)s/ (process %(pid)s): choose \"Sign in with the "
                "Citizen Card\"") % {"port": settings.CHAVE_CARD_AGENT_PORT, "pid": agent.process.pid})
        w(_("Press Ctrl-C to stop."))
        self.stdout.flush()

    def _demo_line(self) -> str:
        from .seed_demo import DEMO_PHONE_TYPED, DEMO_PIN, demo_citizen

        try:
            if demo_citizen() is None:
                return _("  Demo citizen:     none yet: run `chave seed_demo`")
        except DatabaseError:
            return ""
        return _("  Demo citizen:     mobile %(phone)s, PIN %(pin)s") % {"phone": DEMO_PHONE_TYPED, "pin": DEMO_PIN}
