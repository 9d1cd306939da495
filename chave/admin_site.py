"""Django's admin behind the counter's own sign-in.

The admin is staff tooling on the public origin, so it takes no password of its own: an
account enters only through ``/counter/login`` (password + TOTP, or the member's Citizen Card,
throttled and audited there), and only while that staff session is alive
(``staff_idle_seconds``). The account must also be flagged for the admin (``is_staff``:
``chave staff add --admin``). Django's own login page is never shown.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.shortcuts import redirect
from django.urls import reverse


class ChaveAdminSite(admin.AdminSite):
    def has_permission(self, request):
        from chave.counter.views import current_staff

        return super().has_permission(request) and current_staff(request) is not None

    def login(self, request, extra_context=None):
        target = request.GET.get("next") or reverse("admin:index", current_app=self.name)
        return redirect(f"{reverse('counter:login')}?{urlencode({'next': target})}")


class ChaveAdminConfig(AdminConfig):
    default_site = "chave.admin_site.ChaveAdminSite"
