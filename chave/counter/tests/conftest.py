"""Counter fixtures: staff accounts made through the real service, signed in through the real page."""

from __future__ import annotations

import dataclasses
import datetime as dt

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
