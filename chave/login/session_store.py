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

Reading, writing and deleting a session (every request that has one) run SQL compiled once
(``chave.compiled``), the statements Django's store runs; a single write outside a transaction
is not wrapped in one of its own (a statement is atomic by itself).

``SESSION_ENGINE = "chave.login.session_store"``; the table and the data are Django's own.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.contrib.sessions.models import Session
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string

from chave.compiled import Compiled, Inserter

_UNEXPIRED = Compiled(lambda key, now: Session.objects.filter(session_key=key, expire_date__gt=now)[:1], str, dt.datetime)
_NEW = Inserter(Session)
_REWRITE = Compiled(lambda key, data, expires: Session.objects.filter(session_key=key), str, str, dt.datetime,
                    update=lambda key, data, expires: {"session_data": data, "expire_date": expires})
_DELETE = Compiled(lambda key: Session.objects.filter(session_key=key), str, delete=True)


class SessionStore(DatabaseStore):
    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    _unstored = False  # the session key was drawn by a rotation and has no row yet

    def _get_session_from_db(self):
        # The key is one this store drew, or a cookie's value that passed Django's key check.
        found = _UNEXPIRED.first(self.session_key, timezone.now())
        if found is None:
            self._session_key = None
        return found

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
            self._write(must_create)
            return
        try:
            self._write(True)
        except CreateError:  # the drawn key is someone's (a 1 in 2^165 chance): draw until one is free
            self._session_key = None
            self._write(False)
        self._unstored = False

    def _write(self, must_create: bool) -> None:
        """Django's ``save()``: insert (``CreateError`` if the key is taken) or update
        (``UpdateError`` if the row is gone); with no key yet, ``create()`` draws one."""
        if self.session_key is None:
            self.create()
            return
        data = self._get_session(no_load=must_create)
        key, encoded, expires = self._get_or_create_session_key(), self.encode(data), self.get_expiry_date()
        # Inside a transaction, a savepoint: a refused insert must not spoil the caller's work.
        scope = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        try:
            with scope:
                if must_create:
                    _NEW.create(session_key=key, session_data=encoded, expire_date=expires)
                elif _REWRITE.update(key, encoded, expires) != 1:
                    raise UpdateError
        except IntegrityError:
            if must_create:
                raise CreateError from None
            raise

    def delete(self, session_key=None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        _DELETE.delete(session_key)
