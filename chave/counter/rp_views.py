"""Relying-party administration: the registry's workflow (request, review, approve, suspend,
rotate the secret or change the keys) as pages for the relying-party administrator; the auditor
reads. Every write calls :mod:`chave.oidc.services`, which keeps each decision in the portal's
history with who made it and why, and audits it.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import (
    require_http_methods,
    require_POST,
    require_safe,
)

from chave import policy
from chave.federation import services as federation
from chave.federation.attributes import labels
from chave.federation.models import RelyingParty
from chave.oidc import services as registry
from chave.oidc.logout import deliveries_for

from .forms import (
    AUTH_METHODS,
    ClientSettingsForm,
    DecisionForm,
    KeysForm,
    ReasonForm,
    RelyingPartyRequestForm,
    SamlMetadataForm,
)
from .services import by, who_did
from .views import staff_only


def _reason_ok(form) -> bool:
    reason = " ".join(form.cleaned_data["reason"].split())
    if len(reason) < policy.get("counter_reason_min_length"):
        form.add_error("reason", ValidationError(_("Say why, in a few words."), code="reason_short"))
        return False
    return True


@staff_only("rp.view")
@require_safe
def rp_list(request):
    state = request.GET.get("state", "")
    parties = RelyingParty.objects.order_by("state", "name")
    if state in RelyingParty.State.values:
        parties = parties.filter(state=state)
    return render(request, "counter/rp_list.html", {"staff": request.staff, "parties": parties, "state": state,
                                                    "states": RelyingParty.State.choices})


@staff_only("rp.decide")
@require_http_methods(["GET", "POST"])
def rp_request(request):
    form = RelyingPartyRequestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            registration = registry.register_relying_party(**form.registration(), by=by(request.staff))
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return _rp_page(request, registration.relying_party, client_secret=registration.client_secret)
    status = 400 if request.method == "POST" else 200
    return render(request, "counter/rp_request.html", {"staff": request.staff, "form": form}, status=status)


def _rp_page(request, party, *, status=200, client_secret=None, decision_form=None, keys_form=None,
             settings_form=None, metadata_form=None):
    from chave.oidc.models import client_settings
    from chave.saml.models import ServiceProvider

    from chave.saml.services import soap_logout_url

    oidc_settings = client_settings(party)
    saml = ServiceProvider.objects.filter(relying_party=party).first()
    events = list(party.events.all())
    who = who_did([e.by for e in events])
    for event in events:
        event.who = who[event.by]
    return render(request, "counter/rp_detail.html", {
        "oidc_settings": oidc_settings,
        "settings_form": settings_form or ClientSettingsForm.for_party(oidc_settings, prefix="settings"),
        "saml": saml, "saml_soap_logout": soap_logout_url(saml) if saml else None,
        "metadata_form": metadata_form or SamlMetadataForm(prefix="metadata"),
        "staff": request.staff, "party": party, "events": events, "client_secret": client_secret,
        "attributes": labels(party.allowed_attributes), "mandatory_attributes": labels(party.mandatory_attributes),
        "auth_method": AUTH_METHODS.get(party.auth_method, party.auth_method),
        "may_decide": "rp.decide" in request.staff.capabilities,
        "decision_form": decision_form or DecisionForm(prefix="decide"),
        "keys_form": keys_form or KeysForm(prefix="keys"), "reason_form": ReasonForm(prefix="rotate"),
        "logouts": deliveries_for(party),
    }, status=status)


@staff_only("rp.view")
@require_safe
def rp_detail(request, client_id: str):
    return _rp_page(request, get_object_or_404(RelyingParty, client_id=client_id))


def _decide(request, party, form, form_name: str, perform, done_message: str):
    """Run ``perform(cleaned_data)`` once the form and its reason are good; back to the portal's
    page, or the page again with the form's errors (400)."""
    if form.is_valid() and _reason_ok(form):
        try:
            perform(form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, done_message)
            return redirect("counter:rp_detail", client_id=party.client_id)
    return _rp_page(request, party, status=400, **{form_name: form})


@staff_only("rp.decide")
@require_POST
def rp_decide(request, client_id: str):
    party = get_object_or_404(RelyingParty, client_id=client_id)
    return _decide(request, party, DecisionForm(request.POST, prefix="decide"), "decision_form",
                   lambda d: federation.decide(party, d["decision"], by=by(request.staff), reason=d["reason"]),
                   _("Decision recorded."))


@staff_only("rp.decide")
@require_POST
def rp_rotate_secret(request, client_id: str):
    party = get_object_or_404(RelyingParty, client_id=client_id)
    form = ReasonForm(request.POST, prefix="rotate")
    if form.is_valid() and _reason_ok(form):
        try:
            registration = registry.rotate_client_secret(party, by=by(request.staff), reason=form.cleaned_data["reason"])
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect("counter:rp_detail", client_id=client_id)
        return _rp_page(request, registration.relying_party, client_secret=registration.client_secret)
    messages.error(request, _("Say why, in a few words."))
    return redirect("counter:rp_detail", client_id=client_id)


@staff_only("rp.decide")
@require_POST
def rp_saml_metadata(request, client_id: str):
    """A SAML service provider's new metadata (its new certificate): same entity ID required."""
    from chave.saml import services as saml
    from chave.saml.models import ServiceProvider

    party = get_object_or_404(RelyingParty, client_id=client_id)
    sp = get_object_or_404(ServiceProvider, relying_party=party)

    def perform(data):
        try:
            saml.replace_metadata(sp, saml.read_metadata(data["metadata"].encode()), by=by(request.staff),
                                  reason=data["reason"])
        except ValidationError as error:  # the services name the field saml_metadata: it is this form's metadata
            raise ValidationError({"metadata": error.messages})

    return _decide(request, party, SamlMetadataForm(request.POST, prefix="metadata"), "metadata_form", perform,
                   _("The service provider's metadata is replaced."))


@staff_only("rp.decide")
@require_POST
def rp_set_keys(request, client_id: str):
    party = get_object_or_404(RelyingParty, client_id=client_id)
    return _decide(request, party, KeysForm(request.POST, prefix="keys"), "keys_form",
                   lambda d: registry.set_relying_party_keys(party, jwks=d["jwks"] or None, jwks_uri=d["jwks_uri"],
                                                             by=by(request.staff), reason=d["reason"]),
                   _("The portal's keys are changed."))


@staff_only("rp.decide")
@require_POST
def rp_set_settings(request, client_id: str):
    party = get_object_or_404(RelyingParty, client_id=client_id)
    form = ClientSettingsForm(request.POST, prefix="settings")
    if form.is_valid() and _reason_ok(form):
        try:
            registry.set_client_settings(party, by=by(request.staff), reason=form.cleaned_data["reason"],
                                         **form.changes())
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("The portal's settings are changed."))
            return redirect("counter:rp_detail", client_id=party.client_id)
    return _rp_page(request, party, status=400, settings_form=form)
