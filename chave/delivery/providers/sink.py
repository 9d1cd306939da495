"""The development sink: keeps every message in the dev outbox instead of sending it."""

from __future__ import annotations

import functools

from chave import clock


class DevSink:
    name = "sink"

    def __init__(self, channel: str):
        self.channel = channel

    def submit_message(self, to: str, body: str, subject: str = "") -> str:
        from chave.delivery.models import DevOutboxMessage

        row = _new_message().create(channel=self.channel, to=to, subject=subject, body=body, sent_at=clock.now())
        return f"sink-{row.pk}"


@functools.cache
def _new_message():
    from chave.compiled import Inserter
    from chave.delivery.models import DevOutboxMessage

    return Inserter(DevOutboxMessage)
