"""Message providers: one small interface, one adapter per gateway.

A provider has a ``name`` and one method, ``submit_message(to, body, subject="") -> str``,
which hands the message to its gateway and returns the gateway's reference (or ""). It raises
:class:`TemporaryFailure` when trying again later may work (gateway down, 5xx, throttled) and
:class:`PermanentFailure` when it will not (rejected destination, bad credentials).
Which provider serves a channel is a setting (``CHAVE_SMS_PROVIDER`` and friends); the sink,
HTTP gateways and SMTP are all just providers, so the channel code has no test branches.
"""

from __future__ import annotations

from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class DeliveryFailure(Exception):
    pass


class TemporaryFailure(DeliveryFailure):
    pass


class PermanentFailure(DeliveryFailure):
    pass


class Provider(Protocol):
    name: str

    def submit_message(self, to: str, body: str, subject: str = "") -> str: ...


# Short names accepted in settings; anything else is taken as a dotted path to a provider class.
PROVIDERS = {
    "sms": {"sink": "chave.delivery.providers.sink.DevSink", "kannel": "chave.delivery.providers.kannel.KannelSms"},
    "email": {"sink": "chave.delivery.providers.sink.DevSink", "smtp": "chave.delivery.providers.smtp.SmtpEmail"},
    "x": {"sink": "chave.delivery.providers.sink.DevSink", "xapi": "chave.delivery.providers.xapi.XDirectMessage"},
    # The Chave app (issue 12): the device's inbox, and Web Push when the device gave a subscription.
    "app": {"webpush": "chave.app.push.AppDelivery"},
}
_SETTING = {"sms": "CHAVE_SMS_PROVIDER", "email": "CHAVE_EMAIL_PROVIDER", "x": "CHAVE_X_PROVIDER",
            "app": "CHAVE_APP_PUSH_PROVIDER"}


def configured_name(channel: str) -> str:
    return getattr(settings, _SETTING[channel])


def provider_for(channel: str) -> Provider | None:
    """The provider configured for ``channel``, or None when the channel is off."""
    name = configured_name(channel)
    if name in ("", "off"):
        return None
    path = PROVIDERS[channel].get(name, name)
    return import_string(path)(channel)


def enabled_channels() -> list[str]:
    return [c for c in ("sms", "email", "x", "app") if configured_name(c) not in ("", "off")]
