"""Pairing a device as a citizen does: "Add the app" in the personal area shows a code; the app
sends it with its new key; the SMS code is typed in the app."""

from __future__ import annotations

import re

from chave.portal.tests.helpers import PHONE


def pairing_code(area) -> str:
    """Press "Add the app to a device" and read the code the page shows."""
    response = area.post("/area/app/add/")
    assert response.status_code == 200, response
    found = re.search(r'id="pairing-code">([0-9A-Z ]+)<', response.content.decode())
    assert found, response.content.decode()[:3000]
    return found.group(1).replace(" ", "")


def add_device(area, outbox, device, *, name: str = "Telemóvel", phone: str = PHONE, push=None):
    device.pair(pairing_code(area), name=name, push_subscription=push)
    device.confirm(outbox.last_code(phone))
    return device
