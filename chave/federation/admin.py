"""Staff tooling for the registry until the counter issue brings its own screens.

Relying parties are shown read-only: they are registered with ``chave rp add`` and change only
through :mod:`chave.federation.services` and :mod:`chave.oidc.services`. Approving and suspending are admin actions that ask for a
reason and call :func:`chave.federation.services.decide` with the staff member's username; the
decision history is shown inline. No secret is ever shown (the secret's hash is left out too).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .models import Consent, RelyingParty, RelyingPartyEvent


class EventInline(admin.TabularInline):
    model = RelyingPartyEvent
    extra = 0
    fields = readonly_fields = ("at", "action", "by", "reason")
    ordering = ("at", "id")
    can_delete = False
    verbose_name = _("decision")
    verbose_name_plural = _("history")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (kept in the portal's history)"), max_length=services.REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )


@admin.register(RelyingParty)
class RelyingPartyAdmin(admin.ModelAdmin):
    list_display = ("name", "client_id", "state", "min_level", "auth_method", "entity_nif", "created_at")
    list_filter = ("state", "auth_method", "min_level", "subject_type")
    search_fields = ("name", "client_id", "entity_nif", "contact_email")
    ordering = ("-created_at",)
    exclude = ("client_secret_hash",)
    readonly_fields = (
        "client_id", "name", "entity_nif", "contact_email", "state", "state_changed_at", "redirect_uris",
        "post_logout_redirect_uris", "backchannel_logout_uri", "allowed_attributes", "mandatory_attributes",
        "min_level", "auth_method", "jwks", "jwks_uri", "sector_identifier", "subject_type", "id_token_alg",
        "created_at",
    )
    inlines = [EventInline]
    actions = ["approve", "suspend"]

    # Registration goes through `chave rp add` (the service validates everything); changes go
    # through the actions below; a party's history is never deleted.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_decide_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description=_("Approve (or reinstate) the selected portals"), permissions=["decide"])
    def approve(self, request, queryset):
        return self._decide(request, queryset, "approve", title=_("Approve portals"), explanation=_(
            "These portals will be able to log citizens in. Suspended ones are reinstated."))

    @admin.action(description=_("Suspend the selected portals"), permissions=["decide"])
    def suspend(self, request, queryset):
        return self._decide(request, queryset, "suspend", title=_("Suspend portals"), explanation=_(
            "New logins, code redemption and token refresh stop at once for these portals."))

    def _decide(self, request, queryset, action, *, title, explanation):
        """First show a page asking for the reason; on its submission, decide each party."""
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            done, refused = 0, []
            for party in queryset:
                try:
                    services.decide(party, action, by=request.user.get_username(), reason=form.cleaned_data["reason"])
                    done += 1
                except ValidationError as exc:
                    refused.append(f"{party.name} ({party.client_id}): {' '.join(exc.messages)}")
            if done:
                self.message_user(request, ngettext("%(n)d portal changed.", "%(n)d portals changed.", done)
                                  % {"n": done}, messages.SUCCESS)
            for line in refused:
                self.message_user(request, line, messages.ERROR)
            return None  # back to the list
        return TemplateResponse(request, "admin/federation/relyingparty/decide.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts, "title": title, "explanation": explanation, "form": form,
            "queryset": queryset, "action": action, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        })


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    list_display = ("citizen", "relying_party", "updated_at")
    readonly_fields = ("citizen", "relying_party", "granted", "refused", "updated_at")

    # A consent is the citizen's: given and withdrawn by them (the personal area), never here.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
