"""The ``chave`` console command: Django's management commands under the project's settings.

``chave citizen add …``, ``chave outbox …``, ``chave serve``, ``chave worker`` and every
Django command (``chave migrate``) go through here.
"""

from __future__ import annotations

import faulthandler
import os
import sys

# Commands the issues name with hyphens (Django command modules cannot contain them).
HYPHENATED = {"dev-pki": "dev_pki", "dev-card": "dev_card", "card-agent": "card_agent",
              "pin-pepper": "pin_pepper"}


def enable_faulthandler() -> None:
    try:
        faulthandler.enable()
    except (AttributeError, OSError, RuntimeError, ValueError):  # no stderr with a file descriptor
        pass


def main(argv: list[str] | None = None) -> None:
    # A process that dies of a fatal signal (a C library's crash) leaves every thread's Python
    # traceback on stderr, in the service's log, instead of only an exit code.
    enable_faulthandler()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chave.settings")
    from django.core.management import execute_from_command_line

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in HYPHENATED:
        args[0] = HYPHENATED[args[0]]
    execute_from_command_line(["chave", *args])


if __name__ == "__main__":
    main()
