"""The hardware security module that holds citizens' signing keys, through PKCS#11.

One adapter, :class:`Pkcs11Hsm`, over ``python-pkcs11``: the module path, token label and user
PIN are settings (``CHAVE_SIGNING_PKCS11_MODULE``, ``_TOKEN_LABEL``, ``_USER_PIN``), so SoftHSM2
in development and tests and a real HSM in production are the same code. Keys are ECDSA P-256
pairs generated inside the token (private half sensitive, never extractable), found by label;
the signing CA, its OCSP responder and its TSA keep their keys here too (``chave.signing.ca_keys``).

The module is loaded once per process. SoftHSM2 reads one configuration per process, when the
module is initialised: when the process has none yet (``SOFTHSM2_CONF``), the signing one
(``CHAVE_SIGNING_SOFTHSM2_CONF``) is put in the environment; when another part of the process
(the Citizen Card's development tokens) set one first, that one is used, and
:func:`chave.signing.devpki.init_softhsm_token` makes the signing token there. One logged-in
session serves the process, used under a lock (PKCS#11 sessions are not thread-safe; the web
server's threads take turns on it); a session another user of the module ended by re-initialising
it is opened again.
"""

from __future__ import annotations

import functools
import os
import threading

import pkcs11
from django.conf import settings
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_ecdsa_signature, encode_named_curve_parameters

CURVE = "secp256r1"


class HsmError(Exception):
    """The HSM refused or failed an operation (missing key, token absent)."""


class Pkcs11Hsm:
    def __init__(self, module: str, token_label: str, user_pin: str):
        self._module, self._label, self._pin = module, token_label, user_pin
        self._lock = threading.Lock()
        self._session = None

    def _open(self):
        lib = pkcs11.lib(self._module)
        try:
            token = lib.get_token(token_label=self._label)
        except pkcs11.NoSuchToken:
            # A token made after the module was loaded (SoftHSM2 reads its token directory once).
            lib.reinitialize()
            token = lib.get_token(token_label=self._label)
        try:
            return token.open(user_pin=self._pin, rw=True)
        except pkcs11.UserAlreadyLoggedIn:
            # PKCS#11 logs in per application and token: another session of this process did.
            return token.open(rw=True)

    def _run(self, operation):
        with self._lock:
            if self._session is None:
                self._session = self._open()
            try:
                return operation(self._session)
            except pkcs11.PKCS11Error:  # the session was ended under us (a re-initialised module): once more
                self._session = self._open()
                return operation(self._session)

    def generate_key(self, label: str, curve: str = CURVE) -> bytes:
        """A new key pair in the token under ``label`` (on ``curve``: the citizens' P-256 by default,
        P-384 for the signing CA); returns the public key (SubjectPublicKeyInfo DER)."""

        def generate(session):
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True
            )
            public, _private = params.generate_keypair(
                store=True, label=label,
                public_template={Attribute.VERIFY: True},
                private_template={Attribute.SIGN: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                                  Attribute.PRIVATE: True},
            )
            return encode_ec_public_key(public)

        return self._run(generate)

    def sign_digests(self, label: str, digests: list[bytes]) -> list[bytes]:
        """ECDSA signatures (DER, as X.509 and CMS want them) of each digest with the key ``label``."""

        def sign(session):
            key = self._private_key(session, label)
            return [encode_ecdsa_signature(key.sign(d, mechanism=Mechanism.ECDSA)) for d in digests]

        return self._run(sign)

    def public_key(self, label: str) -> bytes:
        """The public key of the pair ``label`` (SubjectPublicKeyInfo DER)."""

        def read(session):
            try:
                return encode_ec_public_key(session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label))
            except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as e:
                raise HsmError(f"no single public key {label!r} in the HSM") from e

        return self._run(read)

    def destroy_key(self, label: str) -> bool:
        """Destroy the key pair ``label``; False when the token holds none."""

        def destroy(session):
            found = list(session.get_objects({Attribute.LABEL: label}))
            for obj in found:
                obj.destroy()
            return bool(found)

        return self._run(destroy)

    def has_key(self, label: str) -> bool:
        return self._run(lambda s: bool(list(s.get_objects({Attribute.LABEL: label,
                                                             Attribute.CLASS: ObjectClass.PRIVATE_KEY}))))

    @staticmethod
    def _private_key(session, label: str):
        try:
            return session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as e:
            raise HsmError(f"no single signing key {label!r} in the HSM") from e


@functools.lru_cache(maxsize=1)
def _hsm(module: str, token_label: str, user_pin: str, softhsm_conf: str) -> Pkcs11Hsm:
    if softhsm_conf and os.environ.get("SOFTHSM2_CONF") != softhsm_conf:
        # SoftHSM2 reads its configuration when the module is initialised: point it at this one
        # and initialise again, so that the token is the one these settings name (the previous
        # adapter's session ends and is reopened if it is ever used again).
        os.environ["SOFTHSM2_CONF"] = softhsm_conf
        pkcs11.lib(module).reinitialize()
    return Pkcs11Hsm(module, token_label, user_pin)


def hsm() -> Pkcs11Hsm:
    """The process's HSM adapter, as the settings name it."""
    return _hsm(settings.CHAVE_SIGNING_PKCS11_MODULE, settings.CHAVE_SIGNING_TOKEN_LABEL,
                settings.CHAVE_SIGNING_USER_PIN, settings.CHAVE_SIGNING_SOFTHSM2_CONF)
