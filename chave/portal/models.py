"""What the personal area keeps of its own: the browser sessions of each key, and the reports
of uses that were not the owner's.

:class:`KeySession` rows are written when a session signs in (:data:`chave.login.signals.signed_in`)
and marked ended when it signs out or is ended; they hold the session key so that cancelling the
key, or a "this wasn't me" report, can end every browser session of it. Session keys are
credentials: they are never shown, exported or logged.
"""

from django.db import models


class KeySession(models.Model):
    key = models.ForeignKey("identity.Key", on_delete=models.CASCADE, related_name="browser_sessions")
    session_key = models.CharField(max_length=40, db_index=True)
    method = models.CharField(max_length=16)
    assurance_level = models.PositiveSmallIntegerField()
    signed_in_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-signed_in_at", "-id"]


class NotMeReport(models.Model):
    """The citizen said an event of their history was not them: the key was blocked at once."""

    citizen = models.ForeignKey("identity.Citizen", on_delete=models.PROTECT, related_name="not_me_reports")
    key = models.ForeignKey("identity.Key", on_delete=models.PROTECT, related_name="not_me_reports")
    event = models.OneToOneField("audit.AuditEvent", on_delete=models.PROTECT, related_name="not_me_report")
    reported_at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    # Whether this report blocked the key (False: it was blocked, cancelled or expired already).
    blocked_key = models.BooleanField(default=False)
    sessions_ended = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-reported_at", "-id"]
