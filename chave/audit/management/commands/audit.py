"""``chave audit verify``: check the audit log's hash chain (chave/audit/chain.py)."""

from __future__ import annotations

import json
import sys

from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from chave.audit import chain
from chave.commands import ChaveCommand


class Command(ChaveCommand):
    help = (
        "The audit log. `chave audit verify` checks its hash chain event by event and exits 1 if any event "
        "was changed, removed or added after it was written; `--json` prints the result with each stream's "
        "head, which kept elsewhere (write-once storage) and given back later with `--anchors FILE` also "
        "shows a cut end of the log."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="Check the hash chain; exit 1 on a break.")
        verify.add_argument("--json", action="store_true", help="Print the result as JSON (with the heads).")
        verify.add_argument("--anchors", metavar="FILE",
                            help="Heads printed by an earlier `chave audit verify --json`: they must still be there.")

    def handle(self, *args, action, **options):
        anchors = None
        if options["anchors"]:
            try:
                with open(options["anchors"], encoding="utf-8") as handle:
                    anchors = json.load(handle)["heads"]
                if not isinstance(anchors, dict) or not all(
                        isinstance(a, dict) and {"seq", "hash"} <= a.keys() for a in anchors.values()):
                    raise ValueError
            except OSError as exc:
                raise CommandError(_("Cannot read %(file)s: %(error)s") % {"file": options["anchors"],
                                                                          "error": exc.strerror}) from None
            except (ValueError, KeyError, TypeError):
                raise CommandError(_("%(file)s is not the JSON output of `chave audit verify --json`.")
                                   % {"file": options["anchors"]}) from None
        result = chain.verify(anchors=anchors)
        breaks = [line for report in result.streams.values() for line in report.breaks]
        if options["json"]:
            self.stdout.write(json.dumps({"ok": result.ok, "events": result.events, "streams": len(result.streams),
                                          "breaks": breaks, "heads": result.heads()}, indent=2))
        elif result.ok:
            self.stdout.write(_("The audit log is intact. Events: %(events)d. Streams: %(streams)d.")
                              % {"events": result.events, "streams": len(result.streams)})
        else:
            self.stdout.write(_("The audit log was tampered with:"))
            for line in breaks:
                self.stdout.write("  " + line)
        if not result.ok:
            sys.exit(1)
