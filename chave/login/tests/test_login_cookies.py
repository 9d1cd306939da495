"""Cookie flags: Secure + HttpOnly + SameSite outside development.

The flags are computed by ``chave.settings`` from ``CHAVE_ENV`` at import, so the production
values are read from a fresh interpreter started with ``CHAVE_ENV=production``, and then the
cookies the login pages set under those values are checked header by header.
"""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import override_settings

from .pages import PHONE, PIN, client_in, ends_at, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

COOKIE_SETTINGS = [
    "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SECURE", "CSRF_COOKIE_HTTPONLY", "CSRF_COOKIE_SAMESITE",
    "LANGUAGE_COOKIE_SECURE", "LANGUAGE_COOKIE_HTTPONLY", "LANGUAGE_COOKIE_SAMESITE",
    "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER", "DEBUG",
]


def _settings_for(chave_env: str, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAVE_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update({
        "CHAVE_ENV": chave_env,
        "CHAVE_DATA_DIR": str(tmp_path),
        "CHAVE_SECRET_KEY": "a-production-like-secret-key-for-this-test-only-0123456789",
        "CHAVE_PIN_PEPPER": "a-production-like-pepper-for-this-test-only",
        "CHAVE_PAIRWISE_SALT": "a-production-like-pairwise-salt-for-this-test-only",
        "CHAVE_KEY_SEAL_SECRET": "a-production-like-key-seal-secret-for-this-test-only",
        "CHAVE_SIGNING_USER_PIN": "a-production-like-hsm-pin-for-this-test-only",
        "CHAVE_MESSAGE_KEY": "a-production-like-message-key-for-this-test-only",
        "CHAVE_AUDIT_KEY": "a-production-like-audit-key-for-this-test-only",
        "CHAVE_SMS_PROVIDER": "kannel",
        "CHAVE_EMAIL_PROVIDER": "smtp",
        "CHAVE_PUBLIC_URL": "https://chave.example.pt",
        "CHAVE_APP_PUSH_PROVIDER": "off",  # no Web Push key needed for what this test reads
        "CHAVE_SIGNING_PKCS11_MODULE": "/usr/lib/hsm-vendor/pkcs11.so",  # production refuses SoftHSM2
        "DJANGO_SETTINGS_MODULE": "chave.settings",
    })
    script = (
        "import json, django; from django.conf import settings; django.setup(); "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {COOKIE_SETTINGS!r}}}))"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    return _settings_for("production", tmp_path_factory.mktemp("production"))


def test_production_settings_ask_for_secure_httponly_samesite_cookies(production):
    assert production["DEBUG"] is False
    for cookie in ("SESSION", "CSRF", "LANGUAGE"):
        assert production[f"{cookie}_COOKIE_SECURE"] is True, cookie
        assert production[f"{cookie}_COOKIE_HTTPONLY"] is True, cookie
        assert production[f"{cookie}_COOKIE_SAMESITE"] in ("Lax", "Strict"), cookie
    assert production["SECURE_HSTS_SECONDS"] > 0


def _flags(morsel) -> dict:
    return {"secure": bool(morsel["secure"]), "httponly": bool(morsel["httponly"]), "samesite": morsel["samesite"]}


def test_login_cookies_carry_the_production_flags(production, make_citizen):
    make_citizen(phone=PHONE, pin=PIN)
    cookie_flags = {n: production[n] for n in COOKIE_SETTINGS if "COOKIE" in n}
    with override_settings(**cookie_flags):
        client = client_in("en")
        page = client.get("/login/", secure=True)
        csrf = page.cookies[settings.CSRF_COOKIE_NAME]
        assert _flags(csrf) == {"secure": True, "httponly": True, "samesite": production["CSRF_COOKIE_SAMESITE"]}

        response = sign_in(client, "912345678", PIN, secure=True)
        assert ends_at(response, "/login/code/")
        session = response.cookies[settings.SESSION_COOKIE_NAME]
        assert _flags(session) == {"secure": True, "httponly": True,
                                   "samesite": production["SESSION_COOKIE_SAMESITE"]}
        header = session.OutputString()
        assert "Secure" in header and "HttpOnly" in header and "SameSite=" in header

        switched = client.post("/i18n/setlang/", {"language": "pt-pt", "next": "/login/"}, secure=True)
        language = switched.cookies[settings.LANGUAGE_COOKIE_NAME]
        assert _flags(language) == {"secure": True, "httponly": True,
                                    "samesite": production["LANGUAGE_COOKIE_SAMESITE"]}


def test_development_cookies_work_over_plain_http(tmp_path):
    dev = _settings_for("dev", tmp_path)
    assert dev["SESSION_COOKIE_SECURE"] is False and dev["CSRF_COOKIE_SECURE"] is False
    # Still out of reach of scripts and of other sites' forms.
    assert dev["SESSION_COOKIE_HTTPONLY"] is True and dev["SESSION_COOKIE_SAMESITE"] == "Lax"
