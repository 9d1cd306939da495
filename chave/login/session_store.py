"""Django's database sessions, with the two reads Chave's sign-in path does not need.

Every sign-in rotates the session key (no fixation), twice for a login by PIN and code, so the
store's per-rotation work is paid by every login:

- a new key is drawn without first asking the database whether it exists: it is 32 characters
  of 36 (about 165 bits), and Django's ``create()`` inserts it with ``must_create``, so the
  primary key refuses a duplicate and ``create()`` draws again;
- the old session is deleted with one ``DELETE`` instead of a read and then a delete.

``SESSION_ENGINE = "chave.login.session_store"``; the table and the data are Django's own.
"""

from __future__ import annotations

from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.utils.crypto import get_random_string


class SessionStore(DatabaseStore):
    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    def delete(self, session_key=None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self.model.objects.filter(session_key=session_key).delete()
