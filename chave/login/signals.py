"""Signals of the login app, for apps that must act when a citizen's session ends.

``signed_out`` is sent by :func:`chave.login.services.sign_out` before the session is flushed,
with ``request`` (its session still readable) and ``who`` (the :class:`SignedIn` that is
leaving, or None). The OpenID Connect provider listens to it to end the single sign-on session
and tell the portals (back-channel logout); the login app does not import the provider.
"""

from django.dispatch import Signal

signed_out = Signal()
