"""What the citizen's phone or mailbox received, for tests that run inside one transaction.

The ``outbox`` fixture of ``chave/conftest.py`` runs the real worker command, which closes
database connections and so needs ``transaction=True`` tests (each then pays for emptying every
table). ``inbox`` delivers the queued messages through the same function the worker runs,
:func:`chave.delivery.services.send_message`, and reads the development sink, so these tests can
stay in a rolled-back transaction.
"""

from __future__ import annotations


import pytest


class Inbox:
    def deliver(self) -> None:
        from chave.delivery.models import MessageStatus, OutboundMessage
        from chave.delivery.services import send_message

        for pk in OutboundMessage.objects.filter(status=MessageStatus.QUEUED).order_by("created_at").values_list(
            "pk", flat=True
        ):
            send_message(str(pk))

    def last(self, to: str):
        from chave.delivery.models import DevOutboxMessage

        self.deliver()
        return DevOutboxMessage.objects.filter(to=to).order_by("-sent_at", "-id").first()

    def last_code(self, to: str) -> str:
        message = self.last(to)
        assert message is not None, f"no message was sent to {to}"
        from chave.delivery.messages import code_in

        code = code_in(message.body)
        assert code, f"the last message to {to} carries no code: {message.body!r}"
        return code


@pytest.fixture
def inbox(db) -> Inbox:
    return Inbox()
