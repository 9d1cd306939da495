"""What dead workers leave behind, closed in one pass: ``chave recover_stalled``, ``chave housekeeping``.

A worker killed mid-send (SIGKILL, an out-of-memory kill, a machine lost) leaves its claim behind.
Each worker sweeps at start and every ``delivery_sweep_seconds``; this is the same sweep for a
deployment that wants it on its own schedule (cron, a systemd timer) or after an incident, when
no worker may be running. It closes, after ``delivery_sending_timeout_seconds``:

- messages (codes, notices) left ``sending``: ``interrupted``, never sent twice
  (:func:`chave.delivery.services.recover_stalled`); queued messages that lost their task get one;
- back-channel logouts left ``sending``: sent again, since a second logout token ends nothing
  more (:func:`chave.oidc.logout.recover_stalled_logouts`); queued ones that lost their task get one.

Safe anywhere, any number of times, on several instances at once.
"""

from __future__ import annotations


def recover_stalled() -> dict[str, int]:
    """One sweep; how many messages were ``interrupted`` / ``requeued`` and logouts ``resent`` / ``failed``."""
    from chave.delivery import services as delivery
    from chave.oidc.logout import recover_stalled_logouts

    messages = delivery.recover_stalled()
    logouts = recover_stalled_logouts()
    return {"messages_interrupted": messages["interrupted"], "messages_requeued": messages["requeued"],
            "logouts_resent": logouts["resent"], "logouts_failed": logouts["failed"]}
