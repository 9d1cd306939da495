"""Levels of assurance (``domain.md``: 4 Citizen Card, 3 code by SMS or the app, 2 code by e-mail
or X) and the URIs that name them in every protocol (OpenID Connect ``acr``, SAML
``AuthnContextClassRef``)."""

from __future__ import annotations

from collections.abc import Iterable

LEVEL_URIS = {2: "urn:chave:loa:2", 3: "urn:chave:loa:3", 4: "urn:chave:loa:4"}
URI_LEVELS = {uri: level for level, uri in LEVEL_URIS.items()}


def levels_named(uris: Iterable[str]) -> list[int]:
    """The levels among ``uris`` that name one, lowest first (unknown names are ignored)."""
    return sorted(URI_LEVELS[u] for u in uris if isinstance(u, str) and u in URI_LEVELS)
