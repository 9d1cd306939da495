"""Append security events to the audit log."""

from __future__ import annotations

from chave import clock

from .models import AuditEvent

# Names that would suggest a secret is being written; refusing them keeps PINs and codes out.
_FORBIDDEN_DETAIL = {"pin", "code", "new_pin", "otp", "password", "secret", "token", "body"}


def record(
    event: str,
    *,
    outcome: str = "",
    citizen=None,
    channel: str = "",
    ip: str | None = None,
    **detail,
) -> AuditEvent:
    """Append one event. ``detail`` must be safe to show an auditor: never a PIN, code or key.

    Raises ``ValueError`` when a detail field is named like a secret.
    """
    bad = _FORBIDDEN_DETAIL.intersection(k.lower() for k in detail)
    if bad:
        raise ValueError(f"audit detail may not carry secrets: {sorted(bad)}")
    return AuditEvent.objects.create(
        at=clock.now(),
        event=event,
        outcome=outcome,
        citizen=citizen,
        channel=channel,
        ip=ip or None,
        detail={k: v for k, v in detail.items() if v is not None},
    )


def history(citizen, limit: int = 100):
    """The citizen's most recent events, newest first."""
    return AuditEvent.objects.filter(citizen=citizen)[:limit]
