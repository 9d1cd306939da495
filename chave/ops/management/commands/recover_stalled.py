"""``chave recover_stalled [--json]``: close what dead workers left behind (:mod:`chave.ops.recovery`):
messages left ``sending`` become ``interrupted`` (never sent twice), back-channel logouts left
``sending`` are sent again, and queued ones that lost their task get a new one. Idempotent; safe
on several instances at once. Every worker also does this at start and every minute."""

from __future__ import annotations

import json


from django.utils.translation import gettext as _

from chave.commands import ChaveCommand
from chave.ops import recovery


class Command(ChaveCommand):
    help = ("Close deliveries that dead workers left half-done: messages left 'sending' are marked interrupted "
            "(never sent twice), back-channel logouts left 'sending' are sent again, queued ones that lost their "
            "task get a new one. Safe to run at any time, e.g. from cron after an incident.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the counts as JSON")

    def handle(self, *args, **opts):
        done = recovery.recover_stalled()
        if opts["json"]:
            self.stdout.write(json.dumps(done))
            return
        self.stdout.write(_("Messages interrupted: %(interrupted)d; messages queued again: %(requeued)d; "
                            "back-channel logouts sent again: %(resent)d; given up: %(failed)d.") % {
            "interrupted": done["messages_interrupted"], "requeued": done["messages_requeued"],
            "resent": done["logouts_resent"], "failed": done["logouts_failed"]})
