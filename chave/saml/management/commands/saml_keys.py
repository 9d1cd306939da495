"""``chave saml_keys``: the SAML identity provider's signing key and certificate.

``chave saml_keys list [--json]`` shows each certificate's fingerprint (SHA-256), when it was made,
until when it is valid, and whether it signs, is still published in ``/saml/metadata`` (the grace
period after a rotation, ``saml_key_grace_seconds``) or is gone. ``chave saml_keys rotate`` makes
a new key that signs at once; portals that pinned the old certificate keep verifying during the
grace period while they fetch the new metadata. Private keys are never printed.
"""

from __future__ import annotations

import json

from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext as _

from chave import clock
from chave.commands import ChaveCommand
from chave.oidc.management.commands.rp import cli_operator
from chave.saml import keys


def describe(row, now) -> dict:
    until = keys.published_until(row)
    return {
        "fingerprint_sha256": row.kid,
        "created_at": row.created_at.isoformat(),
        "not_after": row.not_after.isoformat(),
        "retired_at": row.retired_at.isoformat() if row.retired_at else None,
        "published_until": until.isoformat() if until else None,
        "signing": row.retired_at is None,
        "published": until is None or until > now,
    }


def _local(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


class Command(ChaveCommand):
    help = "The SAML IdP's signing certificate: list them, or rotate (a new key signs at once; the old "
    help += "certificate stays in the metadata for the grace period)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", metavar="{list,rotate}", required=True)
        rotate = sub.add_parser("rotate", help="Make a new signing key; the old certificate stays published "
                                               "for saml_key_grace_seconds.")
        rotate.add_argument("--json", action="store_true", help="print the new key as JSON")
        listing = sub.add_parser("list", help="Show every signing certificate, newest first.")
        listing.add_argument("--json", action="store_true", help="print a JSON array")

    def handle(self, *args, **options):
        try:
            if options["action"] == "rotate":
                row = keys.rotate(by=cli_operator())
                if options["json"]:
                    self.stdout.write(json.dumps(describe(row, clock.now()), indent=2))
                    return
                self.stdout.write(_("New SAML signing certificate (SHA-256 %(fingerprint)s); it signs from now on.")
                                  % {"fingerprint": row.kid})
                self.stdout.write(_("The previous one stays in the metadata until %(when)s: tell the portals to "
                                    "fetch /saml/metadata again.")
                                  % {"when": _local(row.created_at + keys.grace())})
                return
            now = clock.now()
            rows = keys.all_keys()
            if options["json"]:
                self.stdout.write(json.dumps([describe(row, now) for row in rows], indent=2))
                return
            if not rows:
                self.stdout.write(_("No SAML signing key yet: `chave migrate` or `chave saml_keys rotate` makes one."))
                return
            for row in rows:
                until = keys.published_until(row)
                if row.retired_at is None:
                    state = _("signs now")
                elif until > now:
                    state = _("retired, published until %(when)s") % {"when": _local(until)}
                else:
                    state = _("retired, no longer published")
                self.stdout.write(f"{row.kid[:16]}…  {_('made')} {_local(row.created_at)}  "
                                  f"{_('valid until')} {_local(row.not_after)}  {state}")
        except DatabaseError as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(_("The database cannot be used (%(error)s). Is it running, and was `chave migrate` "
                                 "run?") % {"error": detail})
