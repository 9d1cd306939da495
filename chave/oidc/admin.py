from django.contrib import admin

from .models import Consent, RelyingParty, RelyingPartyEvent


class EventInline(admin.TabularInline):
    model = RelyingPartyEvent
    extra = 0
    readonly_fields = ("at", "action", "by", "reason")
    can_delete = False


@admin.register(RelyingParty)
class RelyingPartyAdmin(admin.ModelAdmin):
    list_display = ("name", "client_id", "state", "min_level", "auth_method", "created_at")
    list_filter = ("state", "auth_method", "min_level")
    search_fields = ("name", "client_id", "entity_nif")
    readonly_fields = ("client_id", "client_secret_hash", "created_at", "state_changed_at")
    inlines = [EventInline]


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    list_display = ("citizen", "relying_party", "updated_at")
    readonly_fields = ("citizen", "relying_party", "granted", "refused", "updated_at")
