"""Django settings for Chave, read from environment variables.

``CHAVE_ENV`` is ``dev`` (the default, what ``make run`` uses), ``test`` or ``production``.
Production refuses to start without a secret key and a PIN pepper, with DEBUG on, with
the development message sink or with SoftHSM2 as the signing HSM (see :func:`_check_production`);
a process given production secrets without any ``CHAVE_ENV`` refuses too. Django's debug pages are on only
when ``CHAVE_ENV=dev`` is set explicitly (an unset ``CHAVE_ENV`` gets development defaults without
them), and every error report masks the secret settings (:class:`chave.security.SecretsReporterFilter`).

Every rule and number of ``shared/domain.md`` lives in :data:`CHAVE_POLICY` (one table);
code reads it through :mod:`chave.policy`, never a literal.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BASE_DIR.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    return default if value is None else int(value)


CHAVE_ENV = env("CHAVE_ENV", "dev")
if CHAVE_ENV not in {"dev", "test", "production"}:
    raise ImproperlyConfigured("CHAVE_ENV must be dev, test or production")
IS_PRODUCTION = CHAVE_ENV == "production"

DATA_DIR = Path(env("CHAVE_DATA_DIR", str(PROJECT_DIR / "var")))

# Development secrets are fixed so that a newcomer's `make run` needs no set-up; production
# refuses to start with them (see _check_production).
_DEV_SECRET = "dev-only-secret-key-never-use-in-production-0123456789abcdef"
_DEV_PEPPER = "dev-only-pin-pepper-never-use-in-production"
SECRET_KEY = env("CHAVE_SECRET_KEY", _DEV_SECRET)
# The pepper keys the HMAC taken of every PIN before Argon2id: with a 4-8 digit PIN space, it is
# what protects a stolen database. It is also used (with a distinct label) to key code hashes.
CHAVE_PIN_PEPPER = env("CHAVE_PIN_PEPPER", _DEV_PEPPER)
# Pairwise subject identifiers are HMACs under this salt: it must never change once portals have
# stored subjects (so it is not derived from CHAVE_SECRET_KEY, which may be rotated).
CHAVE_PAIRWISE_SALT = env("CHAVE_PAIRWISE_SALT", "dev-only-pairwise-salt")
# The provider's private signing keys are sealed at rest under this secret.
CHAVE_KEY_SEAL_SECRET = env("CHAVE_KEY_SEAL_SECRET", _DEV_PEPPER + "/keys")
# The audit log's hash chain is keyed with this (chave/audit/chain.py): without it, nobody who can
# only write to the database can forge a link. Never change it once events exist (verification of
# the older ones would fail), like CHAVE_PAIRWISE_SALT.
CHAVE_AUDIT_KEY = env("CHAVE_AUDIT_KEY", _DEV_PEPPER + "/audit")
# Queued messages (which carry a code until sent) are encrypted at rest with keys derived from
# this secret; outside production it defaults to SECRET_KEY (production requires its own, so that
# one leaked secret does not open both sessions and queued codes).
CHAVE_MESSAGE_KEY = env("CHAVE_MESSAGE_KEY", SECRET_KEY)

# Django's debug pages only where someone asked for development by name (`make run` does): an unset
# CHAVE_ENV still gets the development defaults above, but never debug pages.
CHAVE_ENV_EXPLICIT = env("CHAVE_ENV") is not None
DEBUG = env_bool("CHAVE_DEBUG", CHAVE_ENV == "dev" and CHAVE_ENV_EXPLICIT)
if DEBUG and not IS_PRODUCTION and not (CHAVE_ENV == "dev" and CHAVE_ENV_EXPLICIT):
    raise ImproperlyConfigured("CHAVE_DEBUG is on only with CHAVE_ENV=dev set explicitly")
# Error reports (the debug page, logs, error e-mails) mask every secret setting: chave/security.py.
DEFAULT_EXCEPTION_REPORTER_FILTER = "chave.security.SecretsReporterFilter"
ALLOWED_HOSTS = (env("CHAVE_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver") or "").split(",")
# The public origin of the service: names the host in the WebOTP line `@host #code`.
CHAVE_PUBLIC_URL = env("CHAVE_PUBLIC_URL", "http://127.0.0.1:8000")
CSRF_TRUSTED_ORIGINS = [CHAVE_PUBLIC_URL]

INSTALLED_APPS = [
    "chave.admin_site.ChaveAdminConfig",  # Django's admin, entered only through the counter sign-in
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "chave.audit",
    "chave.throttle",
    "chave.identity",
    "chave.codes",
    "chave.delivery",
    "chave.login",
    "chave.public",
    "chave.federation",
    "chave.oidc",
    "chave.saml",
    "chave.portal",
    "chave.card",
    "chave.signing",
    "chave.scmd",
    "chave.counter",
    "chave.ops",
    "chave.app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "chave.ops.errors.DatabaseUnavailableMiddleware",  # the database gone: 503 + Retry-After
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chave.security.ContentSecurityPolicyMiddleware",
]
# No script at all on Chave's pages (chave/security.py); empty switches the header off.
CHAVE_CONTENT_SECURITY_POLICY = env(
    "CHAVE_CONTENT_SECURITY_POLICY",
    "default-src 'none'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; frame-ancestors 'none'; base-uri 'none'",
)

# The Chave app at /app/ (issue 12) runs its own scripts, and only those: the same policy plus
# scripts, the API, the service worker and the manifest from Chave, and the camera's picture.
CHAVE_APP_CONTENT_SECURITY_POLICY = env(
    "CHAVE_APP_CONTENT_SECURITY_POLICY",
    "default-src 'none'; script-src 'self'; connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
    "style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; font-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
)

ROOT_URLCONF = "chave.urls"
WSGI_APPLICATION = "chave.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "chave.public.context.site",
                "chave.portal.context.personal_area",
            ],
            "builtins": ["chave.formats.filters"],
        },
    },
]

# --- Storage -----------------------------------------------------------------------------
# SQLite is the embedded default; CHAVE_DATABASE_URL selects PostgreSQL for several instances.
_database_url = env("CHAVE_DATABASE_URL")
if _database_url:
    # Connections are kept for a minute and checked before reuse (CONN_HEALTH_CHECKS): a thread's
    # connection left idle across a PostgreSQL restart is replaced, not handed to a request to fail.
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            {"transaction_mode": "IMMEDIATE", "timeout": 30}
        )
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "chave.sqlite3"),
            # IMMEDIATE takes the write lock when a transaction starts, so read-check-write
            # sequences (PIN counters, code use, send caps) are serialised across processes.
            # WAL lets the web service and the worker read while one of them writes; with WAL,
            # synchronous=NORMAL is durable against application crashes (not power loss).
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": str(DATA_DIR / "test-chave.sqlite3")},
            # Each server thread keeps its connection between requests: opening one costs about
            # 1 ms of CPU (the file, the PRAGMAs above, Django's SQL functions), a fifth of what
            # a whole page costs, and a login is five of them.
            "CONN_MAX_AGE": 600,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_redis_url = env("CHAVE_REDIS_URL")
if _redis_url:
    # Short timeouts: a Redis that hangs answers as one that is down (what uses the cache falls back).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _redis_url,
                          "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Which store holds throttle counters: "db" (exact on SQLite and PostgreSQL, the default) or
# "redis" (CHAVE_REDIS_URL, for many instances without loading the database).
CHAVE_THROTTLE_STORE = env("CHAVE_THROTTLE_STORE", "redis" if _redis_url else "db")
CHAVE_REDIS_URL = _redis_url

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "delivery"]}}

# --- Sessions, cookies, security --------------------------------------------------------
SESSION_ENGINE = "chave.login.session_store"  # Django's database sessions, two reads fewer per sign-in
SESSION_COOKIE_AGE = env_int("CHAVE_SESSION_SECONDS", 30 * 60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SECURE_COOKIES = env_bool("CHAVE_SECURE_COOKIES", CHAVE_ENV == "production")
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
LANGUAGE_COOKIE_SECURE = SECURE_COOKIES
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if IS_PRODUCTION:
    SECURE_HSTS_SECONDS = 31536000
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many proxies in front of us append to X-Forwarded-For (0: use REMOTE_ADDR only).
CHAVE_TRUSTED_PROXIES = env_int("CHAVE_TRUSTED_PROXIES", 0)
# Who may ask /health/ready and /health/metrics (they query the database, the cache and the HSM):
# the load balancer's and monitoring's networks, as the client address is read (CHAVE_TRUSTED_PROXIES).
# Loopback only by default: behind a proxy every client may seem to come from a private address.
# Anyone else gets 404; /health/live is open.
CHAVE_HEALTH_NETWORKS = [n.strip() for n in (env("CHAVE_HEALTH_NETWORKS", "127.0.0.0/8,::1/128") or "").split(",")
                         if n.strip()]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]

# --- i18n -----------------------------------------------------------------------------
LANGUAGE_CODE = "pt-pt"
LANGUAGES = [("pt-pt", _("Português")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Dates as each language writes them ("14 de março de 1985", "14 March 1985"): chave/formats.
FORMAT_MODULE_PATH = ["chave.formats.locales"]
USE_I18N = True
TIME_ZONE = "Europe/Lisbon"
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# --- Delivery ----------------------------------------------------------------------------
# Each channel uses one provider, chosen here. "sink" keeps messages in the development outbox
# (refused in production); "off" means the channel is not offered.
CHAVE_SMS_PROVIDER = env("CHAVE_SMS_PROVIDER", "sink")  # sink | kannel
CHAVE_EMAIL_PROVIDER = env("CHAVE_EMAIL_PROVIDER", "sink")  # sink | smtp
CHAVE_X_PROVIDER = env("CHAVE_X_PROVIDER", "off")  # off | sink | xapi
# The Chave app's channel (issue 12): "webpush" keeps each code in the device's inbox (the app asks
# for it) and also pushes it by Web Push when the device gave a subscription; "off" offers no code
# by the app (approvals, offline codes and QR sign-in stay).
CHAVE_APP_PUSH_PROVIDER = env("CHAVE_APP_PUSH_PROVIDER", "webpush")
CHAVE_KANNEL_URL = env("CHAVE_KANNEL_URL", "http://127.0.0.1:13013/cgi-bin/sendsms")
CHAVE_KANNEL_USERNAME = env("CHAVE_KANNEL_USERNAME", "chave")
CHAVE_KANNEL_PASSWORD = env("CHAVE_KANNEL_PASSWORD", "")
CHAVE_SMS_SENDER = env("CHAVE_SMS_SENDER", "Chave")
CHAVE_X_API_URL = env("CHAVE_X_API_URL", "https://api.x.com")
CHAVE_X_BEARER_TOKEN = env("CHAVE_X_BEARER_TOKEN", "")
CHAVE_HTTP_TIMEOUT = float(env("CHAVE_HTTP_TIMEOUT", "10") or 10)
EMAIL_HOST = env("CHAVE_SMTP_HOST", "127.0.0.1")
EMAIL_PORT = env_int("CHAVE_SMTP_PORT", 25)
EMAIL_HOST_USER = env("CHAVE_SMTP_USER", "")
EMAIL_HOST_PASSWORD = env("CHAVE_SMTP_PASSWORD", "")
EMAIL_USE_TLS = env_bool("CHAVE_SMTP_STARTTLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("CHAVE_MAIL_FROM", "Chave <no-reply@chave.localhost>")

# Approximate place of an IP address in the personal area's history: a CSV of "network,place"
# rows (CIDR ranges); unset, the history says the place is not available.
CHAVE_GEOIP_CSV = env("CHAVE_GEOIP_CSV", "")

CHAVE_HELP_EMAIL = env("CHAVE_HELP_EMAIL", "ajuda@chave.localhost")
CHAVE_HELP_PHONE = env("CHAVE_HELP_PHONE", "+351 300 000 000")

# --- Citizen Card (issue 4; chave/card/README.md) ------------------------------------------
# The test PKI and the SoftHSM test cards of `chave dev-pki` / `chave dev-card` (development, tests).
CHAVE_CARD_DEV_DIR = Path(env("CHAVE_CARD_DEV_DIR", str(DATA_DIR / "card")))
# PEM files (os.pathsep-separated; a file may hold several certificates) of the roots a card's
# certificate must chain to, and of the intermediate CAs that issue cards. Unset outside
# production: the test PKI under CHAVE_CARD_DEV_DIR. Unset in production: card sign-in is refused.
CHAVE_CARD_TRUST_ANCHORS = [p for p in (env("CHAVE_CARD_TRUST_ANCHORS", "") or "").split(os.pathsep) if p]
CHAVE_CARD_INTERMEDIATES = [p for p in (env("CHAVE_CARD_INTERMEDIATES", "") or "").split(os.pathsep) if p]
# The PKCS#11 module the card agent uses: the card middleware's for real cards.
CHAVE_CARD_PKCS11_MODULE = env("CHAVE_CARD_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
# The loopback port of the citizen's card agent (`chave card-agent`); Chave's card page posts there.
CHAVE_CARD_AGENT_PORT = env_int("CHAVE_CARD_AGENT_PORT", 35153)
# The subject serialNumber of a card's authentication certificate: how test cards write the NIC,
# and the pattern that reads it (real cards: "BI" + NIC + check digit).
CHAVE_CARD_SERIAL_FORMAT = env("CHAVE_CARD_SERIAL_FORMAT", "BI{nic}")
CHAVE_CARD_SERIAL_PATTERN = env("CHAVE_CARD_SERIAL_PATTERN", r"^BI(?P<nic>[0-9]{8})[0-9]?$")

# --- The Chave app (issue 12; chave/app/README.md) -----------------------------------------
# VAPID (RFC 8292): the key Chave signs its Web Push requests with (PEM, or the path of a PEM file),
# and the contact it names to push services. Unset outside production: a key made once under
# CHAVE_DATA_DIR/app/. Production refuses to start without one.
CHAVE_APP_VAPID_PRIVATE_KEY = env("CHAVE_APP_VAPID_PRIVATE_KEY", "")
CHAVE_APP_VAPID_SUBJECT = env("CHAVE_APP_VAPID_SUBJECT", "mailto:" + (env("CHAVE_HELP_EMAIL", "ajuda@chave.localhost") or ""))
# The push services (origins, "*." for any subdomain) a device's subscription may name: Chave's
# server posts to that URL, so nothing else is accepted (no request to an address of the
# attacker's choosing). The browsers' own services by default; tests add the local push service
# of chave/testing, which production refuses (anything not https, or on a loopback address).
CHAVE_APP_PUSH_SERVICES = [s.strip() for s in (env(
    "CHAVE_APP_PUSH_SERVICES",
    "https://fcm.googleapis.com,https://updates.push.services.mozilla.com,https://web.push.apple.com,"
    "https://*.push.apple.com,https://*.notify.windows.com",
) or "").split(",") if s.strip()]

# --- Counter (issue 5; chave/counter/README.md) ---------------------------------------------
# Where a temporary PIN "handed over sealed" at a counter is printed: "spool" writes each PIN mailer
# as a PDF under CHAVE_COUNTER_PRINT_DIR/<counter>/ (development and tests; refused in production),
# "lp" sends it to the CUPS queue named in CHAVE_COUNTER_PRINT_QUEUES ("counter=queue,…"), "off"
# offers letters by post only.
CHAVE_COUNTER_PRINTER = env("CHAVE_COUNTER_PRINTER", "off" if IS_PRODUCTION else "spool")
CHAVE_COUNTER_PRINT_DIR = Path(env("CHAVE_COUNTER_PRINT_DIR", str(DATA_DIR / "counter-print")))
CHAVE_COUNTER_PRINT_QUEUES = dict(
    item.split("=", 1) for item in (env("CHAVE_COUNTER_PRINT_QUEUES", "") or "").split(",") if "=" in item
)

# --- Policy: every rule and number of shared/domain.md, one table ------------------------
# Throttles are (limit, window in seconds). Read through chave.policy, never as literals.
CHAVE_POLICY = {
    "citizen_min_age_years": 16,
    "key_validity_after_card_days": 30,  # Portaria 190-A/2019
    "temporary_pin_days": 30,
    "inactivity_revoke_days": 548,  # 18 months (Portaria 189/2014); 0 switches it off
    # A registration left pending (online or at a counter) is cancelled after this, releasing the
    # contacts it holds unconfirmed, so nobody can hold another person's number with one.
    "pending_key_days": 7,
    "pin_min_length": 4,
    "pin_max_length": 8,
    # Wrong login PINs: the Nth consecutive failure locks for lock_steps[N] seconds; a failure
    # at pin_block_after blocks the key.
    "pin_lock_steps": {3: 5 * 60, 4: 15 * 60, 5: 60 * 60},
    "pin_block_after": 6,
    "signing_pin_max_failures": 3,
    "code_digits": 6,
    # "device": the SMS code that confirms pairing the Chave app (issue 12) is typed in the app.
    "code_lifetime_seconds": {"login": 5 * 60, "contact": 10 * 60, "signing": 2 * 60, "device": 10 * 60},
    "code_max_wrong": 3,
    "code_resend_cooldown_seconds": 30,
    "code_max_sends_per_transaction": 3,
    "login_transaction_seconds": 15 * 60,
    "throttles": {
        "code_send_per_key": (10, 3600),
        "code_send_per_destination": (10, 3600),
        "code_send_per_ip": (30, 3600),
        # Checked before the per-key PIN counter, so that one client cannot lock many keys.
        "pin_attempt_per_ip": (30, 15 * 60),
        # Staff sign-in at /counter/login (password + TOTP), per client IP and per username.
        "staff_login_per_ip": (20, 15 * 60),
        "staff_login_per_user": (5, 15 * 60),
        # Signing APIs (CSC v2, CMD-style): every call of an integrator, by the OAuth client of
        # its service token; and calls without a valid token, per client IP (token guessing).
        "signing_api_per_client": (600, 60),
        "signing_api_bad_token_per_ip": (30, 10 * 60),
        # What an integrator does for all its citizens from its one server address replaces the
        # per-address limits there: signing PIN checks, and signing codes sent (the per-citizen
        # limits, 3 wrong signing PINs and the code caps per key and destination, still apply).
        "signing_pin_per_client": (3000, 15 * 60),
        "code_send_per_client": (6000, 3600),
        # The validation page and API (open to anyone, files up to signing_validate_max_bytes).
        "signing_validate_per_ip": (60, 10 * 60),
        # The signing PKI's public services, each answer signed in the HSM: OCSP (a refusal is
        # OCSP's own "tryLater") and the time-stamp authority (429), per client IP.
        "signing_ocsp_per_ip": (600, 60),
        # The OpenID Connect token and userinfo endpoints, per client IP (a portal's servers).
        "oidc_token_per_ip": (1200, 60),
        "oidc_userinfo_per_ip": (1200, 60),
        # Citizen Card sign-ins started (each a challenge row), per client IP.
        "card_challenge_per_ip": (60, 10 * 60),
        "signing_tsa_per_ip": (120, 60),
        # The Chave app (issue 12; chave/app/README.md). Pairing codes typed in the app, per client
        # address and, once a code names a key, per key; signed calls of one device; requests that
        # fail the device signature, per address; approvals answered, per address and per key;
        # approval requests sent to a key's devices (push fatigue: each one is a prompt on the
        # phone); offline codes typed at login, per key (there is no send to count them by); QR
        # sign-ins started, per address; QR codes scanned and PINs typed in the app, per device.
        "app_pairing_per_ip": (20, 15 * 60),
        "app_pairing_per_key": (10, 3600),
        "app_api_per_device": (600, 60),
        "app_bad_signature_per_ip": (60, 10 * 60),
        "app_approval_per_ip": (60, 15 * 60),
        "app_approval_per_key": (30, 15 * 60),
        "app_prompt_per_key": (10, 3600),
        "app_offline_code_per_key": (30, 3600),
        "app_qr_per_ip": (60, 10 * 60),
        "app_qr_scan_per_device": (30, 10 * 60),
    },
    # SMS only to these countries (ISO 3166 alpha-2): EU/EEA and Portuguese-speaking countries.
    "sms_country_allowlist": [
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
        "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
        "BR", "AO", "MZ", "CV", "GW", "ST", "TL", "GQ",
    ],
    "assurance_levels": {"sms": 3, "app": 3, "email": 2, "x": 2, "citizen_card": 4},
    # OpenID Connect provider (issue 3).
    "oidc_code_seconds": 60,
    # A pushed authorization request (RFC 9126) must be used within this long.
    "oidc_par_seconds": 60,
    # Discovery and the JWKS may be cached this long (Cache-Control max-age); a new signing key is
    # published this long before it signs (`chave oidc_keys rotate`).
    "oidc_jwks_max_age_seconds": 300,
    # DPoP (RFC 9449): a proof's iat may be this old; nonces (DPoP-Nonce) are required when
    # oidc_dpop_nonce is on, each valid for its window of this many seconds and the next.
    "oidc_dpop_proof_seconds": 120,
    "oidc_dpop_nonce": True,
    "oidc_dpop_nonce_seconds": 300,
    # FAPI 2.0 portals: authorization codes live at most this long (FAPI 2.0 §5.3.2.1: 60 s).
    "oidc_fapi2_code_seconds": 60,
    "oidc_access_token_seconds": 600,
    "oidc_id_token_seconds": 600,
    "oidc_refresh_token_seconds": 8 * 3600,
    "oidc_logout_token_seconds": 120,
    # Back-channel logout: a portal unreachable or answering 5xx is tried again after these waits.
    "oidc_backchannel_max_attempts": 6,
    "oidc_backchannel_backoff_seconds": [5, 30, 120, 600, 1800],
    # A retired signing key stays published this long (longer than anything it signed lives).
    "oidc_key_retention_seconds": 24 * 3600,
    # A client assertion (private_key_jwt) may live up to an hour (what Authlib signs); its jti is
    # remembered until it expires.
    "oidc_client_assertion_max_seconds": 3600,
    "rp_default_min_level": 2,
    # SAML 2.0 identity provider (issue 13): an AuthnRequest's IssueInstant may be this far from
    # Chave's clock (either way); its ID is remembered (answered once) for twice that long. The
    # assertion and its bearer confirmation are valid for saml_assertion_seconds (the
    # autenticacao.gov manual: 5 minutes). A request carried by the Redirect binding inflates to at
    # most saml_request_max_bytes; RelayState is at most saml_relay_state_max_bytes (the manual: 80).
    "saml_request_max_age_seconds": 5 * 60,
    "saml_assertion_seconds": 5 * 60,
    "saml_request_max_bytes": 64 * 1024,
    "saml_relay_state_max_bytes": 80,
    # The IdP's signing certificate lives this long; after `chave saml_keys rotate` the previous one
    # stays in the metadata this long (portals that cached the metadata still verify).
    "saml_certificate_days": 3 * 365,
    "saml_key_grace_seconds": 24 * 3600,
    # Personal area (issue 4): changing a contact, cancelling the key or exporting one's data needs a
    # sign-in at most this old; an older session signs in again first.
    "area_reauth_seconds": 10 * 60,
    # Citizen Card (issue 4): a challenge must be signed and returned within card_challenge_seconds;
    # a verified card opens registration and PIN recovery for card_verified_seconds; revocation is
    # checked by these methods in order (the first that answers decides; none answering refuses).
    "card_challenge_seconds": 3 * 60,
    "card_verified_seconds": 15 * 60,
    "card_challenge_retention_seconds": 24 * 3600,
    "card_revocation_methods": ["ocsp", "crl"],
    "card_revocation_timeout_seconds": 5,
    # Remote signing (issue 6): a batch of at most this many hashes per authorisation, which
    # stays usable this long (single use); citizens' signing certificates live at most this long.
    "signing_max_hashes": 100,
    "signing_authorisation_seconds": 5 * 60,
    "signing_certificate_days": 3 * 365,
    # Uploaded PDFs waiting in the personal area to be signed, and signed ones to download.
    "signing_area_max_documents": 10,
    "signing_area_max_bytes": 60 * 1024 * 1024,
    "signing_area_keep_seconds": 30 * 60,
    # The validation API (POST /api/signing/validate) takes a PDF as large as the page does.
    "signing_validate_max_bytes": 60 * 1024 * 1024,
    # The SCMD SOAP service: the largest envelope read (100 hash structures with long names fit
    # several times over); a larger one is refused before it is read.
    "scmd_max_envelope_bytes": 512 * 1024,
    # Health (/health/ready): the delivery worker is behind when a task ready to run waited longer.
    "health_queue_max_lag_seconds": 5 * 60,
    # The database unreachable (a restart, a failover): requests answer 503 with this Retry-After.
    "unavailable_retry_after_seconds": 5,
    "delivery_max_attempts": 8,
    "delivery_backoff_seconds": [5, 15, 30, 60, 120, 300, 600],
    # A message "sending" this long was being handed over when its worker died: it becomes
    # "interrupted" (never sent twice). Far above CHAVE_HTTP_TIMEOUT and the SMTP timeout.
    "delivery_sending_timeout_seconds": 120,
    # How often each worker looks for what dead workers left behind (delivery.services.recover_stalled).
    "delivery_sweep_seconds": 60,
    # Counter (issue 5; chave/counter/README.md): a staff session ends after this long idle; a TOTP
    # code is accepted this many 30-second steps early or late; a reason is at least this long.
    "staff_idle_seconds": 10 * 60,
    "staff_totp_drift_steps": 1,
    "counter_reason_min_length": 10,
    # Finding citizens by name at the counter lists at most this many (the first in alphabetical order).
    "counter_name_search_max": 50,
    # The citizen screen of a desk: its one-time pairing link lasts this long, and so does a turn
    # (typing a code, choosing the PIN) once the clerk opens it.
    "counter_screen_pairing_seconds": 5 * 60,
    "counter_turn_seconds": 5 * 60,
    # A PIN mailer the counter's printer failed to print is tried again after each of these waits,
    # then marked "printing failed" for the clerk to print again or cancel.
    "counter_print_backoff_seconds": [30, 60, 120, 300, 600],
    # Staff signing in with their own Citizen Card: the card must have been read this recently.
    "staff_card_seconds": 2 * 60,
    # Housekeeping: citizens are reminded this many days before their key expires or is revoked.
    "key_reminder_days": 30,
    # The Chave app (issue 12; chave/app/README.md). At most this many devices per key; a pairing
    # code (QR or typed) works once, this long; the device signs every call, with a clock at most
    # this far from ours. Offline codes: RFC 6238 with HMAC-SHA-256, a lifetime (step) the citizen
    # chooses among these, this many steps of clock drift either way. Approvals (number matching)
    # wait this long for the app; the login page looks again this often. A QR sign-in lives this
    # long; its QR code changes every app_qr_step_seconds and is accepted this late after it
    # changed (the scan's trip); the short code under it changes every app_qr_typed_step_seconds
    # (typing takes longer) and is accepted one step late; once scanned, the PIN must come within
    # app_qr_pin_seconds. "This wasn't me" in the app locks the key this long. The app asks for
    # news this often while open; its inbox items live as long as the code they carry.
    "app_max_devices": 3,
    "app_pairing_seconds": 10 * 60,
    "app_device_name_max_length": 40,
    "app_signature_skew_seconds": 5 * 60,
    "app_offline_periods": [30, 60, 120, 300],
    "app_offline_default_period": 30,
    "app_offline_drift_steps": 1,
    "app_approval_seconds": 2 * 60,
    "app_refresh_seconds": 3,
    "app_qr_seconds": 3 * 60,
    "app_qr_step_seconds": 5,
    "app_qr_grace_seconds": 2,
    "app_qr_typed_step_seconds": 30,
    "app_qr_pin_seconds": 2 * 60,
    "app_not_me_lock_seconds": 60 * 60,
    "app_poll_seconds": 3,
}
# Argon2id parameters for PINs; changing them re-hashes each PIN at its next correct use. The
# default is OWASP's minimum (19 MiB, t=2, p=1): a 4-8 digit PIN has at most 10^8 values, so no
# hashing cost protects a stolen database; the pepper in the HSM does (chave/identity/pins.py).
CHAVE_ARGON2 = {
    "time_cost": env_int("CHAVE_ARGON2_TIME_COST", 2),
    "memory_cost": env_int("CHAVE_ARGON2_MEMORY_KIB", 19456),
    "parallelism": env_int("CHAVE_ARGON2_PARALLELISM", 1),
}
# At most this many Argon2 computations at once in one process (the others queue), so that a burst
# of logins costs cores, not memory: each holds memory_cost while it runs. 0: the process's cores.
CHAVE_ARGON2_CONCURRENCY = env_int("CHAVE_ARGON2_CONCURRENCY", 0)

# `chave serve`: server processes (0: one per core in production, one elsewhere; more than one is
# gunicorn), how long a request may run before its process is replaced, how long an idle
# keep-alive connection stays open, and after how many requests a process is replaced (±10%),
# which bounds what a long-lived process can grow to.
CHAVE_SERVE_PROCESSES = env_int("CHAVE_SERVE_PROCESSES", 0)
CHAVE_SERVE_TIMEOUT_SECONDS = env_int("CHAVE_SERVE_TIMEOUT_SECONDS", 120)
CHAVE_SERVE_KEEPALIVE_SECONDS = env_int("CHAVE_SERVE_KEEPALIVE_SECONDS", 5)
CHAVE_SERVE_MAX_REQUESTS = env_int("CHAVE_SERVE_MAX_REQUESTS", 20000)

# --- Remote signing (issue 6) -----------------------------------------------------------
# The signing CA, OCSP responder and TSA certificates and, with SoftHSM2, the token directory
# and its SOFTHSM2_CONF live here; `chave signing dev-pki` makes them in development.
CHAVE_SIGNING_DIR = Path(env("CHAVE_SIGNING_DIR", str(DATA_DIR / "pki" / "signing")))
# Where the PKI services are published (certificates carry these URLs: OCSP, CA issuers, CRL, TSA).
CHAVE_SIGNING_PKI_URL = env("CHAVE_SIGNING_PKI_URL", CHAVE_PUBLIC_URL.rstrip("/") + "/pki/signing")
# The HSM holding citizens' signing keys, through PKCS#11 (SoftHSM2 in development and tests).
CHAVE_SIGNING_PKCS11_MODULE = env("CHAVE_SIGNING_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
CHAVE_SIGNING_TOKEN_LABEL = env("CHAVE_SIGNING_TOKEN_LABEL", "chave-signing")
CHAVE_SIGNING_USER_PIN = env("CHAVE_SIGNING_USER_PIN", "dev-only-hsm-pin")
# The labels, in that HSM, of the signing CA's, the OCSP responder's and the TSA's ECDSA keys
# (their certificates are ca.crt, ocsp.crt and tsa.crt in CHAVE_SIGNING_DIR).
CHAVE_SIGNING_CA_KEY_LABEL = env("CHAVE_SIGNING_CA_KEY_LABEL", "chave-ca-signing")
CHAVE_SIGNING_OCSP_KEY_LABEL = env("CHAVE_SIGNING_OCSP_KEY_LABEL", "chave-ca-ocsp")
CHAVE_SIGNING_TSA_KEY_LABEL = env("CHAVE_SIGNING_TSA_KEY_LABEL", "chave-ca-tsa")
# SoftHSM2's configuration; empty means the process environment's SOFTHSM2_CONF (a real HSM needs none).
CHAVE_SIGNING_SOFTHSM2_CONF = env(
    "CHAVE_SIGNING_SOFTHSM2_CONF", "" if IS_PRODUCTION else str(CHAVE_SIGNING_DIR / "hsm" / "softhsm2.conf")
)
# Citizens' new signing keys: "rsa-3072" (PKCS#1 v1.5 signatures over a DigestInfo: what the SCMD
# SOAP service and its integrators need) or "ec-p256" (ECDSA: CSC and the personal area only).
# Keys made earlier keep their algorithm and keep working.
CHAVE_SIGNING_KEY_ALGORITHM = env("CHAVE_SIGNING_KEY_ALGORITHM", "rsa-3072")
if CHAVE_SIGNING_KEY_ALGORITHM not in ("rsa-3072", "ec-p256"):
    raise ImproperlyConfigured("CHAVE_SIGNING_KEY_ALGORITHM must be rsa-3072 or ec-p256")
# The PIN pepper: an HMAC-SHA-256 key generated inside an HSM (never extractable) that every PIN
# goes through before Argon2id. By default the signing HSM's token (same PKCS#11 module); a
# separate token by label and user PIN. `chave pin-pepper init` makes the key (development makes
# it at first use).
CHAVE_PIN_PEPPER_KEY_LABEL = env("CHAVE_PIN_PEPPER_KEY_LABEL", "chave-pin-pepper")
CHAVE_PIN_HSM_TOKEN_LABEL = env("CHAVE_PIN_HSM_TOKEN_LABEL", CHAVE_SIGNING_TOKEN_LABEL)
CHAVE_PIN_HSM_USER_PIN = env("CHAVE_PIN_HSM_USER_PIN", CHAVE_SIGNING_USER_PIN)
# The SCMD SOAP service (chave/scmd): the label, in the signing HSM, of the RSA key integrators
# encrypt the citizen's number, signing PIN and code under, and its certificate (published at
# /scmd/encryption.crt; `chave signing dev-pki` makes both in development).
CHAVE_SCMD_ENCRYPTION_KEY_LABEL = env("CHAVE_SCMD_ENCRYPTION_KEY_LABEL", "chave-scmd-encryption")
CHAVE_SCMD_ENCRYPTION_CERT = env("CHAVE_SCMD_ENCRYPTION_CERT", "")  # empty: scmd-encryption.crt in CHAVE_SIGNING_DIR
# An external RFC 3161 time-stamp authority; empty: Chave's own TSA under CHAVE_SIGNING_PKI_URL.
CHAVE_SIGNING_TSA_URL = env("CHAVE_SIGNING_TSA_URL", "")
# Chave's own TSA: the policy its tokens carry (ETSI EN 319 421 baseline time-stamp policy) and the
# hash algorithms it stamps (an RFC 3161 request for another is refused with badAlg).
CHAVE_SIGNING_TSA_POLICY = env("CHAVE_SIGNING_TSA_POLICY", "0.4.0.2023.1.1")
CHAVE_SIGNING_TSA_DIGESTS = ("sha256", "sha384", "sha512")
# The certificate subject's serialNumber (ETSI EN 319 412-1 semantics identifier) per document type.
CHAVE_SIGNING_SUBJECT_SERIAL = {
    "cc": "IDCPT-{number}",
    "passport": "PAS{country}-{number}",
    "residence_permit": "IDC{country}-{number}",
    "residence_card": "IDC{country}-{number}",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("CHAVE_LOG_LEVEL", "INFO")},
    # pysaml2 logs whole messages (NameIDs, attribute values) at INFO and DEBUG: never in Chave's logs.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "saml2": {"level": "WARNING"},
                "xmlschema": {"level": "WARNING"}},
}


def _is_loopback(host: str | None) -> bool:
    import ipaddress

    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _cleartext_to_another_machine(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme != "https" and not _is_loopback(parts.hostname)


def _is_p256_private_key(value: str) -> bool:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        data = value.encode() if value.lstrip().startswith("-----") else Path(value).read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError):
        return False
    return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)


def _is_softhsm(module: str | None) -> bool:
    return "softhsm" in Path(module or "").name.lower()


# Settings only a production deployment sets: with any of them and no CHAVE_ENV, the process would
# run with development defaults (the message sink, plain cookies) beside real secrets.
_PRODUCTION_ONLY = ("CHAVE_SECRET_KEY", "CHAVE_PIN_PEPPER", "CHAVE_PAIRWISE_SALT", "CHAVE_KEY_SEAL_SECRET",
                    "CHAVE_AUDIT_KEY", "CHAVE_MESSAGE_KEY", "CHAVE_SIGNING_USER_PIN")


def _check_env_named() -> None:
    given = [name for name in _PRODUCTION_ONLY if env(name) is not None]
    if given:
        raise ImproperlyConfigured(
            f"Refusing to start: CHAVE_ENV is not set but production secrets are ({', '.join(given)}). "
            "Set CHAVE_ENV=production (or CHAVE_ENV=dev / CHAVE_ENV=test explicitly)."
        )


def _check_production() -> None:
    problems = []
    if SECRET_KEY == _DEV_SECRET:
        problems.append("CHAVE_SECRET_KEY is not set")
    if CHAVE_PIN_PEPPER == _DEV_PEPPER:
        problems.append("CHAVE_PIN_PEPPER is not set")
    if CHAVE_PAIRWISE_SALT == "dev-only-pairwise-salt":
        problems.append("CHAVE_PAIRWISE_SALT is not set")
    if CHAVE_KEY_SEAL_SECRET == _DEV_PEPPER + "/keys":
        problems.append("CHAVE_KEY_SEAL_SECRET is not set")
    if CHAVE_AUDIT_KEY == _DEV_PEPPER + "/audit":
        problems.append("CHAVE_AUDIT_KEY is not set")
    if env("CHAVE_MESSAGE_KEY") is None or CHAVE_MESSAGE_KEY == SECRET_KEY:
        problems.append("CHAVE_MESSAGE_KEY is not set (it must differ from CHAVE_SECRET_KEY)")
    if CHAVE_SIGNING_USER_PIN == "dev-only-hsm-pin":
        problems.append("CHAVE_SIGNING_USER_PIN is not set")
    # SoftHSM2 keeps its keys in files any process of its user can copy: citizens' signing keys
    # (and the CA's) belong in a real HSM in production.
    if _is_softhsm(CHAVE_SIGNING_PKCS11_MODULE):
        problems.append(f"the signing HSM is SoftHSM2 (CHAVE_SIGNING_PKCS11_MODULE={CHAVE_SIGNING_PKCS11_MODULE}): "
                        "set it to the real HSM's PKCS#11 module")
    if CHAVE_PIN_HSM_USER_PIN == "dev-only-hsm-pin":
        problems.append("CHAVE_PIN_HSM_USER_PIN is not set")
    if DEBUG:
        problems.append("DEBUG is on")
    if "sink" in {CHAVE_SMS_PROVIDER, CHAVE_EMAIL_PROVIDER, CHAVE_X_PROVIDER}:
        problems.append("the development message sink is configured")
    if CHAVE_COUNTER_PRINTER == "spool":
        problems.append("the development PIN-mailer spool is configured (CHAVE_COUNTER_PRINTER)")
    # Codes and sessions travel here: nothing in clear beyond this machine.
    if not CHAVE_PUBLIC_URL.startswith("https://"):
        problems.append("CHAVE_PUBLIC_URL is not https")
    if not SECURE_COOKIES:
        problems.append("secure cookies are off (CHAVE_SECURE_COOKIES)")
    if CHAVE_EMAIL_PROVIDER == "smtp" and not EMAIL_USE_TLS and not _is_loopback(EMAIL_HOST):
        problems.append("SMTP to another machine without STARTTLS (CHAVE_SMTP_STARTTLS)")
    if CHAVE_SMS_PROVIDER == "kannel" and _cleartext_to_another_machine(CHAVE_KANNEL_URL):
        problems.append("CHAVE_KANNEL_URL is plain http to another machine")
    if CHAVE_X_PROVIDER == "xapi" and _cleartext_to_another_machine(CHAVE_X_API_URL):
        problems.append("CHAVE_X_API_URL is plain http to another machine")
    if CHAVE_APP_PUSH_PROVIDER not in ("", "off") and not CHAVE_APP_VAPID_PRIVATE_KEY:
        problems.append("CHAVE_APP_VAPID_PRIVATE_KEY is not set (Web Push for the Chave app)")
    elif CHAVE_APP_VAPID_PRIVATE_KEY and not _is_p256_private_key(CHAVE_APP_VAPID_PRIVATE_KEY):
        problems.append("CHAVE_APP_VAPID_PRIVATE_KEY is not an EC P-256 private key (PEM, or a PEM file)")
    for service in CHAVE_APP_PUSH_SERVICES:
        host = service.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        if not service.startswith("https://") or _is_loopback(host):
            problems.append(f"a development push service is allowed (CHAVE_APP_PUSH_SERVICES: {service})")
    if problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(problems))


if not CHAVE_ENV_EXPLICIT:
    _check_env_named()
if IS_PRODUCTION:
    _check_production()
else:
    # Development and tests serve plain http on loopback; Authlib otherwise insists on https.
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
