"""``{% cancel_to_portal %}``: the "Cancel and go back to <portal>" button of every sign-in page
reached from a portal (a POST form with the CSRF token; no script)."""

from __future__ import annotations

from django import template

from chave.login import services

register = template.Library()


@register.inclusion_tag("login/_cancel.html", takes_context=True)
def cancel_to_portal(context):
    request = context.get("request")
    target = services.login_for(request) if request is not None else None
    return {"target": target if target and target.cancel_to else None, "csrf_token": context.get("csrf_token")}
