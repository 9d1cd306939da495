"""``chave housekeeping [--json]``: one pass of the key housekeeping jobs (reminders, expiry,
revocation for disuse). Idempotent and safe on several instances at once; schedule it (README.md)."""

from __future__ import annotations

import json



from chave.commands import ChaveCommand
from chave.counter import housekeeping


class Command(ChaveCommand):
    help = ("Remind, expire and revoke keys, end lapsed single sign-on sessions and close deliveries dead workers "
            "left half-done (run periodically, e.g. hourly).")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        result = housekeeping.run().as_dict()
        if opts["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(", ".join(f"{name.replace('_', ' ')}: {count}" for name, count in result.items()))
