"""E-mail over SMTP with Django's mail backend (host, port, TLS and login from settings)."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from . import PermanentFailure, TemporaryFailure


class SmtpEmail:
    name = "smtp"

    def __init__(self, channel: str = "email"):
        self.channel = channel

    def submit_message(self, to: str, body: str, subject: str = "") -> str:
        connection = get_connection("django.core.mail.backends.smtp.EmailBackend", fail_silently=False)
        message = EmailMessage(subject or "Chave", body, settings.DEFAULT_FROM_EMAIL, [to], connection=connection)
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
        return message.extra_headers.get("Message-ID", "")
