"""``chave oidc_keys``: the provider's signing keys.

``chave oidc_keys rotate`` makes the next RS256 and ES256 keys: they are published in
``/oidc/jwks`` at once and sign only once the JWKS cache lifetime (``oidc_jwks_max_age_seconds``,
its ``Cache-Control: max-age``) has passed, so that portals caching the JWKS have them before
they need them; the keys they replace sign until then, are retired then, and stay published
until what they signed has expired (``oidc_key_retention_seconds``). ``chave oidc_keys activate``
makes the next keys sign at once — refused within the cache lifetime unless ``--force`` (a
portal that cached the JWKS just before the rotation could then not verify ID or logout tokens
until its cache expires). ``chave oidc_keys list [--json]`` shows every key: ``kid``, ``alg``,
when it was made, signs from, was retired, and until when it is published. Private keys are
never printed.
"""

from __future__ import annotations

import json

from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext as _

from chave import clock
from chave.commands import ChaveCommand
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
        "activates_at": _iso(row.activates_at or row.created_at),
        "retired_at": _iso(row.retired_at),
        "published_until": _iso(until),
        "active": (row.activates_at is None or row.activates_at <= now) and (row.retired_at is None
                                                                             or row.retired_at > now),
        "published": until is None or until > now,
    }


def _local(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "—"


class Command(ChaveCommand):
    help = ("The provider's ID token signing keys: list them, rotate (publish the next keys, which sign after the "
            "JWKS cache lifetime), activate (the next keys sign now; --force within the cache lifetime).")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", metavar="{list,rotate,activate}", required=True)
        rotate = sub.add_parser(
            "rotate", help="Publish the next RS256 and ES256 keys; they sign once the JWKS cache lifetime has passed.",
            description="The next keys are in the JWKS at once and sign after oidc_jwks_max_age_seconds; the keys "
                        "they replace sign until then and stay published until the tokens they signed have expired.",
        )
        rotate.add_argument("--json", action="store_true", help="print the new keys as a JSON array")
        activate = sub.add_parser(
            "activate", help="Make the next keys sign now (refused within the JWKS cache lifetime without --force).",
        )
        activate.add_argument("--force", action="store_true",
                              help="even within the cache lifetime: portals with a cached JWKS may fail to verify")
        activate.add_argument("--json", action="store_true", help="print the activated keys as a JSON array")
        listing = sub.add_parser("list", help="Show every signing key, newest first.")
        listing.add_argument("--json", action="store_true", help="print a JSON array")

    def handle(self, *args, **options):
        try:
            if options["action"] == "rotate":
                self.rotate(options)
            elif options["action"] == "activate":
                self.activate(options)
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
        self.stdout.write(_("Next signing keys published:"))
        for row in new:
            self.stdout.write(f"  {row.alg}  {row.kid}")
        starts = max(row.activates_at or row.created_at for row in new)
        self.stdout.write(_("They sign from %(when)s, once every portal caching the JWKS has fetched them "
                            "(`chave oidc_keys activate --force` to start earlier).") % {"when": _local(starts)})
        self.stdout.write(_("The keys they replace stay published until %(when)s.")
                          % {"when": _local(starts + keys.retention())})

    def activate(self, options) -> None:
        try:
            rows = keys.activate(force=options["force"], by=cli_operator())
        except keys.TooEarly as exc:
            raise CommandError(_("The next keys have been published for less than the JWKS cache lifetime: portals "
                                 "that cached the JWKS could not verify what they sign. They sign by themselves from "
                                 "%(when)s; use --force to start now anyway.") % {"when": _local(exc.ready_at)})
        now = clock.now()
        if options["json"]:
            self.stdout.write(json.dumps([describe(row, now) for row in rows], indent=2))
            return
        if not rows:
            self.stdout.write(_("No keys are waiting: `chave oidc_keys rotate` publishes the next ones."))
            return
        self.stdout.write(_("New ID tokens are signed with:"))
        for row in rows:
            self.stdout.write(f"  {row.alg}  {row.kid}")

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
            if row.activates_at and row.activates_at > now:
                state = _("next, published, signs from %(when)s") % {"when": _local(row.activates_at)}
            elif row.retired_at is None or row.retired_at > now:
                state = _("active")
            elif until > now:
                state = _("retired, published until %(when)s") % {"when": _local(until)}
            else:
                state = _("retired, no longer published")
            self.stdout.write(f"{row.alg}  {row.kid}  {_('made')} {_local(row.created_at)}  {state}")
