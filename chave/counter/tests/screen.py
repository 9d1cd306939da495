"""The citizen screen of a desk, driven as the device facing the citizen would."""

from __future__ import annotations

import re

from django.conf import settings
from django.test import Client


def paired_screen(desk: Client) -> Client:
    """Pair a new device (its own client, no staff session) with ``desk``'s citizen screen."""
    page = desk.post("/counter/desk/screen").content.decode()
    link = re.search(r'id="pairing-link" href="([^"]+)"', page).group(1)
    device = Client()
    device.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert device.get(link).status_code == 200  # asks to confirm; does not use the link up
    response = device.post(link)
    assert response.status_code == 302 and response["Location"] == "/counter/screen/"
    return device


def screen_task(device: Client) -> str:
    """The heading the citizen screen shows now."""
    page = device.get("/counter/screen/").content.decode()
    return re.search(r'<h1 id="(screen-[a-z]+)"', page).group(1)


def turn_of(device: Client) -> str:
    return re.search(r'name="turn" value="(\d+)"', device.get("/counter/screen/").content.decode()).group(1)


def type_code(device: Client, code: str):
    return device.post("/counter/screen/", {"turn": turn_of(device), "code": code})


def choose_pin(device: Client, pin: str, again: str | None = None):
    return device.post("/counter/screen/", {"turn": turn_of(device), "pin": pin, "pin_again": again or pin})
