"""Approximate place of an IP address, for the history of the personal area.

An adapter with one method, :meth:`Places.place` (an address in, a place name or None out).
:class:`NoPlaces` is the default: the history says the place is not available. With
``CHAVE_GEOIP_CSV`` set, :class:`CsvPlaces` reads a CSV file of ``network,place`` rows (a CIDR
range such as ``193.136.0.0/15`` and a name such as ``Lisboa, PT``; ``#`` starts a comment) and
answers with the most specific range holding the address. The file is read once per process and
again when it changes; a row that does not parse is skipped (and logged), a missing file answers
None. Anything heavier (a commercial database) is another adapter with the same method.
"""

from __future__ import annotations

import csv
import functools
import ipaddress
import logging
import os

from django.conf import settings

log = logging.getLogger(__name__)


class NoPlaces:
    def place(self, ip: str | None) -> str | None:
        return None


class CsvPlaces:
    def __init__(self, path: str):
        self.path = path

    def place(self, ip: str | None) -> str | None:
        try:
            address = ipaddress.ip_address(str(ip or ""))
            stamp = os.stat(self.path).st_mtime_ns
        except (ValueError, OSError):
            return None
        for network, name in _ranges(self.path, stamp):
            if address.version == network.version and address in network:
                return name
        return None


@functools.lru_cache(maxsize=2)
def _ranges(path: str, stamp: int) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
    """The file's ranges, most specific first (``stamp`` makes a changed file read again)."""
    found = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].lstrip().startswith("#"):
                continue
            try:
                network = ipaddress.ip_network(row[0].strip(), strict=False)
                name = row[1].strip()
            except (ValueError, IndexError):
                log.warning("%s line %d: not a 'network,place' row; skipped", path, number)
                continue
            if name:
                found.append((network, name))
    return sorted(found, key=lambda item: -item[0].prefixlen)


def places() -> NoPlaces | CsvPlaces:
    path = getattr(settings, "CHAVE_GEOIP_CSV", "")
    return CsvPlaces(path) if path else NoPlaces()
