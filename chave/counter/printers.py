"""Where a PIN mailer handed over at a counter is printed: one adapter per kind of printer.

Chosen by ``CHAVE_COUNTER_PRINTER``: :class:`SpoolPrinter` (development and tests: a PDF file per
mailer under ``CHAVE_COUNTER_PRINT_DIR/<counter>/``, readable by its owner only; production refuses
it), :class:`LpPrinter` (the counter's CUPS queue, from ``CHAVE_COUNTER_PRINT_QUEUES``), or none
("off": only letters by post are offered). The PDF is handed to the printer and kept nowhere.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from django.conf import settings


class PrinterError(Exception):
    pass


class SpoolPrinter:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def print_pdf(self, counter: str, reference: str, document: bytes) -> None:
        folder = self.directory / (re.sub(r"[^A-Za-z0-9_-]+", "-", counter).strip("-") or "counter")
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(folder / f"{reference}.pdf", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(document)
        except OSError as error:
            raise PrinterError(f"spool: {error.strerror or error}") from None


class LpPrinter:
    def __init__(self, queues: dict[str, str]):
        self.queues = queues

    def print_pdf(self, counter: str, reference: str, document: bytes) -> None:
        queue = self.queues.get(counter)
        if not queue:
            raise PrinterError(f"no print queue for counter {counter!r}")
        try:
            result = subprocess.run(["lp", "-d", queue, "-t", reference, "-"], input=document, capture_output=True,
                                    timeout=30)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PrinterError(f"lp: {type(error).__name__}") from None
        if result.returncode != 0:
            raise PrinterError(f"lp failed with status {result.returncode}")


def counter_printer() -> SpoolPrinter | LpPrinter | None:
    kind = settings.CHAVE_COUNTER_PRINTER
    if kind == "spool":
        return SpoolPrinter(settings.CHAVE_COUNTER_PRINT_DIR)
    if kind == "lp":
        return LpPrinter(settings.CHAVE_COUNTER_PRINT_QUEUES)
    return None
