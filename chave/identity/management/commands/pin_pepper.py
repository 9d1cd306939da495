"""``chave pin-pepper init``: make the PIN pepper key in the HSM (once, before the first PIN).

The key is an HMAC-SHA-256 secret generated inside the token named by ``CHAVE_PIN_HSM_TOKEN_LABEL``
(the signing HSM's by default), sensitive and never extractable, labelled
``CHAVE_PIN_PEPPER_KEY_LABEL``. Running it again changes nothing. ``chave pin-pepper status``
says whether the key is there (exit 1 when not).
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError

from chave.commands import ChaveCommand
from chave.identity import pins


class Command(ChaveCommand):
    help = "The PIN pepper key in the HSM: init (make it unless present) or status."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["init", "status"])

    def handle(self, *args, action: str, **options):
        label, token = settings.CHAVE_PIN_PEPPER_KEY_LABEL, settings.CHAVE_PIN_HSM_TOKEN_LABEL
        try:
            if action == "init":
                made = pins.ensure_pepper_key()
                self.stdout.write(f"PIN pepper key {label!r} {'made' if made else 'already present'} in token {token!r}")
                return
            present = pins.pepper_hsm().has_secret_key(label)
        except Exception as e:  # noqa: BLE001 - PKCS#11 failures of every kind: a clear message, no traceback
            raise CommandError(f"the HSM token {token!r} could not be used: {e}") from e
        if not present:
            raise CommandError(f"no PIN pepper key {label!r} in token {token!r}: run `chave pin-pepper init`")
        self.stdout.write(f"PIN pepper key {label!r} present in token {token!r}")
