"""Removing a device of the Chave app at the counter (``/counter/citizen/<id>/app/``): the clerk
sees the citizen's devices and removes one with the document presented and a reason, like every
counter action (a ``CounterAction`` and its audit event, the citizen told on every contact). The
counter's citizen page links here; the guard is the counter's own (:func:`staff_only`)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from chave.counter import services as counter
from chave.counter.forms import PresentedForm
from chave.counter.models import ActionKind
from chave.counter.roles import can
from chave.counter.views import _presented_initial, staff_only
from chave.identity.models import Citizen
from chave.login.services import client_ip

from . import services


def remove_at_counter(staff, device, presented, *, ip: str | None) -> None:
    """The clerk removes ``device`` (document and reason checked as for every counter action).
    Raises ``ValidationError`` for a bad document or reason, or a device removed already."""
    presented = counter.check_presented(device.key.citizen, presented)
    with transaction.atomic():
        if not services.remove_device(device, by=counter.by(staff), reason=presented.reason, ip=ip,
                                      channel=counter.CHANNEL):
            raise ValidationError(_("This device was removed already."), code="already_removed")
        counter.record_action(staff, ActionKind.APP_REMOVE, device.key.citizen, device.key, presented, ip=ip,
                              device=str(device.pk), device_name=device.name)


@staff_only("citizen.view")
@require_http_methods(["GET", "POST"])
def devices(request, pk: int):
    citizen = get_object_or_404(Citizen, pk=pk)
    key = citizen.key
    found = list(services.devices_of(key)) if key else []
    may_act = can(request.staff.role, "citizen.act")
    form = PresentedForm(request.POST if request.method == "POST" else None, prefix="app", citizen=citizen,
                         initial=_presented_initial(citizen))
    status = 200
    if request.method == "POST":
        if not may_act:
            return render(request, "counter/forbidden.html", {"staff": request.staff}, status=403)
        device = next((d for d in found if str(d.pk) == request.POST.get("device")), None)
        if device is None:
            raise Http404()
        if form.is_valid():
            try:
                remove_at_counter(request.staff, device, form.presented(), ip=client_ip(request))
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, _("The device is removed. The citizen is told on every contact."))
                return redirect("counter:citizen", pk=citizen.pk)
        status = 400
    return render(request, "app/counter_devices.html", {
        "staff": request.staff, "citizen": citizen, "devices": found, "form": form, "may_act": may_act,
    }, status=status)
