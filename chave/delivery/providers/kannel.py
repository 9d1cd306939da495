"""SMS through an HTTP gateway speaking Kannel's ``sendsms`` interface.

``GET <CHAVE_KANNEL_URL>?username=…&password=…&from=…&to=…&text=…&charset=UTF-8&coding=2``.
Kannel answers 202 with "0: Accepted for delivery" or "3: Queued for later delivery"; 4xx for
bad requests or credentials, 5xx / 503 when it cannot take the message now.
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
        status, answer = request("GET", f"{settings.CHAVE_KANNEL_URL}?{query}")
        text = answer.decode("utf-8", "replace").strip()
        if status not in (200, 202) or not (text.startswith("0:") or text.startswith("3:")):
            raise PermanentFailure(f"kannel did not accept the message: {status} {text[:120]}")
        return text[:128]
