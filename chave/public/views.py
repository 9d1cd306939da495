"""The public pages: what the key is, questions and answers, help, and the development outbox.

Read-only and thin: the rules the pages state come from :mod:`chave.public.facts` (the policy
table), the help contacts from settings (see :mod:`chave.public.context`).
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_safe

from . import facts


@require_safe
def home(request):
    return render(request, "public/home.html", {"facts": facts.current()})


@require_safe
def faq(request):
    return render(request, "public/faq.html", {"facts": facts.current()})


@require_safe
def help_page(request):
    return render(request, "public/help.html")


@require_safe
def terms(request):
    from .terms import TERMS_VERSION

    return render(request, "public/terms.html", {"facts": facts.current(), "version": TERMS_VERSION})


@require_safe
def privacy(request):
    return render(request, "public/privacy.html", {"facts": facts.current()})


@require_safe
def dev_outbox(request):
    """Development only: the messages the sink kept, newest first. Not found anywhere else."""
    if settings.CHAVE_ENV != "dev":
        raise Http404()
    from chave.delivery.models import DevOutboxMessage

    return render(request, "public/dev_outbox.html", {"messages_kept": DevOutboxMessage.objects.all()[:50]})
