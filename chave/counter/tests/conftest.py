"""Counter fixtures: staff accounts made through the real service, signed in through the real page
(by the test client, or in the real browser for the browser tests); the counter's printer, down."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pyotp
import pytest

from chave import clock as service_clock


@dataclasses.dataclass
class StaffLogin:
    staff: object
    username: str
    password: str
    totp: pyotp.TOTP

    def code(self, at=None) -> str:
        return self.totp.at(at or service_clock.now())


@pytest.fixture
def make_staff(db):
    from chave.counter import services

    made = {"n": 0}

    def make(role: str = "clerk", *, counter: str = "Loja do Cidadão Laranjeiras", username: str | None = None,
             name: str | None = None, nic: str = "") -> StaffLogin:
        made["n"] += 1
        username = username or f"{role.replace('-', '')}{made['n']}"
        new = services.create_staff(username=username, name=name or f"Staff {username}", role=role,
                                    counter=counter, nic=nic)
        return StaffLogin(new.staff, username, new.password, pyotp.parse_uri(new.provisioning_uri))

    return make


@pytest.fixture
def staff_client(client, make_staff, clock):
    """A test client signed in at /counter/login as a new member of staff of ``role``, in English
    (so that the tests' English words hold once the pages are translated)."""
    from django.conf import settings

    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    def sign_in(role: str = "clerk", **kwargs):
        # Each sign-in in a new TOTP step (a code is accepted once per account and step).
        clock.travel(dt.timedelta(seconds=30))
        login = make_staff(role, **kwargs)
        response = client.post("/counter/login", {"username": login.username, "password": login.password,
                                                  "code": login.code()})
        assert response.status_code == 302, response.content.decode()[:2000]
        client.login_as = login
        return client

    return sign_in


@pytest.fixture
def broken_printer(settings, tmp_path):
    """The counter's spool printer, down: its folder for "Loja Aveiro" is a file. ``fix()`` mends it."""
    settings.CHAVE_COUNTER_PRINTER, settings.CHAVE_COUNTER_PRINT_DIR = "spool", tmp_path
    jam = tmp_path / "Loja-Aveiro"
    jam.write_text("jammed")

    class Printer:
        folder = jam

        @staticmethod
        def fix():
            jam.unlink()

    return Printer


# --- The real browser (``-m browser``) ---------------------------------------------------------

DESK = {"width": 1280, "height": 900}


@pytest.fixture
def open_page(new_page):
    """A new page in a browser of its own (a desk, unless ``viewport`` says otherwise), in English."""

    def open_(viewport=DESK, **kwargs):
        return new_page(viewport=viewport, locale="en-GB", accept_downloads=True, **kwargs)

    return open_


@pytest.fixture
def signed_in(live_server, open_page, make_staff):
    """A new browser signed in at /counter/login as a new member of staff of ``role`` (its page;
    the account is ``page.login``)."""

    def sign_in(role, **kwargs):
        login = make_staff(role, **kwargs)
        page = open_page()
        page.goto(live_server.url + "/counter/login")
        page.get_by_label("Username").fill(login.username)
        page.get_by_label("Password").fill(login.password)
        page.get_by_label("Authenticator code").fill(login.code())
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/counter/(find|letters|rp|report)/"))
        assert login.staff.name in page.locator("#staff-bar").inner_text()
        page.login = login
        return page

    return sign_in
