"""What Chave's own management commands (``chave citizen``, ``chave serve``…) share."""

from __future__ import annotations

from django.core.checks import Tags
from django.core.management.base import BaseCommand

# Every system check but the URL configuration's. That one imports every view, and with them
# pyHanko, pysaml2 and Authlib: about a second at each start and some 70 MB that a command
# serving no page never uses. Whatever serves the pages checks the URLs (``chave serve``, and
# gunicorn's master as it loads the application), and so does ``chave check``.
CHECKS_BUT_URLS = [tag for name, tag in vars(Tags).items() if not name.startswith("_") and tag != Tags.urls]


class ChaveCommand(BaseCommand):
    requires_system_checks = CHECKS_BUT_URLS
