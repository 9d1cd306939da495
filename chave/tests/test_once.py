"""``locked_cache``: threads missing the same key together get one result, made once."""

from __future__ import annotations

import functools
import threading
import time

from chave.once import locked_cache


def _together(function, threads: int = 8) -> list:
    barrier, results = threading.Barrier(threads), []

    def call():
        barrier.wait()
        results.append(function("key"))

    started = [threading.Thread(target=call) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return results


def _slow_maker(calls: list):
    def make(key):
        calls.append(key)
        time.sleep(0.05)  # long enough for every thread to miss at once
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
    assert len(calls) == 8 and len({id(r) for r in results}) == 8
