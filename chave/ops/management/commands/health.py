"""``chave health``: the readiness checks of ``/health/ready`` from the command line (JSON), exit
status 0 when ready (``ok`` or ``degraded``), 1 when not; ``--strict`` also fails on degraded."""

import json

from django.core.management.base import CommandError

from chave.commands import ChaveCommand
from chave.ops import checks


class Command(ChaveCommand):
    help = "Check the database, cache, delivery worker and signing HSM; print JSON."

    def add_arguments(self, parser):
        parser.add_argument("--strict", action="store_true", help="fail when degraded, not only when unavailable")

    def handle(self, *args, strict=False, **options):
        code, answer = checks.readiness()
        self.stdout.write(json.dumps(answer, indent=2, sort_keys=True))
        if code != 200 or (strict and answer["status"] != "ok"):
            raise CommandError(f"not ready: {answer['status']}")
