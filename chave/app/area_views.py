"""The Chave app in the personal area (``/area/app/``): the key's devices, adding one (a QR code
made on the server and a short code, no script), renaming and removing. The area's guard
(:func:`chave.portal.views.area`) admits the signed-in citizen; adding a device also needs a
recent sign-in of level 3 or more (:func:`chave.app.services.may_pair`)."""

from __future__ import annotations

import segno
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from chave import policy
from chave.login.services import client_ip
from chave.portal.views import area

from . import services
from .forms import DeviceNameForm


def _posted(request):
    return request.POST if request.method == "POST" else None


def qr_image(text: str) -> str:
    """A QR code of ``text`` as an SVG data URI for an ``<img>`` (made here: the page runs no script)."""
    return segno.make(text, error="m").svg_data_uri(scale=6, border=3, dark="#0b0c0c", light="#ffffff")


@area()
@require_safe
def devices(request, who, key):
    return render(request, "app/area_devices.html", {
        "devices": list(services.devices_of(key)), "may": services.may_pair(key, who.assurance_level),
        "max_devices": policy.get("app_max_devices"), "refusals": services.PAIR_REFUSALS,
    })


@area(recent=True, usable=True)
@require_POST
def add(request, who, key):
    try:
        started = services.start_pairing(key, assurance_level=who.assurance_level, ip=client_ip(request))
    except services.AppRefusal as refusal:
        messages.error(request, str(refusal.message))
        return redirect("app_area:devices")
    return render(request, "app/area_pairing.html", {
        "started": started, "qr": qr_image(started.link),
        "minutes": policy.get("app_pairing_seconds") // 60,
    })


def _device(key, device_id):
    device = services.devices_of(key).filter(pk=device_id).first()
    if device is None:
        raise Http404()
    return device


@area(usable=True)
@require_http_methods(["GET", "POST"])
def rename(request, who, key, device_id):
    device = _device(key, device_id)
    form = DeviceNameForm(_posted(request), initial={"name": device.name})
    if request.method == "POST":
        if form.is_valid():
            services.rename_device(device, form.cleaned_data["name"], by="citizen", ip=client_ip(request))
            messages.success(request, _("The device is renamed."))
            return redirect("app_area:devices")
        return render(request, "app/area_rename.html", {"form": form, "device": device}, status=400)
    return render(request, "app/area_rename.html", {"form": form, "device": device})


@area()
@require_http_methods(["GET", "POST"])
def remove(request, who, key, device_id):
    device = _device(key, device_id)
    if request.method == "POST":
        services.remove_device(device, by="citizen", ip=client_ip(request))
        messages.success(request, _("The device is removed: it can no longer sign you in. We told you so on your "
                                    "contacts."))
        return redirect("app_area:devices")
    return render(request, "app/area_remove.html", {"device": device})
