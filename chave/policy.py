"""Read access to the policy table (``settings.CHAVE_POLICY``).

Code asks ``policy.get("code_max_wrong")`` or ``policy.throttle("code_send_per_key")``; no rule
is a literal anywhere else. Tests override entries with Django's ``override_settings``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings


def get(name: str):
    return settings.CHAVE_POLICY[name]


@dataclass(frozen=True)
class ThrottleRule:
    name: str
    limit: int
    window: dt.timedelta


def throttle(name: str) -> ThrottleRule:
    limit, seconds = settings.CHAVE_POLICY["throttles"][name]
    return ThrottleRule(name, int(limit), dt.timedelta(seconds=seconds))


def code_lifetime(purpose: str) -> dt.timedelta:
    return dt.timedelta(seconds=settings.CHAVE_POLICY["code_lifetime_seconds"][purpose])


def assurance_level(method: str) -> int:
    return int(settings.CHAVE_POLICY["assurance_levels"][method])
