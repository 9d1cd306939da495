"""The one clock of the service.

Everything that reads the time for a rule (code lifetimes, locks, throttles, validity) calls
:func:`now` or :func:`today`. Tests move it with :func:`travel` / :func:`freeze`; nothing in the
product sleeps to wait for time to pass.
"""

from __future__ import annotations

import datetime as dt
import threading

from django.utils import timezone

_lock = threading.Lock()
_offset = dt.timedelta(0)
_frozen: dt.datetime | None = None


def now() -> dt.datetime:
    with _lock:
        if _frozen is not None:
            return _frozen
        return timezone.now() + _offset


def today() -> dt.date:
    return timezone.localdate(now())


def travel(delta: dt.timedelta) -> None:
    """Move the clock forward (or back) by ``delta``, frozen or not."""
    global _offset, _frozen
    with _lock:
        if _frozen is not None:
            _frozen = _frozen + delta
        else:
            _offset += delta


def freeze(at: dt.datetime | None = None) -> None:
    global _frozen
    with _lock:
        _frozen = at or (timezone.now() + _offset)


def reset() -> None:
    global _offset, _frozen
    with _lock:
        _offset = dt.timedelta(0)
        _frozen = None
