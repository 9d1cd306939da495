"""Django's database sessions, with the two reads Chave's sign-in path does not need.

Every sign-in rotates the session key (no fixation), twice for a login by PIN and code, so the
store's per-rotation work is paid by every login:

- a new key is drawn without first asking the database whether it exists: it is 32 characters
  of 36 (about 165 bits), and Django's ``create()`` inserts it with ``must_create``, so the
  primary key refuses a duplicate and ``create()`` draws again;
- the old session is deleted with one ``DELETE`` instead of a read and then a delete;
- a session never stored (a browser's first sign-in step) has nothing to rotate away from: its
  key is drawn, and the row written once, when the response saves it, instead of being
  inserted empty at the rotation and updated at the end (there is no old key an attacker
  could have planted);
- a stored session rotates the same way: the old row is deleted at once (the old key is dead
  from then on), the new key is drawn at once (what is recorded during the request, such as
  the key's session list, sees it), and its row is inserted once when the response saves it,
  instead of an ``INSERT`` at the rotation and an ``UPDATE`` at the end.

``SESSION_ENGINE = "chave.login.session_store"``; the table and the data are Django's own.
"""

from __future__ import annotations

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.utils.crypto import get_random_string


class SessionStore(DatabaseStore):
    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    _unstored = False  # the session key was drawn by a rotation and has no row yet

    def cycle_key(self) -> None:
        self.modified = True
        if self.session_key is None:
            return
        data, old = self._session, self.session_key
        self._session_key = self._get_new_session_key()
        self._session_cache = data
        self._unstored = True
        self.delete(old)

    def save(self, must_create: bool = False) -> None:
        if not self._unstored:
            super().save(must_create=must_create)
            return
        try:
            super().save(must_create=True)
        except CreateError:  # the drawn key is someone's (a 1 in 2^165 chance): draw until one is free
            self._session_key = None
            super().save()
        self._unstored = False

    def delete(self, session_key=None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self.model.objects.filter(session_key=session_key).delete()
