"""The texts Chave sends, in Portuguese and English.

A code message names the portal, says how long the code lasts and warns not to share it. An SMS
ends with the origin-bound WebOTP line ``@<host> #<code>`` so that the phone's browser can offer to
fill it in; an e-mail or a direct message does not (no browser reads it, and the line looks like
noise to a person).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _


@dataclass(frozen=True)
class Text:
    subject: str
    body: str
    redacted: str


def service_host() -> str:
    return urlsplit(settings.CHAVE_PUBLIC_URL).hostname or "localhost"


def _minutes(lifetime: dt.timedelta) -> int:
    return max(1, int(lifetime.total_seconds() // 60))


# What a code of the personal area confirms, said instead of "to sign in to ..." (``task``).
TASKS = ("pin_change", "recover")


def code_message(*, purpose: str, code: str, portal: str, lifetime: dt.timedelta, language: str,
                 documents: str = "", task: str = "", channel: str = "",
                 expires_at: dt.datetime | None = None) -> Text:
    """``documents`` names what a signing code authorises (the signing flows always give it);
    ``task`` (one of :data:`TASKS`) names a change to the key the code confirms, so that a
    citizen who did not ask for it knows what someone is trying to do. For the Chave app
    (``channel="app"``) the body is :func:`app_code_message`'s JSON, which the app shows."""
    with translation.override(language or settings.LANGUAGE_CODE):
        at_chave = not portal or portal == "Chave"  # Portuguese says "na Chave", not "em Chave"
        what = {
            "login": _("to sign in to Chave") if at_chave else _("to sign in to %(portal)s") % {"portal": portal},
            "contact": _("to confirm this contact for your Digital Mobile Key"),
            "signing": (_("to sign documents at Chave") if at_chave
                        else _("to sign documents at %(portal)s") % {"portal": portal}),
            "device": _("to add the Chave app to your Digital Mobile Key"),
        }.get(purpose, "")
        if task == "pin_change":
            what = _("to change the PIN of your Digital Mobile Key")
        elif task == "recover":
            what = _("to set a new PIN for your Digital Mobile Key with your Citizen Card (recover or unlock)")
        if purpose == "signing" and documents:
            what = (_("to sign %(documents)s at Chave") % {"documents": documents} if at_chave
                    else _("to sign %(documents)s at %(portal)s") % {"documents": documents, "portal": portal})
        template = _(
            "Chave: your security code %(what)s is %(code)s. It is valid for %(minutes)d minutes. "
            "Never share it with anyone, not even Chave staff."
        )
        subject = _("Your Chave security code")
        params = {"what": what, "minutes": _minutes(lifetime)}
        body, redacted = template % {**params, "code": code}, template % {**params, "code": "••••••"}
        if channel == "sms":
            body += f"\n\n@{service_host()} #{code}"
            redacted += f"\n\n@{service_host()} #••••••"
        if channel == "app":
            return app_code_message(purpose=purpose, code=code, portal=portal or "Chave", documents=documents,
                                    text=redacted.split("\n\n")[0], subject=str(subject), expires_at=expires_at)
        return Text(subject=str(subject), body=body, redacted=redacted)


def code_in(body: str) -> str | None:
    """The security code a message carries (its WebOTP line, else the number in its sentence), for
    the development outbox's readers and the tests."""
    found = re.search(r"#(\d{4,10})\s*$", body) or re.search(r"(?<![\d:.,/])(\d{6,10})(?![\d:/])", body)
    return found.group(1) if found else None


def app_code_message(*, purpose: str, code: str, portal: str, documents: str, text: str, subject: str,
                     expires_at: dt.datetime | None) -> Text:
    """A code for the Chave app: JSON the app shows as the portal's name, the time and the code
    (``text``, the message's words with the code left out, is said under it)."""
    import json

    from chave import clock

    data = {"type": "code", "purpose": purpose, "portal": portal, "documents": documents, "text": text,
            "created_at": clock.now().isoformat(), "expires_at": expires_at.isoformat() if expires_at else None}
    return Text(subject=subject, body=json.dumps({**data, "code": code}, ensure_ascii=False),
                redacted=json.dumps({**data, "code": "••••••"}, ensure_ascii=False))


def notice_message(event: str, *, language: str, until: dt.datetime | None = None) -> Text:
    """Security notices: locks, blocks, PIN and contact changes, registration, cancellation, reports."""
    from django.utils import formats, timezone

    with translation.override(language or settings.LANGUAGE_CODE):
        when = formats.date_format(timezone.localtime(until), "DATETIME_FORMAT") if until else ""
        texts = {
            "locked": _(
                "Chave: your Digital Mobile Key was locked after several wrong PINs. You can try again "
                "after %(when)s. If this was not you, contact us: %(help)s."
            ),
            "blocked": _(
                "Chave: your Digital Mobile Key is blocked after too many wrong PINs. Unlock it with your "
                "Citizen Card in the personal area or at a counter. Help: %(help)s."
            ),
            "pin_changed": _("Chave: the PIN of your Digital Mobile Key was changed. If this was not you, contact %(help)s."),
            "registered": _("Chave: your Digital Mobile Key is active. If you did not ask for it, contact %(help)s."),
            "contact_changed": _(
                "Chave: a contact of your Digital Mobile Key was changed. If this was not you, contact %(help)s."
            ),
            "key_cancelled": _(
                "Chave: your Digital Mobile Key was cancelled at your request and can no longer be used. "
                "If this was not you, contact %(help)s."
            ),
            "key_reported": _(
                "Chave: you reported a use of your Digital Mobile Key that was not yours, so it is blocked and "
                "its sessions were ended. Unlock it with your Citizen Card in the personal area or at a counter. "
                "Help: %(help)s."
            ),
            "key_expiring": _(
                "Chave: your Digital Mobile Key expires on %(when)s, with your identity document. Renew the "
                "document, then register the key again. Help: %(help)s."
            ),
            "signing_activated": _(
                "Chave: digital signature with your Digital Mobile Key is now active. If this was not you, "
                "contact %(help)s."
            ),
            "signing_deactivated": _(
                "Chave: digital signature with your Digital Mobile Key was deactivated and its certificate "
                "revoked. If this was not you, contact %(help)s."
            ),
            "key_unlocked_at_counter": _(
                "Chave: your Digital Mobile Key was unlocked at a counter. If this was not you, contact %(help)s."
            ),
            "pin_by_letter": _(
                "Chave: a new PIN for your Digital Mobile Key was issued at a counter and reaches you by letter; "
                "your previous PIN no longer works. If you did not ask for it, contact %(help)s."
            ),
            "key_renewed": _(
                "Chave: your identity document was renewed, so your Digital Mobile Key is now valid until "
                "%(when)s. Nothing else changes. If this was not you, contact %(help)s."
            ),
            "signing_certificate_renewed": _(
                "Chave: with your renewed identity document, your signing certificate was renewed and is now "
                "valid until %(when)s. Your signing PIN stays the same and documents you signed before stay "
                "signed. If this was not you, contact %(help)s."
            ),
            "key_new_document": _(
                "Chave: your new identity document was recorded at a counter, so your Digital Mobile Key is now "
                "valid until %(when)s. Your PIN and contacts stay the same. If this was not you, contact %(help)s."
            ),
            "pin_letter_reversed_previous": _(
                "Chave: the new PIN sent to you by letter was cancelled at a counter; your previous PIN works "
                "again. If the letter arrives, do not use it. If you did not expect this, contact %(help)s."
            ),
            "pin_letter_reversed": _(
                "Chave: the new PIN sent to you by letter was cancelled at a counter and no longer works, and "
                "your key has no PIN now. Ask for a new PIN at a counter. Help: %(help)s."
            ),
            "signing_pin_blocked": _(
                "Chave: signing with your Digital Mobile Key is blocked after too many wrong signing PINs. Choose a "
                "new signing PIN in the personal area. If this was not you, contact %(help)s."
            ),
            "signing_pin_changed": _(
                "Chave: the signing PIN of your Digital Mobile Key was changed. If this was not you, contact %(help)s."
            ),
            "app_paired": _(
                "Chave: the Chave app on a new device was added to your Digital Mobile Key. If this was not you, "
                "remove it in the personal area and contact %(help)s."
            ),
            "app_removed": _(
                "Chave: a device with the Chave app was removed from your Digital Mobile Key. If this was not you, "
                "contact %(help)s."
            ),
            "app_not_me": _(
                "Chave: you said in the Chave app that a sign-in was not yours, so we refused it and locked your "
                "Digital Mobile Key until %(when)s. Someone knows your PIN: change it. Help: %(help)s."
            ),
            "key_unused": _(
                "Chave: your Digital Mobile Key has not been used for a long time and will be revoked on %(when)s. "
                "Sign in with it before then to keep it. Help: %(help)s."
            ),
        }
        body = texts[event] % {"when": when, "help": settings.CHAVE_HELP_EMAIL}
        return Text(subject=str(_("Chave: security notice")), body=body, redacted=body)
