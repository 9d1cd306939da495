"""``chave outbox``: what the development sink "sent" to a number or an address.

``chave outbox --to "912 345 678" --last --json`` prints the newest message to that destination
as one JSON object (``to``, ``channel``, ``subject``, ``body``, ``sent_at`` in ISO 8601);
without ``--last`` it lists them newest first (a JSON array with ``--json``). The destination is
typed as a citizen would type it at the login: ``+351`` is assumed for a number without a
country code, e-mail addresses in any case. Reads only :class:`DevOutboxMessage`, which only the
sink writes; messages sent through real gateways are not kept in clear anywhere.
"""

from __future__ import annotations

import argparse
import json

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils.translation import gettext as _

from chave.commands import ChaveCommand
from chave.delivery.models import DevOutboxMessage, MessageStatus, OutboundMessage
from chave.identity.validation import parse_identifier, parse_x_user_id


def _limit(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(_("give a whole number, 1 or more"))
    return int(text)


def as_dict(message: DevOutboxMessage) -> dict:
    return {
        "to": message.to,
        "channel": message.channel,
        "subject": message.subject,
        "body": message.body,
        "sent_at": message.sent_at.isoformat(),
    }


class Command(ChaveCommand):
    help = (
        "Show the messages the development sink kept for a mobile number or e-mail address, newest "
        "first. Example: chave outbox --to \"912 345 678\" --last --json"
    )

    def add_arguments(self, parser):
        parser.add_argument("--to", required=True, metavar="NUMBER-OR-EMAIL",
                            help="Mobile number (+351 assumed without a country code) or e-mail address; "
                                 "an X account by its numeric user id.")
        parser.add_argument("--last", action="store_true", help="Only the newest message.")
        parser.add_argument("--json", action="store_true", help="Print JSON (an object with --last, else an array).")
        parser.add_argument("--limit", type=_limit, default=50, help="At most this many messages (default: 50).")

    def handle(self, *args, **options):
        try:
            self._show(**options)
        except DatabaseError as exc:
            raise CommandError(_("Cannot read the outbox (is the database migrated? `chave migrate`): %(error)s")
                               % {"error": exc.__class__.__name__}) from None

    def _show(self, **options):
        destination = self._destination(options["to"])
        last = options["last"]
        newest_first = DevOutboxMessage.objects.filter(to=destination).order_by("-sent_at", "-id")
        found = list(newest_first[: 1 if last else options["limit"]])
        if not found:
            waiting = OutboundMessage.objects.filter(destination=destination, status=MessageStatus.QUEUED).count()
            hint = (" " + _("%(n)d message(s) to it are still queued: is `chave worker` running?") % {"n": waiting}
                    if waiting else "")
            raise CommandError(_("No message was sent to %(to)s.") % {"to": destination} + hint)
        if options["json"]:
            payload = as_dict(found[0]) if last else [as_dict(m) for m in found]
            # ASCII escapes: valid JSON whatever the terminal's encoding.
            self.stdout.write(json.dumps(payload, indent=2))
            return
        for message in found:
            self.stdout.write(f"{message.sent_at.isoformat()}  {message.channel}  → {message.to}")
            if message.subject:
                self.stdout.write(_("Subject: %(subject)s") % {"subject": message.subject})
            self.stdout.write(message.body)
            self.stdout.write("")

    def _destination(self, text: str) -> str:
        """The stored form of what was typed: E.164 number, lower-case address or X user id."""
        try:
            return parse_identifier(text)[1]
        except ValidationError as exc:
            refusal = exc
        # Not a mobile number nor an address: an X user id, if the sink ever sent to one.
        try:
            x_user = parse_x_user_id(text)
        except ValidationError:
            x_user = None
        if x_user and DevOutboxMessage.objects.filter(channel="x", to=x_user).exists():
            return x_user
        raise CommandError(_("--to \"%(value)s\": %(problem)s") % {
            "value": text, "problem": " ".join(str(m) for m in refusal.messages)})

