"""Run one function in many threads that start together, as concurrent requests would.

Each thread has its own database connection (Django's are per thread) and closes it at the
end, so PostgreSQL sees as many sessions as there are threads and SQLite as many writers.
"""

from __future__ import annotations

import threading

from django.db import connections


def run_together(n: int, work, *, timeout: float = 120.0) -> list:
    """Call ``work(i)`` for i in range(n) in n threads released at once; return the results.

    Re-raises the first exception a thread raised.
    """
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread did not finish in time"
    if errors:
        raise errors[0]
    return results
