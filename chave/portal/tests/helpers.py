"""Signing in to the personal area as a citizen does, for the personal area's tests.

:func:`enter_with_key` goes through the real pages: the area's entry, the key's login (number,
PIN, the code read from the development outbox) and back to the area. :func:`enter_with_card`
ends a session the way the Citizen Card's login does once the card is verified
(``chave.login.services.complete_card_login``: method ``citizen_card`` at level 4), without a
card reader.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, RequestFactory

from chave.delivery.models import DevOutboxMessage
from chave.login import services as login

PHONE = "+351912345678"
EMAIL = "maria@example.pt"
PIN = "4719"


def client_in(lang: str = "en") -> Client:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    return client


def enter_with_key(client: Client, outbox, *, identifier: str = PHONE, pin: str = PIN, channel: str = "sms",
                   next_path: str = "/area/"):
    """The area's entry → the key's login → back at ``next_path``; returns the last response."""
    response = client.get("/area/enter/key/", {"next": next_path})
    assert response.status_code == 302 and response["Location"] == "/login/", response
    response = client.post("/login/", {"identifier": identifier, "pin": pin})
    assert response.status_code == 302, response
    if response["Location"].endswith("/login/channel/"):
        response = client.post("/login/channel/", {"channel": channel})
    outbox.last(identifier)
    latest = DevOutboxMessage.objects.order_by("-sent_at", "-id").first()
    response = client.post("/login/code/", {"code": outbox.last_code(latest.to)})
    assert response.status_code == 302 and response["Location"] == next_path, response
    return response


def enter_with_card(client: Client, key) -> None:
    request = RequestFactory().get("/card/return")
    request.session = SessionStore()
    login.complete_card_login(request, key)
    request.session.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = request.session.session_key


def last_text(outbox, to: str) -> str:
    message = outbox.last(to)
    return message.body if message else ""
