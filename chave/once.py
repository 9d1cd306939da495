"""A cache whose misses are computed once, however many threads ask at the same moment.

``functools.lru_cache`` is thread-safe only in that it does not corrupt itself: threads that miss
the same key together each call the function, and each gets its own result. For a plain value
that is waste; for what must exist once per process it is a bug: two semaphores meant to bound
Argon2 to the cores (each bounding half the threads), two development VAPID keys written over one
another. The web server's threads start their first requests together, so :func:`locked_cache`
computes a miss under a lock, and the threads that asked with it get what it made. Hits take the
lock too, for the lookup only (microseconds), so use it where the function is called a few times
a request, not in a tight loop.
"""

from __future__ import annotations

import functools
import threading


def locked_cache(maxsize: int | None = 128, *, lock=None):
    """``lru_cache(maxsize)`` whose lookups and misses hold ``lock`` (by default one of its own;
    re-entrant, as the function may use another cached function of its own): pass a lock that
    must also be held while the function works, such as the PKCS#11 module's."""

    def decorate(function):
        cached = functools.lru_cache(maxsize=maxsize)(function)
        held = lock if lock is not None else threading.RLock()

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with held:
                return cached(*args, **kwargs)

        wrapper.cache_clear, wrapper.cache_info = cached.cache_clear, cached.cache_info
        return wrapper

    return decorate
