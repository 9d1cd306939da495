"""Signals of the login app, for apps that must act when a citizen's session starts or ends.

``signed_in`` is sent by :func:`chave.login.services.sign_in` once a session holds a new
:class:`SignedIn` (its key already rotated), with ``request`` and ``who``. The personal area
listens to it to know every session of a key, so that cancelling the key can end them all.

``signed_out`` is sent by :func:`chave.login.services.sign_out` before the session is flushed,
with ``request`` (its session still readable) and ``who`` (the :class:`SignedIn` that is
leaving, or None). The OpenID Connect provider listens to it to end the single sign-on session
and tell the portals (back-channel logout); the login app does not import the provider. A
receiver may return a list of URLs that the signed-out page must load in hidden frames
(front-channel logout); :func:`~chave.login.services.sign_out` returns them all.
"""

from django.dispatch import Signal

signed_in = Signal()
signed_out = Signal()
