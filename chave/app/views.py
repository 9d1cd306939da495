"""The installable app (PWA) at ``/app/``: its page, manifest and service worker.

The rest of Chave runs no script; ``/app/`` is the one place that does, under a Content-Security-
Policy of its own that allows only Chave's own scripts (``CHAVE_APP_CONTENT_SECURITY_POLICY``).
The page is rendered in the citizen's language; everything secret stays in the browser's
IndexedDB as non-extractable WebCrypto keys (``static/app/app.js``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from chave import policy

from . import push

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _with_policy(response):
    response["Content-Security-Policy"] = settings.CHAVE_APP_CONTENT_SECURITY_POLICY
    return response


@never_cache
@require_safe
def shell(request):
    return _with_policy(render(request, "app/shell.html", {
        "periods": policy.get("app_offline_periods"), "poll_seconds": policy.get("app_poll_seconds"),
        "vapid_public_key": push.vapid_public_key(), "digits": policy.get("code_digits"),
        "name_max": policy.get("app_device_name_max_length"), "period_choices": period_choices(),
    }))


def period_choices() -> list[tuple[int, str]]:
    """The offline-code lifetimes, as the citizen reads them ("30 seconds", "2 minutes")."""
    return [(s, ngettext("%(n)d second", "%(n)d seconds", s) % {"n": s} if s < 60 or s % 60 else
             ngettext("%(n)d minute", "%(n)d minutes", s // 60) % {"n": s // 60})
            for s in policy.get("app_offline_periods")]


@require_safe
def manifest(request):
    data = {
        "name": _("Chave — Digital Mobile Key"), "short_name": "Chave", "id": "/app/", "start_url": "/app/",
        "scope": "/app/", "display": "standalone", "orientation": "portrait", "background_color": "#ffffff",
        "theme_color": "#0b5394", "lang": request.LANGUAGE_CODE,
        "description": _("Security codes, sign-in approvals and offline codes for your Digital Mobile Key."),
        "icons": [{"src": static(f"app/icon-{size}.png"), "sizes": f"{size}x{size}", "type": "image/png",
                   "purpose": "any maskable"} for size in (192, 512)],
    }
    response = HttpResponse(json.dumps(data, ensure_ascii=False), content_type="application/manifest+json")
    return _with_policy(response)


SHELL_FILES = ("app/app.js", "app/app.css", "app/icon-192.png", "app/icon-512.png")


@functools.lru_cache(maxsize=1)
def _version() -> str:
    """Changes when the app's files change, so that the service worker replaces its cache."""
    digest = hashlib.sha256()
    for name in SHELL_FILES:
        digest.update((STATIC_DIR / name).read_bytes())
    digest.update((Path(__file__).resolve().parent / "templates" / "app" / "shell.html").read_bytes())
    return digest.hexdigest()[:12]


@require_safe
def service_worker(request):
    shell = [reverse("app:shell"), *(static(name) for name in SHELL_FILES)]
    response = render(request, "app/sw.js", {"version": _version(), "shell_json": json.dumps(shell)},
                      content_type="application/javascript")
    response["Cache-Control"] = "no-cache"
    response["Service-Worker-Allowed"] = "/app/"
    return _with_policy(response)
