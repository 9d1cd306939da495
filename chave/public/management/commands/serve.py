"""``chave serve``: the web service over HTTP with waitress, optionally with the delivery worker.

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
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.exception import response_for_exception
from django.core.management.base import BaseCommand, CommandError
from django.core.handlers.wsgi import WSGIHandler
from django.db import DatabaseError
from django.http import Http404
from django.utils.translation import gettext as _

WORKER_COMMAND = [sys.executable, "-m", "chave.cli", "worker"]
# How long the worker may take to finish the message it is sending before it is killed.
WORKER_STOP_SECONDS = 15
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


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


class Command(BaseCommand):
    help = "Serve Chave on http://HOST:PORT/ with waitress; --with-worker also runs the delivery worker."
    requires_migrations_checks = True

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
        parser.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
        parser.add_argument("--with-worker", action="store_true",
                            help="also run the delivery worker (`chave worker`) and stop it on exit")

    def check_migrations(self):
        try:
            super().check_migrations()
        except DatabaseError as exc:
            self.stderr.write(_("The database cannot be used yet (%(error)s): pages will fail until it can.")
                              % {"error": (str(exc).strip().splitlines() or [type(exc).__name__])[0]})

    def handle(self, *args, host, port, threads, with_worker, **options):
        if not 0 <= port <= 65535:
            raise CommandError(_("--port must be a number from 0 to 65535."))
        if threads < 1:
            raise CommandError(_("--threads must be at least 1."))
        import waitress

        application = StaticFiles(WSGIHandler())  # Django is already set up
        self.stopping = False
        self.worker_exit: int | None = None
        worker = None
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop_signal)
        try:
            try:
                # The worker is started before waitress starts its threads: forking a threaded
                # process is what preexec_fn must avoid.
                if with_worker:
                    worker = self._start_worker()
                try:
                    server = waitress.create_server(application, host=host, port=port, threads=threads,
                                                    ident="chave")
                except (OSError, ValueError) as exc:
                    error = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                    raise CommandError(_("Cannot listen on %(host)s:%(port)s: %(error)s")
                                       % {"host": host, "port": port, "error": error})
                try:
                    self._print_banner(host, server.effective_port, worker)
                    server.run()  # returns when a stop signal raises SystemExit in this thread
                finally:
                    server.close()
            except SystemExit:
                pass  # a stop signal that came before the server was running
        finally:
            self.stopping = True
            for sig in STOP_SIGNALS:  # a second Ctrl-C must not cut the worker's shutdown short
                signal.signal(sig, signal.SIG_IGN)
            try:
                if worker is not None:
                    self._stop_worker(worker)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        if self.worker_exit is not None:
            raise CommandError(_("The delivery worker stopped on its own (exit code %(code)s), so the service "
                                 "stopped too.") % {"code": self.worker_exit})
        self.stdout.write(_("Stopped."))

    def _on_stop_signal(self, signum, frame):
        if not self.stopping:
            self.stopping = True
            raise SystemExit(0)

    # --- the worker -------------------------------------------------------------------------

    def _start_worker(self) -> subprocess.Popen:
        kwargs = {}
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _die_with_parent(os.getpid())
        try:
            worker = subprocess.Popen(WORKER_COMMAND, process_group=0, **kwargs)
        except OSError as exc:
            raise CommandError(_("Cannot start the delivery worker: %(error)s") % {"error": exc})
        threading.Thread(target=self._watch_worker, args=(worker,), name="chave-worker-watch", daemon=True).start()
        return worker

    def _watch_worker(self, worker: subprocess.Popen) -> None:
        code = worker.wait()
        if not self.stopping:
            self.worker_exit = code
            self.stderr.write(_("The delivery worker stopped (exit code %(code)s): stopping the service.")
                              % {"code": code})
            os.kill(os.getpid(), signal.SIGTERM)

    def _stop_worker(self, worker: subprocess.Popen) -> None:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=WORKER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.stderr.write(_("The delivery worker did not stop in %(n)d seconds: killing it.")
                                  % {"n": WORKER_STOP_SECONDS})
                worker.kill()
                worker.wait()

    # --- what to try ----------------------------------------------------------------------

    def _print_banner(self, host: str, port: int, worker: subprocess.Popen | None) -> None:
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
        if worker is not None:
            w(_("  Delivery worker:  running (process %(pid)s)") % {"pid": worker.pid})
        else:
            w(_("  Delivery worker:  not started here: run `chave worker` too, or use --with-worker, "
                "or no message (and no code) is sent."))
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
