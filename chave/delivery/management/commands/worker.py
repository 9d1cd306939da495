"""``chave worker``: the delivery worker (django-tasks' database worker on every queue).

It outlives the database: when PostgreSQL restarts (or cannot be reached at start), the worker
says so on stderr and tries again after a growing wait (1 s up to 30 s) instead of exiting, so a
``chave serve --with-worker`` keeps running and recovers by itself. At every (re)start and then
every ``delivery_sweep_seconds`` it closes what dead workers left behind
(:func:`chave.delivery.services.recover_stalled`). ``--batch`` still exits with an error.

An idle worker waits on the doorbell (:mod:`chave.delivery.doorbell`: PostgreSQL ``LISTEN``, or a
local socket with SQLite) for at most ``--interval`` seconds: a message queued for now is picked up
as soon as its transaction commits, not at the next look. The tasks themselves are claimed and run
by django-tasks' own database worker (``Worker.run`` in batch mode: every task that is due, then
back to the doorbell).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import threading
import time

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, InterfaceError, OperationalError, connection, connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django.utils.crypto import get_random_string
from django.utils.translation import gettext as _
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult

from chave import policy
from chave.commands import ChaveCommand
from chave.delivery import doorbell, providers, services

log = logging.getLogger("chave.delivery")
RETRY_MAX_SECONDS = 30
# django-tasks' worker waits this long before trying again when SQLite's write lock is taken.
_LOCKED_RETRY_SECONDS = 0.05


class _EveryRun(logging.Filter):
    """Each return to the doorbell ends a batch run of django-tasks' worker: its start and end
    lines are not news (the worker logs its start once itself)."""

    def filter(self, record):
        return not str(record.msg).startswith(("Starting worker worker_id=%s queues=%s", "No more tasks"))


def _sweep() -> None:
    from chave.ops import expiry

    try:
        services.recover_stalled()
        expiry.forget_expired()  # throttle events and replay caches that no longer count
    except (OperationalError, InterfaceError) as exc:
        log.warning("delivery sweep skipped: database unavailable (%s)", exc.__class__.__name__)
    finally:
        connections.close_all()


class _Sweeper(threading.Thread):
    """Runs the sweep every ``delivery_sweep_seconds`` beside the worker loop (its own connection)."""

    def __init__(self):
        super().__init__(name="delivery-sweep", daemon=True)
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(policy.get("delivery_sweep_seconds")):
            _sweep()


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(_("give a number of seconds, 0 or more (such as 1 or 0.5)"))
    return value


def _max_tasks(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(_("give a whole number, 1 or more"))
    return int(text)


def _worker_id(text: str) -> str:
    if not text or len(text) > 64:
        raise argparse.ArgumentTypeError(_("give a name of 1 to 64 characters"))
    return text


class Command(ChaveCommand):
    help = (
        "Run the delivery worker: it sends the queued messages (security codes, notices) through the "
        "provider configured for each channel, retrying with backoff while a gateway fails. It is "
        "django-tasks' database worker (db_worker) working on every queue. Run one or more beside the web "
        "service; Ctrl+C stops it after the message being sent. Examples: `chave worker` (keep running); "
        "`chave worker --batch` (send what is due now, then exit: tests, cron); `chave worker --interval 5`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch", action="store_true",
                            help="Send every message that is due now, then exit.")
        parser.add_argument("--interval", type=_interval, default=1.0,
                            help="Seconds an idle worker waits before looking for work again (default: 1).")
        parser.add_argument("--max-tasks", type=_max_tasks, default=None,
                            help="Exit after running this many tasks.")
        parser.add_argument("--queue-name", default="*",
                            help="Queues to work on, comma-separated (default: '*', every queue).")
        parser.add_argument("--worker-id", type=_worker_id, default=None,
                            help="A name for this worker, unique among running workers (default: random).")
        parser.add_argument("--reload", action="store_true",
                            help="Development only: restart on code changes. Off by default: a restart in "
                                 "the middle of a send leaves that message unsent.")

    def _wait_for_database(self, batch: bool) -> bool:
        """Whether the task tables are there, waiting (not in --batch) while the database is unreachable."""
        wait = 1.0
        while True:
            try:
                return DBTaskResult._meta.db_table in connection.introspection.table_names()
            except DatabaseError as exc:
                if batch:
                    raise CommandError(_("Cannot reach the database: %(error)s") % {"error": exc}) from None
                self._say_unreachable(exc, wait)
                wait = self._pause(wait)

    def _say_unreachable(self, exc, wait):
        self.stderr.write(_("The database cannot be reached (%(error)s): trying again in %(seconds)s s.")
                          % {"error": exc.__class__.__name__, "seconds": f"{wait:g}"})

    def _work(self, queue_name, interval, max_tasks, worker_id, reload, verbosity) -> None:
        """django-tasks' database worker, idle on the doorbell rather than asleep."""
        db_worker.Command(stdout=self.stdout._out, stderr=self.stderr._out).configure_logging(verbosity)
        quiet = _EveryRun()
        db_worker.logger.addFilter(quiet)
        worker = db_worker.Worker(
            queue_names=queue_name.split(","), interval=_LOCKED_RETRY_SECONDS, batch=True,
            backend_name="default", startup_delay=False, max_tasks=max_tasks,
            worker_id=worker_id or get_random_string(32), excluded_queue_names=[],
        )
        db_worker.logger.info("Worker %s started on queues %s, woken by the doorbell", worker.worker_id, queue_name)
        bell = doorbell.Doorbell()

        def loop():
            worker.configure_signals()
            try:
                while worker.running:
                    worker.run()  # every task that is due now, then back here
                    if max_tasks is not None and worker._run_tasks >= max_tasks:
                        return
                    bell.wait(interval)
            finally:
                bell.close()
                db_worker.logger.removeFilter(quiet)

        if reload:
            run_with_reloader(loop)
        else:
            loop()

    @staticmethod
    def _pause(wait: float) -> float:
        connections.close_all()
        time.sleep(wait)  # a running service waiting for its database, not a test waiting for time
        return min(wait * 2, RETRY_MAX_SECONDS)

    def handle(self, *args, batch, interval, max_tasks, queue_name, worker_id, reload, verbosity, **options):
        ready = self._wait_for_database(batch)
        if not ready:
            raise CommandError(_("The database has no task tables yet: run `chave migrate` first."))
        # With --reload, this runs in the watching parent and again in each child: greet once.
        if verbosity > 0 and not (reload and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true"):
            channels = ", ".join(f"{channel} → {providers.configured_name(channel) or 'off'}"
                                 for channel in ("sms", "email", "x"))
            if batch:
                mode = _("sending what is due, then exiting")
            elif os.environ.get("CHAVE_SERVE_CHILD"):  # under `chave serve`, the service says how to stop
                mode = _("looking for work every %(seconds)ss") % {"seconds": f"{interval:g}"}
            else:
                mode = _("looking for work every %(seconds)ss; Ctrl+C stops") % {"seconds": f"{interval:g}"}
            self.stdout.write(_("Chave worker started (queues %(queues)s; %(channels)s): %(mode)s.") % {
                "queues": queue_name, "channels": channels, "mode": mode})
        worker_options = ["--queue-name", queue_name, "--interval", str(interval),
                          "--reload" if reload else "--no-reload"]
        if batch:
            worker_options += ["--batch", "--no-startup-delay"]
        if max_tasks is not None:
            worker_options += ["--max-tasks", str(max_tasks)]
        if worker_id:
            worker_options += ["--worker-id", worker_id]
        if batch:
            _sweep()
            call_command("db_worker", *worker_options, verbosity=verbosity,
                         stdout=self.stdout._out, stderr=self.stderr._out)
            return
        sweeper = _Sweeper()
        sweeper.start()
        wait = 1.0
        try:
            while True:
                _sweep()
                try:
                    self._work(queue_name, interval, max_tasks, worker_id, reload, verbosity)
                    return
                except (OperationalError, InterfaceError) as exc:
                    # The database went away under the worker (a restart): keep the process, try again.
                    self._say_unreachable(exc, wait)
                    wait = self._pause(wait)
        finally:
            sweeper.stopped.set()
