"""The terms of use: their version and the record that a citizen accepted them.

The text is the page ``public/terms.html``; change it and bump :data:`TERMS_VERSION` so that
acceptances say which text the citizen saw. Registration (online with the Citizen Card, at a
counter) calls :func:`record_acceptance` in its own transaction.
"""

from __future__ import annotations

from chave import clock
from chave.audit import services as audit

from .models import TermsAcceptance

TERMS_VERSION = "2026-12"


def record_acceptance(citizen, *, channel: str, ip: str | None = None) -> TermsAcceptance:
    """Record that ``citizen`` accepted the current terms (``channel``: web, counter, cli)."""
    row = TermsAcceptance.objects.create(citizen=citizen, version=TERMS_VERSION, accepted_at=clock.now(),
                                         channel=channel, ip=audit._client_ip(ip))
    audit.record("terms.accept", outcome="ok", citizen=citizen, channel=channel, ip=ip, version=TERMS_VERSION)
    return row


def accepted(citizen) -> TermsAcceptance | None:
    """The citizen's latest acceptance, if any."""
    return TermsAcceptance.objects.filter(citizen=citizen).first()
