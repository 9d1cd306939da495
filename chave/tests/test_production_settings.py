"""Production refuses to start without its secrets, with DEBUG, or with the development sink."""

import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

pytestmark = pytest.mark.once  # the same on any database: SQLite pass only


def _pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


VAPID_KEY = _pem(ec.generate_private_key(ec.SECP256R1()))
GOOD = {
    "CHAVE_ENV": "production",
    "CHAVE_SECRET_KEY": "s" * 50,
    "CHAVE_PIN_PEPPER": "p" * 40,
    "CHAVE_PAIRWISE_SALT": "w" * 40,
    "CHAVE_KEY_SEAL_SECRET": "k" * 40,
    "CHAVE_SIGNING_USER_PIN": "h" * 16,
    "CHAVE_MESSAGE_KEY": "m" * 40,
    "CHAVE_AUDIT_KEY": "a" * 40,
    "CHAVE_SMS_PROVIDER": "kannel",
    "CHAVE_EMAIL_PROVIDER": "smtp",
    "CHAVE_ALLOWED_HOSTS": "chave.example.pt",
    "CHAVE_PUBLIC_URL": "https://chave.example.pt",
    "CHAVE_APP_VAPID_PRIVATE_KEY": VAPID_KEY,
    "CHAVE_SIGNING_PKCS11_MODULE": "/usr/lib/x86_64-linux-gnu/pkcs11/hsm-vendor-pkcs11.so",
}
SECRETS = ("CHAVE_SECRET_KEY", "CHAVE_PIN_PEPPER", "CHAVE_PAIRWISE_SALT", "CHAVE_KEY_SEAL_SECRET",
           "CHAVE_SIGNING_USER_PIN", "CHAVE_MESSAGE_KEY", "CHAVE_AUDIT_KEY")


def _start(tmp_path, **overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAVE_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update(GOOD, CHAVE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="chave.settings")
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY)"
    )
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_production_starts_with_its_secrets_and_secure_cookies(tmp_path):
    result = _start(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True", "True"]


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"CHAVE_SECRET_KEY": None}, "CHAVE_SECRET_KEY is not set"),
        ({"CHAVE_PIN_PEPPER": None}, "CHAVE_PIN_PEPPER is not set"),
        ({"CHAVE_PAIRWISE_SALT": None}, "CHAVE_PAIRWISE_SALT is not set"),
        ({"CHAVE_KEY_SEAL_SECRET": None}, "CHAVE_KEY_SEAL_SECRET is not set"),
        ({"CHAVE_DEBUG": "1"}, "DEBUG is on"),
        ({"CHAVE_SMS_PROVIDER": "sink"}, "development message sink"),
        ({"CHAVE_EMAIL_PROVIDER": "sink"}, "development message sink"),
        ({"CHAVE_X_PROVIDER": "sink"}, "development message sink"),
        ({"CHAVE_SIGNING_USER_PIN": None}, "CHAVE_SIGNING_USER_PIN is not set"),
        ({"CHAVE_MESSAGE_KEY": None}, "CHAVE_MESSAGE_KEY is not set"),
        ({"CHAVE_AUDIT_KEY": None}, "CHAVE_AUDIT_KEY is not set"),
        ({"CHAVE_MESSAGE_KEY": "s" * 50}, "CHAVE_MESSAGE_KEY is not set (it must differ from CHAVE_SECRET_KEY)"),
        ({"CHAVE_PUBLIC_URL": "http://chave.example.pt"}, "CHAVE_PUBLIC_URL is not https"),
        ({"CHAVE_SECURE_COOKIES": "0"}, "secure cookies are off"),
        ({"CHAVE_SMTP_HOST": "mail.example.pt"}, "SMTP to another machine without STARTTLS"),
        ({"CHAVE_KANNEL_URL": "http://sms.example.pt:13013/cgi-bin/sendsms"}, "plain http to another machine"),
        ({"CHAVE_X_PROVIDER": "xapi", "CHAVE_X_API_URL": "http://x.example"}, "CHAVE_X_API_URL is plain http"),
        ({"CHAVE_APP_VAPID_PRIVATE_KEY": None}, "CHAVE_APP_VAPID_PRIVATE_KEY is not set"),
        ({"CHAVE_APP_VAPID_PRIVATE_KEY": "not a key"}, "not an EC P-256 private key"),
        ({"CHAVE_APP_VAPID_PRIVATE_KEY": _pem(rsa.generate_private_key(65537, 2048))}, "not an EC P-256 private key"),
        ({"CHAVE_APP_PUSH_SERVICES": "https://fcm.googleapis.com,http://127.0.0.1:8123"}, "development push service"),
        ({"CHAVE_APP_PUSH_SERVICES": "https://localhost:8443"}, "development push service"),
        ({"CHAVE_SIGNING_PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so"}, "the signing HSM is SoftHSM2"),
        ({"CHAVE_SIGNING_PKCS11_MODULE": None}, "the signing HSM is SoftHSM2"),  # the development default
    ],
)
def test_production_refuses_unsafe_configuration(tmp_path, overrides, reason):
    result = _start(tmp_path, **overrides)
    assert result.returncode != 0
    assert "Refusing to start in production" in result.stderr and reason in result.stderr


def test_development_defaults_need_no_configuration(tmp_path):
    result = _start(tmp_path, CHAVE_ENV="dev", CHAVE_SECRET_KEY=None, CHAVE_PIN_PEPPER=None,
                    CHAVE_PAIRWISE_SALT=None, CHAVE_KEY_SEAL_SECRET=None,
                    CHAVE_SMS_PROVIDER=None, CHAVE_EMAIL_PROVIDER=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False", "True"]


def test_debug_pages_need_chave_env_dev_set_explicitly(tmp_path):
    """An unset CHAVE_ENV gets development defaults (so `chave` commands work in a checkout), but
    never Django's debug pages: a server started without CHAVE_ENV shows no settings or code."""
    unset = _start(tmp_path, CHAVE_ENV=None, CHAVE_SMS_PROVIDER=None, CHAVE_EMAIL_PROVIDER=None,
                   **dict.fromkeys(SECRETS))
    assert unset.returncode == 0, unset.stderr
    assert unset.stdout.split()[0] == "False"
    assert _start(tmp_path, CHAVE_ENV="test").stdout.split()[0] == "False"
    refused = _start(tmp_path, CHAVE_ENV=None, CHAVE_DEBUG="1", **dict.fromkeys(SECRETS))
    assert refused.returncode != 0 and "CHAVE_DEBUG is on only with CHAVE_ENV=dev set explicitly" in refused.stderr
    assert _start(tmp_path, CHAVE_ENV="dev", CHAVE_DEBUG="0").stdout.split()[0] == "False"


@pytest.mark.parametrize("overrides", [
    {"CHAVE_SMTP_HOST": "mail.example.pt", "CHAVE_SMTP_STARTTLS": "1"},  # TLS to the relay
    {"CHAVE_SMTP_HOST": "::1"},  # a relay on this machine
    {"CHAVE_KANNEL_URL": "https://sms.example.pt/cgi-bin/sendsms"},
])
def test_production_takes_gateways_that_keep_codes_off_the_wire(tmp_path, overrides):
    result = _start(tmp_path, **overrides)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("secret", SECRETS)
def test_production_secrets_without_chave_env_refuse_to_start(tmp_path, secret):
    """A deployment that sets its secrets but forgets CHAVE_ENV would otherwise run with development
    defaults (the message sink, cookies over http, SoftHSM2): it stops and says which setting to add."""
    result = _start(tmp_path, CHAVE_ENV=None, **{name: None for name in SECRETS if name != secret})
    assert result.returncode != 0
    assert "CHAVE_ENV is not set but production secrets are (" + secret + ")" in result.stderr
    assert "Set CHAVE_ENV=production" in result.stderr
