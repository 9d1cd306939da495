"""Citizen Card challenges: single use, short-lived, bound to one browser session and one origin.

A challenge is issued when Chave's card page is shown (:func:`chave.card.services.issue_challenge`).
The browser session keeps its id and a random *binder* (the row keeps only the binder's hash), so
only that session can finish the login. The agent's answer (POST ``/card/return``, which carries
no session: it comes from the agent's page) is checked at once and recorded here with a random
*finish token* (hash kept) that only the answering browser receives, in the redirect to the
GET that finishes the login in its session. Each step happens at most once (conditional updates).
"""

import uuid

from django.db import models


class CardChallenge(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending"
        VERIFIED = "verified"
        REFUSED = "refused"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    challenge = models.CharField(max_length=64)
    origin = models.CharField(max_length=200)
    binder_hash = models.CharField(max_length=64)
    next_url = models.CharField(max_length=500, blank=True)
    # Who reads the card: a citizen (signed in with their key when they have one) or a member of
    # counter staff (the counter signs them in; the citizen session is left alone).
    purpose = models.CharField(max_length=10, default="citizen")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    finish_hash = models.CharField(max_length=64, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    reason = models.CharField(max_length=40, blank=True)
    # The CardIdentity read from a verified certificate (NIC, names, serial, fingerprint).
    identity = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"])]
