"""An SCMD integrator: HTTP Basic credentials bound to one ``ApplicationId``.

The password is a random 256-bit secret shown once (``chave signing integrator add --soap``) and
kept only as a SHA-256 hash: it has the entropy of a key, so a slow hash adds nothing. Rotating
it makes a new secret at once; the old one stops working. A disabled integrator is refused.
"""

from __future__ import annotations

from django.db import models


class Integrator(models.Model):
    name = models.CharField(max_length=200)  # shown to citizens in the code message
    username = models.CharField(max_length=64, unique=True)
    secret_hash = models.CharField(max_length=64)
    # The ApplicationId the integrator sends (its bytes are this text's UTF-8, as AMA's are).
    application_id = models.CharField(max_length=100, unique=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"SCMD integrator {self.name} ({self.username})"

    @property
    def client_id(self) -> str:
        """Who the signing core counts and audits this integrator as (its own limits)."""
        return f"scmd:{self.username}"
