"""SMS through an HTTP gateway speaking Kannel's ``sendsms`` interface.

``GET <CHAVE_KANNEL_URL>?username=…&password=…&from=…&to=…&text=…&charset=UTF-8&coding=2``.
What Kannel's smsbox answers (gw/smsbox.c, checked against Debian's kannel 1.4.5):

- 202 ``0: Accepted for delivery`` or ``3: Queued for later delivery`` (bearerbox took it), or
  ``Sent.`` when ``immediate-sendsms-reply`` is on: all mean the gateway has the message.
- 503 ``Temporal failure, try again later.`` (bearerbox cannot take it now: no SMSC, queue full).
- 403 ``Authorization failed for sendsms`` / ``Not routable. Do not try again.``; 400 for a
  malformed request or a refused number (``Number(s) has/have been denied by white- and/or
  black-lists.``): permanent.

The text (and so the code) travels in the query string: keep Kannel on a private network and
its access log out of reach, as for any SMS gateway.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings

from . import PermanentFailure
from .http import request


class KannelSms:
    name = "kannel"

    def __init__(self, channel: str = "sms"):
        self.channel = channel

    def submit_message(self, to: str, body: str, subject: str = "") -> str:
        query = urlencode(
            {
                "username": settings.CHAVE_KANNEL_USERNAME,
                "password": settings.CHAVE_KANNEL_PASSWORD,
                "from": settings.CHAVE_SMS_SENDER,
                "to": to,
                "text": body,
                "charset": "UTF-8",
                "coding": "2",  # UCS-2: Portuguese accents survive
            }
        )
        base = settings.CHAVE_KANNEL_URL
        # 4xx / 5xx / unreachable are mapped to Permanent / Temporary failures by request().
        status, answer = request("GET", f"{base}{'&' if '?' in base else '?'}{query}")
        text = answer.decode("utf-8", "replace").strip()
        if not 200 <= status < 300:
            raise PermanentFailure(f"kannel answered {status}: {text[:120]}")
        # Any 2xx means smsbox handed the message to bearerbox: the text is only a receipt.
        return text[:128]
