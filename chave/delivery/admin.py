from django.contrib import admin

from .models import OutboundMessage


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    list_display = ("created_at", "channel", "kind", "status", "attempts", "provider", "sent_at")
    list_filter = ("channel", "kind", "status")
    exclude = ("body_sealed",)
    readonly_fields = [f.name for f in OutboundMessage._meta.fields if f.name != "body_sealed"]

    def has_add_permission(self, request):
        return False

    # The delivery log is evidence: read-only for everyone (the worker alone writes it).
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
