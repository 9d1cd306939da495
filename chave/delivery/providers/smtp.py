"""E-mail over SMTP with Django's mail backend (host, port, TLS and login from settings)."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.message import make_msgid

from . import PermanentFailure, TemporaryFailure


class SmtpEmail:
    name = "smtp"

    def __init__(self, channel: str = "email"):
        self.channel = channel

    def submit_message(self, to: str, body: str, subject: str = "") -> str:
        connection = get_connection("django.core.mail.backends.smtp.EmailBackend", fail_silently=False)
        # Our own Message-ID, so that the reference we keep is the one the recipient's server sees.
        message_id = make_msgid(domain=_domain(settings.DEFAULT_FROM_EMAIL))
        message = EmailMessage(subject or "Chave", body, settings.DEFAULT_FROM_EMAIL, [to], connection=connection,
                               headers={"Message-ID": message_id})
        try:
            message.send()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(400 <= c < 500 for c in codes):
                raise TemporaryFailure(f"recipient deferred: {codes}") from None
            raise PermanentFailure(f"recipient refused: {codes}") from None
        except smtplib.SMTPResponseException as exc:
            kind = TemporaryFailure if 400 <= exc.smtp_code < 500 else PermanentFailure
            raise kind(f"smtp answered {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"smtp unavailable: {exc.__class__.__name__}") from None
        return message_id


def _domain(address: str) -> str | None:
    """The domain of a From address such as ``Chave <no-reply@chave.example>``."""
    from email.utils import parseaddr

    domain = parseaddr(address)[1].rpartition("@")[2]
    return domain or None
