"""Signals of the identity app, for capabilities that hang off a key.

``key_cancelled`` is sent by :func:`chave.identity.services.cancel_key` and
:func:`~chave.identity.services.revoke_unused_keys` inside the transaction that cancels the key,
with ``key`` (already cancelled) and ``by``. Whatever a key carries beyond login connects to it:
PDF signing deactivates the key's signing capability there (the signing certificate and its
PIN), so a cancelled key can never sign; a receiver that raises undoes the cancellation.

``contact_changed`` is sent by :func:`chave.identity.contacts.confirm` inside the transaction that
replaces a verified contact with a new value, with ``key``, ``kind`` and ``by``; PDF signing
revokes the signing certificate when the mobile number changes.

``key_blocked`` is sent when a key becomes blocked (the last wrong PIN, or
:func:`chave.identity.services.block_key`), inside that transaction, with ``key`` and ``by``; the
Chave app removes the key's devices (chave/app), so that unblocking starts from a new pairing.

``key_renewed`` is sent by :func:`chave.identity.services.renew_document` inside the transaction
that renews the key (its new validity and the citizen's data already saved), with ``key``, ``by``,
``ip`` and ``channel``; PDF signing re-issues the signing certificate for the same key when the
key now outlives it or the certified identity changed.
"""

from django.dispatch import Signal

key_cancelled = Signal()
contact_changed = Signal()
key_blocked = Signal()
key_renewed = Signal()
