"""Content-Security-Policy for Chave's own pages.

No page of Chave runs JavaScript (the core paths are plain forms), so the policy allows no script
at all, styles and images only from Chave itself, and no framing. Style *attributes* are allowed
(``style-src-attr``): the signing page draws the chosen signature box with one. ``form-action``
is not restricted, because a form may lead to a portal (OpenID Connect answers by redirect after
the consent form) or to the citizen's card agent on 127.0.0.1.

Django's admin (its own scripts) keeps Django's defaults; the card agent's pages, served by the
agent, carry their own policy. The policy is ``CHAVE_CONTENT_SECURITY_POLICY``.
"""

from __future__ import annotations

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CHAVE_CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response and not request.path.startswith("/admin/"):
            response["Content-Security-Policy"] = policy
        return response


def allow_frames(response, urls):
    """The policy admits no frame: a page that must load ``urls`` in frames (front-channel logout)
    gets the policy with ``frame-src`` naming their origins, and only those; and Chave's own when
    a frame carries a SAML ``LogoutRequest`` (the SP answers it in that frame, with a
    ``LogoutResponse`` sent back to Chave's logout service)."""
    if urls and settings.CHAVE_CONTENT_SECURITY_POLICY:
        from urllib.parse import urlsplit

        origins = sorted({f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in urls})
        if any("SAMLRequest=" in urlsplit(u).query for u in urls):
            origins.insert(0, "'self'")
        response["Content-Security-Policy"] = f"{settings.CHAVE_CONTENT_SECURITY_POLICY}; frame-src {' '.join(origins)}"
    return response


# --- What Django's error reports may show ----------------------------------------------------
import re  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from django.views.debug import SafeExceptionReporterFilter  # noqa: E402

# Setting (and request header / cookie) names whose values are secrets: Django's own list plus the
# words Chave's secrets are named with (``CHAVE_PIN_PEPPER``, ``CHAVE_PAIRWISE_SALT``,
# ``CHAVE_SIGNING_USER_PIN``). A new secret setting named with any of them is masked too.
_SECRET_SETTING = re.compile(r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|PEPPER|SALT|PIN|"
                             r"CREDENTIAL|PRIVATE|DSN", re.I)
# Frame variables and form fields that carry what a citizen typed or a key: masked in every report.
_SECRET_VARIABLE = re.compile(r"pin|code|otp|sad|pass|secret|token|key|pepper|salt|private|body|"
                              r"authorization|cookie|credential", re.I)
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.I)


class SecretsReporterFilter(SafeExceptionReporterFilter):
    """Django's error reports (the debug page in development, error e-mails and logs otherwise)
    with every secret masked, DEBUG or not.

    Masked: settings named like a secret (:data:`_SECRET_SETTING`, which covers every secret
    setting of Chave), the password of any URL (``CHAVE_REDIS_URL``, ``CACHES``), and anywhere in
    the report (settings, request headers and environment, frame variables, form fields) any text
    containing the value of a secret setting. Frame variables and form fields named like a PIN, a
    code or a key are masked too. Django's own filter does the first only for its shorter list of
    names, and the rest only with DEBUG off.
    """

    hidden_settings = _SECRET_SETTING

    def is_active(self, request):
        return True

    def _secret_values(self) -> list[str]:
        from django.conf import settings as current

        values = []
        for name in dir(current):
            if name.isupper() and _SECRET_SETTING.search(name):
                value = getattr(current, name, None)
                if isinstance(value, str) and len(value) >= 6:
                    values.append(value)
        return values

    def _mask_text(self, value):
        if not isinstance(value, str):
            return value
        if _URL_WITH_PASSWORD.match(value):
            parts = urlsplit(value)
            value = value.replace(f":{parts.password}@", f":{self.cleansed_substitute}@", 1)
        if any(secret in value for secret in self._secret_values()):
            return self.cleansed_substitute
        return value

    def _carries_secret(self, value) -> bool:
        try:
            text = value if isinstance(value, str) else repr(value)
        except Exception:  # a broken __repr__: Django's page says so itself
            return False
        return self._mask_text(text) != text

    def cleanse_setting(self, key, value):
        return self._mask_text(super().cleanse_setting(key, value))

    def get_post_parameters(self, request):
        parameters = super().get_post_parameters(request)
        if not parameters:
            return parameters
        cleansed = parameters.copy()
        for name in cleansed:
            if _SECRET_VARIABLE.search(name):
                cleansed.setlist(name, [self.cleansed_substitute])
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            if _SECRET_VARIABLE.search(name) or self._carries_secret(value):
                value = self.cleansed_substitute
            variables.append((name, value))
        return variables
