"""A serving process settles once it is loaded (``chave.ops.loaded.settle``)."""

import gc

import pytest
from django.db import connection

from chave.ops.loaded import settle


@pytest.mark.django_db(transaction=True)  # no test transaction: closing must really close
def test_settling_freezes_what_loading_made_and_closes_the_connections():
    connection.ensure_connection()
    assert connection.connection is not None
    gc.unfreeze()
    try:
        before = gc.get_freeze_count()
        settle()
        # Everything loading left is out of the collector's generations: a full collection
        # no longer walks it.
        assert gc.get_freeze_count() > max(before, 10_000)
        assert sum(gc.get_count()) < 1_000
    finally:
        gc.unfreeze()
    # The connection made before was closed: a forked child must open its own.
    assert connection.connection is None
