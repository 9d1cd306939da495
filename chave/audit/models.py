"""The append-only audit log of security events.

An event carries who (citizen), what (event name and outcome), how (channel), from where
(client IP) and safe detail. It never carries a PIN, a code or a key: :mod:`.services`
refuses detail fields with such names, and tests grep the table for the secrets they used.
"""

from django.db import models


class AuditEvent(models.Model):
    at = models.DateTimeField(db_index=True)
    event = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=32, blank=True)
    citizen = models.ForeignKey(
        "identity.Citizen", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    channel = models.CharField(max_length=16, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["citizen", "-at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.event} {self.outcome}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("audit events are append-only")
