"""What a serving process does once, between loading Chave and its first request."""

from __future__ import annotations

import gc


def settle() -> None:
    """Import every view now (the URL configuration), close the database connections that loading
    made (a process forked from this one must open its own), and move every object that exists now
    out of the garbage collector's reach (``gc.freeze``).

    Loading Django, Chave and their libraries leaves a few hundred thousand long-lived objects.
    Without the freeze, each full collection walks all of them again (about 0.1 s here, every few
    dozen logins); with it, collections walk only what requests made since. In a process that
    forks (gunicorn's ``--preload``), collections in the children then also leave these pages
    alone, so they stay shared with the parent instead of being copied into each child."""
    from django.db import connections
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view
    connections.close_all()
    gc.collect()
    gc.freeze()
