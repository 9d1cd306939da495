"""Rows that matter only for a while, forgotten in one pass off the request path.

- throttle events older than their throttle's window (:func:`chave.throttle.services.purge`);
- the replay caches of the OpenID Connect provider: ``jti`` values of DPoP proofs and of
  ``private_key_jwt`` client assertions past their expiry (a replay of an expired proof or
  assertion is refused for its age before the cache is asked).

Requests never delete here: each would pay for a ``DELETE`` (and, on SQLite, a write
transaction) of rows it does not need. The delivery worker runs this with its sweep (every
``delivery_sweep_seconds``) and ``chave housekeeping`` runs it too; rows that outlive their
use meanwhile only take space: every read filters by time, and a ``jti`` seen again is refused
either way. Safe on several instances at once.
"""

from __future__ import annotations

from chave import clock


def forget_expired() -> int:
    """How many rows were removed."""
    from chave.oidc import dpop, server
    from chave.throttle import services as throttle

    now = clock.now()
    return throttle.purge(now) + dpop.forget_expired(now) + server.forget_expired_assertions(now)

