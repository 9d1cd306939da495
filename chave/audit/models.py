"""The append-only, tamper-evident audit log of security events.

An event carries who (citizen), what (event name and outcome), how (channel), from where
(client IP) and safe detail. It never carries a PIN, a code or a key: :mod:`.services`
refuses detail fields with such names, and tests grep the table for the secrets they used.

Each event is a link of a hash chain (:mod:`.chain`): ``seq`` numbers it within its ``stream``,
``prev_hash`` is the previous link's ``hash``, and ``hash`` is an HMAC of its own fields and
``prev_hash``. Changing, removing or inserting an event breaks the chain (``chave audit verify``).
Writers running at once each take a stream of their own (one per concurrent transaction on
PostgreSQL; one stream on SQLite, whose writers are serialised). The database refuses UPDATE and
DELETE on the table (triggers, migration 0002).
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
    stream = models.PositiveIntegerField(default=0)
    seq = models.PositiveBigIntegerField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["citizen", "-at"])]
        constraints = [models.UniqueConstraint(fields=["stream", "seq"], name="audit_one_link_per_place")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.event} {self.outcome}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("audit events are append-only")
