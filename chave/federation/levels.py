"""Levels of assurance (``domain.md``: 4 Citizen Card, 3 code by SMS or the app, 2 code by e-mail
or X) and the URIs that name them in every protocol (OpenID Connect ``acr``, SAML
``AuthnContextClassRef``)."""

from __future__ import annotations

from collections.abc import Iterable

LEVEL_URIS = {2: "urn:chave:loa:2", 3: "urn:chave:loa:3", 4: "urn:chave:loa:4"}
# The eIDAS levels of assurance (Regulation 910/2014, Implementing Regulation 2015/1502) name the
# same three levels: low = 2 (a code by e-mail or X), substantial = 3 (SMS or the app), high = 4
# (the Citizen Card). Accepted wherever a level is asked for, in every protocol.
EIDAS_LEVEL_URIS = {
    2: "http://eidas.europa.eu/LoA/low",
    3: "http://eidas.europa.eu/LoA/substantial",
    4: "http://eidas.europa.eu/LoA/high",
}
URI_LEVELS = {uri: level for level, uri in LEVEL_URIS.items()}
ALIASES = {uri: level for level, uri in EIDAS_LEVEL_URIS.items()}
ALL_URI_LEVELS = {**URI_LEVELS, **ALIASES}


def levels_named(uris: Iterable[str]) -> list[int]:
    """The levels among ``uris`` that name one (Chave's URIs or their eIDAS aliases), lowest first;
    unknown names are ignored."""
    return sorted(ALL_URI_LEVELS[u] for u in uris if isinstance(u, str) and u in ALL_URI_LEVELS)


def level_of(uri) -> int | None:
    """The level a URI names (Chave's or its eIDAS alias), or None."""
    return ALL_URI_LEVELS.get(uri) if isinstance(uri, str) else None


def supported_uris() -> list[str]:
    """Every URI that names a level, Chave's first (what discovery lists as ``acr_values_supported``)."""
    return [*LEVEL_URIS.values(), *EIDAS_LEVEL_URIS.values()]
