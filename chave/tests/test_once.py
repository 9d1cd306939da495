"""``locked_cache``: threads missing the same key together get one result, made once."""

from __future__ import annotations

import functools
import threading

from chave.once import locked_cache

THREADS = 8


def _together(function) -> list:
    """``function("key")`` from THREADS threads at once; each thread counts itself in first."""
    barrier, results = threading.Barrier(THREADS), []

    def call():
        barrier.wait()
        with _arrived:
            _arrived.count += 1
            _arrived.notify_all()
        results.append(function("key"))

    _arrived.count = 0
    started = [threading.Thread(target=call) for _ in range(THREADS)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return results


_arrived = threading.Condition()


def _slow_maker(calls: list):
    def make(key):
        calls.append(key)
        # Until every thread has asked (or at most 10 s): all of them miss while this one makes it.
        with _arrived:
            assert _arrived.wait_for(lambda: _arrived.count == THREADS, timeout=10)
        return object()

    return make


def test_threads_missing_together_get_the_one_thing_made_once():
    calls = []
    made = locked_cache(maxsize=4)(_slow_maker(calls))
    results = _together(made)
    assert calls == ["key"] and len({id(r) for r in results}) == 1
    assert made("key") is results[0] and calls == ["key"]  # and it stays cached
    made.cache_clear()
    assert made("key") is not results[0] and calls == ["key", "key"]


def test_lru_cache_alone_makes_it_once_per_thread():
    """What the helper is for: without it, every thread that missed made its own."""
    calls = []
    results = _together(functools.lru_cache(maxsize=4)(_slow_maker(calls)))
    assert len(calls) == THREADS and len({id(r) for r in results}) == THREADS
