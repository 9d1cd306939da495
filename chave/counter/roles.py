"""Staff roles and what each may do: one table, read by the views' guard and by the tests.

A role sees and does only what it needs: a clerk acts on citizens' keys at a desk, a supervisor
also reverses actions and reads the daily report, the relying-party administrator decides on
portals, the auditor reads and changes nothing, the mail room prints and posts letters. No
capability lets anyone read a PIN or a code: none exists.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Role(models.TextChoices):
    CLERK = "clerk", _("Counter clerk")
    SUPERVISOR = "supervisor", _("Supervisor")
    RP_ADMIN = "rp-admin", _("Relying-party administrator")
    AUDITOR = "auditor", _("Auditor (read-only)")
    MAILROOM = "mailroom", _("Mail room")


# Capabilities: "citizen.view" (find a citizen, see status, contacts masked, history),
# "citizen.act" (register, unlock, new PIN, cancel, change contact), "action.reverse",
# "report.view" (daily report, actions list), "rp.view", "rp.decide", "letters.print".
CAPABILITIES: dict[str, frozenset[str]] = {
    Role.CLERK: frozenset({"citizen.view", "citizen.act"}),
    Role.SUPERVISOR: frozenset({"citizen.view", "citizen.act", "action.reverse", "report.view"}),
    Role.RP_ADMIN: frozenset({"rp.view", "rp.decide"}),
    Role.AUDITOR: frozenset({"citizen.view", "report.view", "rp.view"}),
    Role.MAILROOM: frozenset({"letters.print"}),
}


class RoleForm(models.TextChoices):
    """How the member of staff's role is written about them, chosen by the member (``chave staff add
    --form``): Portuguese role names are gendered; the neutral form names the function instead."""

    NEUTRAL = "n", _("Neutral")
    FEMININE = "f", _("Feminine")
    MASCULINE = "m", _("Masculine")


# The role's name in each form (English has one; pt-PT tells them apart by the message context).
ROLE_LABELS: dict[str, dict[str, str]] = {
    Role.CLERK: {"n": pgettext_lazy("neutral", "Counter clerk"), "f": pgettext_lazy("feminine", "Counter clerk"),
                 "m": pgettext_lazy("masculine", "Counter clerk")},
    Role.SUPERVISOR: {"n": pgettext_lazy("neutral", "Supervisor"), "f": pgettext_lazy("feminine", "Supervisor"),
                      "m": pgettext_lazy("masculine", "Supervisor")},
    Role.RP_ADMIN: {"n": pgettext_lazy("neutral", "Relying-party administrator"),
                    "f": pgettext_lazy("feminine", "Relying-party administrator"),
                    "m": pgettext_lazy("masculine", "Relying-party administrator")},
    Role.AUDITOR: {"n": pgettext_lazy("neutral", "Auditor (read-only)"),
                   "f": pgettext_lazy("feminine", "Auditor (read-only)"),
                   "m": pgettext_lazy("masculine", "Auditor (read-only)")},
    Role.MAILROOM: {"n": _("Mail room"), "f": _("Mail room"), "m": _("Mail room")},
}


def role_label(role: str, form: str = RoleForm.NEUTRAL) -> str:
    return ROLE_LABELS.get(role, {}).get(form) or Role(role).label


def can(role: str, capability: str) -> bool:
    return capability in CAPABILITIES.get(role, frozenset())


# What each role may do in Django's admin (``chave staff add --admin``; never a superuser): reading
# where the back office's own pages are the place to act. The relying-party administrator may also
# approve and suspend portals there (the admin's actions call the same service, with a reason);
# nothing else can be changed by any role (``tests/test_admin_permissions.py`` lists it).
ADMIN_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.CLERK: frozenset(),
    Role.MAILROOM: frozenset(),
    Role.SUPERVISOR: frozenset({"audit.view_auditevent"}),
    Role.AUDITOR: frozenset({"audit.view_auditevent", "delivery.view_outboundmessage", "federation.view_relyingparty",
                             "federation.view_relyingpartyevent"}),
    Role.RP_ADMIN: frozenset({"federation.view_relyingparty", "federation.change_relyingparty",
                              "federation.view_relyingpartyevent"}),
}
