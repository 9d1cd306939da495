"""The signing area's batch on disk while several requests of one citizen use it at once: the page's
images load while a click saves the placement, and another citizen's upload clears old batches."""

from __future__ import annotations

import io
import os
import threading
import time

from chave.signing import area

from .helpers import sample_pdf


def _batch(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return area.upload(7, [("plan.pdf", io.BytesIO(sample_pdf(2)))], "B-T")


def test_a_batch_being_saved_is_always_found_whole(settings, tmp_path):
    batch = _batch(settings, tmp_path)
    stop, missed, loads = threading.Event(), [], [0]

    def keep_loading():
        while not stop.is_set():
            loads[0] += 1
            if area.load(batch.id, 7) is None:
                missed.append(loads[0])

    reader = threading.Thread(target=keep_loading)
    reader.start()
    try:
        for i in range(1500):  # clicks on the page: each saves where the signature goes
            area.place_at(batch, 0, page=1, fx=(i % 100) / 100, fy=0.5)
            batch.save()
    finally:
        stop.set()
        reader.join()
    assert loads[0] > 100 and missed == []  # a half-written batch.json read as "no batch" before
    assert [p.name for p in batch.directory.iterdir() if p.name.startswith("batch.json")] == ["batch.json"]


def test_cleaning_old_batches_spares_one_whose_file_cannot_be_read_yet(settings, tmp_path):
    batch = _batch(settings, tmp_path)
    (batch.directory / "batch.json").write_text('{"id": "')  # as another process sees a file being written
    area.upload(8, [("other.pdf", io.BytesIO(sample_pdf(1)))], "B-T")  # another citizen: clears old batches
    assert batch.directory.exists()

    old = time.time() - settings.CHAVE_POLICY["signing_area_keep_seconds"] - 60
    os.utime(batch.directory, (old, old))  # an unreadable batch left for longer than batches are kept
    area.upload(8, [("other.pdf", io.BytesIO(sample_pdf(1)))], "B-T")
    assert not batch.directory.exists()
