"""What the public pages tell citizens about the rules, read from the policy table.

The home page and the FAQ state lock durations, code lifetimes, PIN lengths and ages; every one of
those numbers comes from :mod:`chave.policy` here, so that the pages say what the service does
(change ``CHAVE_POLICY`` and the pages change with it). Nothing here writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils.translation import ngettext

from chave import policy

_DAYS_PER_MONTH = 365.25 / 12


def duration(seconds: int) -> str:
    """A wait in words, in the current language: "45 seconds", "15 minutes", "1 hour", "2 days"."""
    seconds = int(seconds)
    if seconds < 60 or seconds % 60:
        return ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds}
    minutes = seconds // 60
    if minutes < 60 or minutes % 60:
        return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}
    hours = minutes // 60
    if hours < 48 or hours % 24:
        return ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}
    days = hours // 24
    return ngettext("%(n)d day", "%(n)d days", days) % {"n": days}


def period_of_days(days: int) -> str:
    """A period given in days, said in months when it is a whole number of months (548 → 18 months)."""
    days = int(days)
    months = round(days / _DAYS_PER_MONTH)
    if months >= 2 and abs(days - months * _DAYS_PER_MONTH) < 2:
        return ngettext("%(n)d month", "%(n)d months", months) % {"n": months}
    return ngettext("%(n)d day", "%(n)d days", days) % {"n": days}


@dataclass(frozen=True)
class LockStep:
    failures: int  # consecutive wrong PINs
    wait: str  # how long the key stays locked, in words


@dataclass(frozen=True)
class Facts:
    lock_steps: list[LockStep]
    first_lock_after: int
    block_after: int
    pin_min_length: int
    pin_max_length: int
    code_digits: int
    code_lifetime: str
    code_max_wrong: int
    resend_after: str
    max_sends: int
    min_age: int
    temporary_pin_days: int
    validity_after_card_days: int
    inactivity_revoke: str  # "" when switched off
    level_citizen_card: int
    level_sms: int
    level_email: int
    x_offered: bool  # whether codes may also go by X direct message
    features: Features  # what this instance offers: the pages never promise more


@dataclass(frozen=True)
class Features:
    """What the service does here and now, found where it is decided: a feature is offered when
    its pages are routed and, where it needs configuration, configured. The home page and the FAQ
    describe a feature as available only through these (chave/public/tests/test_truthful_pages.py)."""

    card_registration: bool  # online registration and recovery with the Citizen Card and a reader
    signing: bool  # signing PDF documents in the personal area
    app: bool  # the Chave app: codes and sign-in approvals on a smartphone


def _routed(name: str) -> bool:
    try:
        reverse(name)
    except NoReverseMatch:
        return False
    return True


def features() -> Features:
    # A card is only checked against configured trust anchors; development has its test PKI.
    card_trusted = bool(settings.CHAVE_CARD_TRUST_ANCHORS) or not settings.IS_PRODUCTION
    return Features(
        card_registration=_routed("card:register") and card_trusted,
        signing=_routed("signing:home"),
        app=_routed("app:shell") and _routed("app_area:devices"),
    )


def current() -> Facts:
    """The rules as the service applies them now, worded for citizens in the active language."""
    steps = sorted((int(failures), int(seconds)) for failures, seconds in policy.get("pin_lock_steps").items())
    block_after = int(policy.get("pin_block_after"))
    lock_steps = [LockStep(failures, duration(seconds)) for failures, seconds in steps if failures < block_after]
    revoke_days = int(policy.get("inactivity_revoke_days") or 0)
    return Facts(
        lock_steps=lock_steps,
        first_lock_after=lock_steps[0].failures if lock_steps else block_after,
        block_after=block_after,
        pin_min_length=int(policy.get("pin_min_length")),
        pin_max_length=int(policy.get("pin_max_length")),
        code_digits=int(policy.get("code_digits")),
        code_lifetime=duration(policy.code_lifetime("login").total_seconds()),
        code_max_wrong=int(policy.get("code_max_wrong")),
        resend_after=duration(policy.get("code_resend_cooldown_seconds")),
        max_sends=int(policy.get("code_max_sends_per_transaction")),
        min_age=int(policy.get("citizen_min_age_years")),
        temporary_pin_days=int(policy.get("temporary_pin_days")),
        validity_after_card_days=int(policy.get("key_validity_after_card_days")),
        inactivity_revoke=period_of_days(revoke_days) if revoke_days > 0 else "",
        level_citizen_card=policy.assurance_level("citizen_card"),
        level_sms=policy.assurance_level("sms"),
        level_email=policy.assurance_level("email"),
        x_offered=settings.CHAVE_X_PROVIDER != "off",
        features=features(),
    )

