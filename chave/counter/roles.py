"""Staff roles and what each may do: one table, read by the views' guard and by the tests.

A role sees and does only what it needs: a clerk acts on citizens' keys at a desk, a supervisor
also reverses actions and reads the daily report, the relying-party administrator decides on
portals, the auditor reads and changes nothing, the mail room prints and posts letters. No
capability lets anyone read a PIN or a code: none exists.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


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


def can(role: str, capability: str) -> bool:
    return capability in CAPABILITIES.get(role, frozenset())
