"""The citizen's acceptance of the terms of use, one row per registration that accepted them."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class TermsAcceptance(models.Model):
    """A citizen accepted a version of the terms of use: when, where (online, at a counter) and
    from which address. Kept as long as the citizen's record (it is part of the registration)."""

    citizen = models.ForeignKey("identity.Citizen", on_delete=models.CASCADE, related_name="terms_acceptances")
    version = models.CharField(max_length=20)
    accepted_at = models.DateTimeField()
    channel = models.CharField(max_length=16)  # web | counter | cli
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-accepted_at"]
        verbose_name = _("terms of use acceptance")

    def __str__(self) -> str:
        return f"{self.citizen_id} {self.version} {self.accepted_at:%Y-%m-%d}"
