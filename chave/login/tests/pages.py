"""Reading the login pages as a citizen (or an attacker) sees them, for the login tests.

Expected words are looked up in the translation catalogue (``says``), so the tests follow the
pt-PT translation as it is written instead of hard-coding either language.
"""

from __future__ import annotations

import html
import re

from django.conf import settings
from django.test import Client
from django.utils import translation

PHONE = "+351912345678"
PIN = "4719"


def says(msgid: str, lang: str = "en", **params) -> str:
    """``msgid`` as the pages say it in ``lang`` (formatted with ``params``, if any)."""
    with translation.override(lang):
        text = translation.gettext(msgid)
    return text % params if params else text


def client_in(lang: str = "en", **kwargs) -> Client:
    client = Client(**kwargs)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    return client


def speak(client: Client, lang: str = "en") -> Client:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    return client


def sign_in(client: Client, identifier: str = "912 345 678", pin: str = PIN, **extra):
    return client.post("/login/", {"identifier": identifier, "pin": pin}, **extra)


def body(response) -> str:
    return response.content.decode()


def text_of(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def field_error(response, name: str) -> str | None:
    """The error shown next to field ``name``, or None."""
    found = re.search(rf'<p class="error" id="id_{name}_error">(.*?)</p>', body(response), re.S)
    return text_of(found.group(1)) if found else None


def field_input(response, name: str) -> str:
    """The first ``<input>`` tag of field ``name`` (its attributes say whether it is marked invalid)."""
    found = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', body(response))
    assert found, f"no input named {name}"
    return found.group(0)


def summary(response) -> str | None:
    """The text of the error summary at the top of the form, or None."""
    found = re.search(r'<div class="error-summary".*?</div>', body(response), re.S)
    return text_of(found.group(0)) if found else None


def notices(response) -> str:
    """The text of the flash messages shown on the page ("" when none)."""
    found = re.search(r'<ul class="messages".*?</ul>', body(response), re.S)
    return text_of(found.group(0)) if found else ""


def main(response) -> str:
    found = re.search(r"<main.*?</main>", body(response), re.S)
    assert found, "the page has no <main>"
    return found.group(0)


def session_key(client: Client) -> str | None:
    cookie = client.cookies.get(settings.SESSION_COOKIE_NAME)
    return cookie.value if cookie and cookie.value else None


def ends_at(response, path: str) -> bool:
    return response.status_code == 302 and response["Location"].endswith(path)
