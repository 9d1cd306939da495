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
