"""``chave oidc_keys``: the provider's signing keys.

``chave oidc_keys rotate`` retires the active keys and makes a new RS256 and a new ES256 key: new
ID tokens are signed with them at once, and the retired keys stay in ``/oidc/jwks`` until what
they signed has expired (``oidc_key_retention_seconds``). ``chave oidc_keys list [--json]``
shows every key: ``kid``, ``alg``, when it was made and retired, and until when it is published.
Private keys are never printed.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext as _

from chave import clock
from chave.oidc import keys
from chave.oidc.management.commands.rp import cli_operator


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def describe(row, now) -> dict:
    until = keys.published_until(row)
    return {
        "kid": row.kid,
        "alg": row.alg,
        "created_at": _iso(row.created_at),
        "retired_at": _iso(row.retired_at),
        "published_until": _iso(until),
        "active": row.retired_at is None,
        "published": until is None or until > now,
    }


def _local(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "—"


class Command(BaseCommand):
    help = "List the provider's ID token signing keys (list) or retire them and make new ones (rotate)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", metavar="{list,rotate}", required=True)
        rotate = sub.add_parser(
            "rotate", help="Retire the active signing keys and make new RS256 and ES256 keys.",
            description="New ID tokens are signed with the new keys at once; the retired keys stay published "
                        "in the JWKS until the tokens they signed have expired.",
        )
        rotate.add_argument("--json", action="store_true", help="print the new keys as a JSON array")
        listing = sub.add_parser("list", help="Show every signing key, newest first.")
        listing.add_argument("--json", action="store_true", help="print a JSON array")

    def handle(self, *args, **options):
        try:
            if options["action"] == "rotate":
                self.rotate(options)
            else:
                self.list(options)
        except DatabaseError as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(_("The database cannot be used (%(error)s). Is it running, and was `chave migrate` "
                                 "run?") % {"error": detail})

    def rotate(self, options) -> None:
        new = keys.rotate(by=cli_operator())
        now = clock.now()
        if options["json"]:
            self.stdout.write(json.dumps([describe(row, now) for row in new], indent=2))
            return
        self.stdout.write(_("Signing keys rotated. New ID tokens are signed with:"))
        for row in new:
            self.stdout.write(f"  {row.alg}  {row.kid}")
        self.stdout.write(_("The retired keys stay published until %(when)s.")
                          % {"when": _local(now + keys.retention())})

    def list(self, options) -> None:
        now = clock.now()
        rows = keys.all_keys()
        if options["json"]:
            self.stdout.write(json.dumps([describe(row, now) for row in rows], indent=2))
            return
        if not rows:
            self.stdout.write(_("No signing keys yet: the first is made when a token is signed or the JWKS is "
                                "read, or with `chave oidc_keys rotate`."))
            return
        for row in rows:
            until = keys.published_until(row)
            if row.retired_at is None:
                state = _("active")
            elif until > now:
                state = _("retired, published until %(when)s") % {"when": _local(until)}
            else:
                state = _("retired, no longer published")
            self.stdout.write(f"{row.alg}  {row.kid}  {_('made')} {_local(row.created_at)}  {state}")
