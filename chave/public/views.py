from django.conf import settings
from django.http import Http404
from django.shortcuts import render


def home(request):
    return render(request, "public/home.html")


def faq(request):
    return render(request, "public/faq.html")


def help_page(request):
    return render(request, "public/help.html")


def dev_outbox(request):
    """Development only: the messages the sink kept, newest first."""
    if settings.CHAVE_ENV != "dev":
        raise Http404()
    from chave.delivery.models import DevOutboxMessage

    return render(request, "public/dev_outbox.html", {"messages_kept": DevOutboxMessage.objects.all()[:50]})
