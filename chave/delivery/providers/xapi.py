"""X (Twitter) direct messages through the X API v2 endpoint.

``POST <CHAVE_X_API_URL>/2/dm_conversations/with/<participant_id>/messages`` with JSON
``{"text": …}`` and a bearer token; 201 answers ``{"data": {"dm_event_id": …}}``.
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings

from . import PermanentFailure
from .http import post_json


class XDirectMessage:
    name = "xapi"

    def __init__(self, channel: str = "x"):
        self.channel = channel

    def submit_message(self, to: str, body: str, subject: str = "") -> str:
        if not to.isdigit():
            raise PermanentFailure("an X destination is a numeric user id")
        url = f"{settings.CHAVE_X_API_URL.rstrip('/')}/2/dm_conversations/with/{quote(to)}/messages"
        status, answer = post_json(url, {"text": body}, {"Authorization": f"Bearer {settings.CHAVE_X_BEARER_TOKEN}"})
        if status not in (200, 201):
            raise PermanentFailure(f"x api answered {status}")
        return str((answer.get("data") or {}).get("dm_event_id", ""))
