"""Fixtures of the Chave app's tests: a citizen in the personal area, and devices paired through
the real pages and API (:class:`chave.testing.device.Device`, the Python device client)."""

from __future__ import annotations

import pytest
from django.test import Client

from chave.counter.tests.conftest import make_staff, staff_client  # noqa: F401 - the counter's fixtures
from chave.portal.tests.conftest import area, key  # noqa: F401 - a citizen signed in to the personal area
from chave.portal.tests.helpers import EMAIL, PHONE, PIN
from chave.testing.device import Device, DjangoTransport

from .helpers import add_device, pairing_code

__all__ = ["EMAIL", "PHONE", "PIN"]


@pytest.fixture
def new_device():
    """A new (unpaired) device speaking through Django's test client at its own address."""
    count = {"n": 0}

    def make(language: str = "en") -> Device:
        count["n"] += 1
        return Device(DjangoTransport(Client(), REMOTE_ADDR=f"192.0.2.{count['n']}"), language=language)

    return make


@pytest.fixture
def paired(area, outbox, new_device):
    """A device paired with the key through the personal area and the app API."""
    return add_device(area, outbox, new_device(), name="Telemóvel da Maria")


__all__ += ["pairing_code"]
