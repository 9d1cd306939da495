"""SMS through an HTTP gateway speaking Kannel's ``sendsms`` interface.

``POST <CHAVE_KANNEL_URL>`` with the text as a ``text/plain; charset=UTF-8`` body and the rest as
``X-Kannel-Username``, ``-Password``, ``-From``, ``-To`` and ``-Coding: 2`` headers (the POST form
of ``sendsms``).
What Kannel's smsbox answers (gw/smsbox.c, checked against Debian's kannel 1.4.5):

- 202 ``0: Accepted for delivery`` or ``3: Queued for later delivery`` (bearerbox took it), or
  ``Sent.`` when ``immediate-sendsms-reply`` is on: all mean the gateway has the message.
- 503 ``Temporal failure, try again later.`` (bearerbox cannot take it now: no SMSC, queue full).
- 403 ``Authorization failed for sendsms`` / ``Not routable. Do not try again.``; 400 for a
  malformed request or a refused number (``Number(s) has/have been denied by white- and/or
  black-lists.``): permanent.

The text (and so the code) travels in the body, never in a URL, so access logs do not hold codes;
keep Kannel on a private network all the same, as for any SMS gateway.
"""

from __future__ import annotations

from django.conf import settings

from . import PermanentFailure
from .http import request


class KannelSms:
    name = "kannel"

    def __init__(self, channel: str = "sms"):
        self.channel = channel

    def submit_message(self, to: str, body: str, subject: str = "") -> str:
        # POST form of sendsms: the text is the request body and the rest X-Kannel-* headers, so
        # neither the code nor the gateway password lands in an access log or a proxy's URL log.
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-Kannel-Username": settings.CHAVE_KANNEL_USERNAME,
            "X-Kannel-Password": settings.CHAVE_KANNEL_PASSWORD,
            "X-Kannel-From": settings.CHAVE_SMS_SENDER,
            "X-Kannel-To": to,
            "X-Kannel-Coding": "2",  # UCS-2: Portuguese accents survive
        }
        # 4xx / 5xx / unreachable are mapped to Permanent / Temporary failures by request().
        status, answer = request("POST", settings.CHAVE_KANNEL_URL, data=body.encode("utf-8"), headers=headers)
        text = answer.decode("utf-8", "replace").strip()
        if not 200 <= status < 300:
            raise PermanentFailure(f"kannel answered {status}: {text[:120]}")
        # Any 2xx means smsbox handed the message to bearerbox: the text is only a receipt.
        return text[:128]
