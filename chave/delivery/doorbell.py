"""The worker's doorbell: a task queued for now wakes the delivery worker at once.

Without it an idle worker looks for work every ``--interval`` seconds, so a code waited up to that
long before reaching the gateway. Every task enqueued (``django_tasks``' ``task_enqueued``)
rings, once its transaction has committed (a rolled-back task never rings, and the worker never
looks before the row is visible):

- **PostgreSQL**: ``NOTIFY chave_delivery``. Each worker, on any instance, holds a connection of
  its own that ``LISTEN``s; it wakes when a notification arrives or when its interval passes
  (a notification missed while that connection was being made again is caught by the interval).
- **SQLite** (one machine): a datagram to Linux abstract Unix sockets named after the database
  file, one per worker (up to :data:`SQLITE_BELLS`); nobody listening costs nothing.

Polling stays as it was, so a missed ring delays a message by at most the interval.
"""

from __future__ import annotations

import hashlib
import logging
import select
import socket

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.dispatch import receiver
from django_tasks.signals import task_enqueued

from chave import clock

log = logging.getLogger("chave.delivery")

CHANNEL = "chave_delivery"
SQLITE_BELLS = 8  # workers on one SQLite database that each get their own bell


def _vendor(using: str) -> str:
    return connections[using].vendor


def _sqlite_address(using: str, n: int) -> str:
    name = str(settings.DATABASES[using]["NAME"])
    return f"\0chave-doorbell/{hashlib.sha256(name.encode()).hexdigest()[:24]}/{n}"


def ring(using: str = "default") -> None:
    """Wake the workers of database ``using`` (call it after the commit: :func:`ring_on_commit`)."""
    if _vendor(using) == "postgresql":
        try:
            with connections[using].cursor() as cursor:
                cursor.execute(f"NOTIFY {CHANNEL}")
        except DatabaseError as exc:  # the worker's interval still finds the task
            log.warning("doorbell not rung: %s", exc.__class__.__name__)
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as bell:
        bell.setblocking(False)
        for n in range(SQLITE_BELLS):
            try:
                bell.sendto(b"!", _sqlite_address(using, n))
            except OSError:  # nobody listens there (ConnectionRefused), or its buffer is full: awake anyway
                pass


def ring_on_commit(using: str = "default") -> None:
    transaction.on_commit(lambda: ring(using), using=using, robust=True)


@receiver(task_enqueued)
def _ring_for_task(sender, task_result, **kwargs) -> None:
    run_after = getattr(task_result.task, "run_after", None)
    if run_after is not None and run_after > clock.now():
        return  # a retry for later: the worker's interval takes it when it is due
    ring_on_commit()


class Doorbell:
    """The worker's side: :meth:`wait` returns when rung or after ``timeout`` seconds."""

    def __init__(self, using: str = "default"):
        self.using = using
        self._postgres = _vendor(using) == "postgresql"
        self._listener = None
        self._socket = None

    # --- PostgreSQL -------------------------------------------------------------------------

    def _listen(self):
        if self._listener is None:
            wrapper = connections[self.using]
            raw = wrapper.get_new_connection(wrapper.get_connection_params())
            raw.autocommit = True
            raw.execute(f"LISTEN {CHANNEL}")
            self._listener = raw
        return self._listener

    def _wait_postgres(self, timeout: float) -> bool:
        try:
            listener = self._listen()
            rung = False
            for _notify in listener.notifies(timeout=timeout, stop_after=1):
                rung = True
            if rung:  # several rings at once wake the worker once
                for _notify in listener.notifies(timeout=0):
                    pass
            return rung
        except Exception as exc:  # noqa: BLE001 - any failure of the listening connection: poll instead
            log.warning("doorbell unavailable (%s): polling", exc.__class__.__name__)
            self._close_listener()
            select.select([], [], [], timeout)
            return False

    def _close_listener(self):
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._listener = None

    # --- SQLite -----------------------------------------------------------------------------

    def _bound(self):
        if self._socket is None:
            for n in range(SQLITE_BELLS):
                candidate = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    candidate.bind(_sqlite_address(self.using, n))
                except OSError:  # another worker's bell
                    candidate.close()
                    continue
                candidate.setblocking(False)
                self._socket = candidate
                break
        return self._socket

    def _wait_sqlite(self, timeout: float) -> bool:
        bell = self._bound()
        if bell is None:  # more workers than bells: this one polls
            select.select([], [], [], timeout)
            return False
        readable, _, _ = select.select([bell], [], [], timeout)
        rung = False
        while True:
            try:
                bell.recv(16)
                rung = True
            except BlockingIOError:
                return rung

    # ---------------------------------------------------------------------------------------

    def wait(self, timeout: float) -> bool:
        """Block until rung (True) or ``timeout`` seconds have passed (False)."""
        return self._wait_postgres(timeout) if self._postgres else self._wait_sqlite(timeout)

    def close(self) -> None:
        self._close_listener()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
