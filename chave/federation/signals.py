"""Signals of the federation, for the protocol doors to act on without the federation knowing them."""

from django.dispatch import Signal

# The citizen withdrew their consent to a party (personal area): each door revokes what it issued
# to that party for the citizen and returns how many tokens it revoked.
# Arguments: citizen, relying_party.
consent_revoked = Signal()

# A party is about to be approved (or reinstated): each door checks what it must (OIDC: the
# sector_identifier_uri lists every redirect URI); a receiver raises ValidationError to refuse.
# Arguments: relying_party.
approving = Signal()
