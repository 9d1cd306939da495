"""The development sink: keeps every message in the dev outbox instead of sending it."""

from __future__ import annotations

from chave import clock


class DevSink:
    name = "sink"

    def __init__(self, channel: str):
        self.channel = channel

    def submit_message(self, to: str, body: str, subject: str = "") -> str:
        from chave.delivery.models import DevOutboxMessage

        row = DevOutboxMessage.objects.create(
            channel=self.channel, to=to, subject=subject, body=body, sent_at=clock.now()
        )
        return f"sink-{row.pk}"
