"""The hardware security module that holds citizens' signing keys, through PKCS#11.

One adapter, :class:`Pkcs11Hsm`, over ``python-pkcs11``: the module path, token label and user
PIN are settings (``CHAVE_SIGNING_PKCS11_MODULE``, ``_TOKEN_LABEL``, ``_USER_PIN``), so SoftHSM2
in development and tests and a real HSM in production are the same code. Keys are generated
inside the token (private half sensitive, never extractable) and found by label: citizens' keys
are RSA (PKCS#1 v1.5 signatures over a DigestInfo, what integrators of the Portuguese remote
signature service expect) or ECDSA P-256 (``CHAVE_SIGNING_KEY_ALGORITHM``); the signing CA, its
OCSP responder and its TSA keep their ECDSA keys here too (``chave.signing.ca_keys``), and the
SCMD service its RSA encryption key, which decrypts inside the token (``chave.scmd``).

The module is loaded once per process. SoftHSM2 reads one configuration per process, when the
module is initialised: when the process has none yet (``SOFTHSM2_CONF``), the signing one
(``CHAVE_SIGNING_SOFTHSM2_CONF``) is put in the environment; when another part of the process
(the Citizen Card's development tokens) set one first, that one is used, and
:func:`chave.signing.devpki.init_softhsm_token` makes the signing token there. One logged-in
session serves each adapter; a session another user of the module ended by re-initialising it is
opened again.

Everything a process does with PKCS#11 holds :data:`MODULE_LOCK`: loading and (re)initialising
the module, making the adapters, and every operation on a session. PKCS#11 sessions are not
thread-safe, python-pkcs11's ``pkcs11.lib`` loads a module twice when two threads ask at once,
and a module re-initialised under another thread's call crashes the process (SoftHSM2 frees what
that call is using): the web server's threads, whose first PIN checks arrive together, take turns.
"""

from __future__ import annotations

import os
import threading

import pkcs11
from django.conf import settings
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_ecdsa_signature, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from chave.once import locked_cache

CURVE = "secp256r1"


# Re-initialising the module ends every session of the process, and PKCS#11 then hands out the same
# session handles again, for whichever token opens next: each adapter notes the generation its
# session belongs to and opens a new one after a re-initialisation rather than use a stale handle.
_generation = [0]

MODULE_LOCK = threading.RLock()  # see the module's documentation


def reinitialize_module(module: str) -> None:
    with MODULE_LOCK:
        pkcs11.lib(module).reinitialize()
        _generation[0] += 1


class HsmError(Exception):
    """The HSM refused or failed an operation (missing key, token absent)."""


class Pkcs11Hsm:
    def __init__(self, module: str, token_label: str, user_pin: str):
        self._module, self._label, self._pin = module, token_label, user_pin
        self._session = None
        self._session_generation = -1
        self._secret_keys: dict = {}

    def _open(self):
        lib = pkcs11.lib(self._module)
        try:
            token = lib.get_token(token_label=self._label)
        except pkcs11.NoSuchToken:
            # A token made after the module was loaded (SoftHSM2 reads its token directory once).
            reinitialize_module(self._module)
            token = lib.get_token(token_label=self._label)
        try:
            return token.open(user_pin=self._pin, rw=True)
        except pkcs11.UserAlreadyLoggedIn:
            # PKCS#11 logs in per application and token: another session of this process did.
            return token.open(rw=True)

    def _run(self, operation):
        with MODULE_LOCK:
            if self._session is None or self._session_generation != _generation[0]:
                self._session = self._open()
                self._session_generation = _generation[0]
            try:
                return operation(self._session)
            except pkcs11.PKCS11Error:  # the session was ended under us (a re-initialised module): once more
                self._session = self._open()
                self._session_generation = _generation[0]
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

    def generate_rsa_key(self, label: str, bits: int, *, sign: bool = True, decrypt: bool = False) -> bytes:
        """A new RSA key pair of ``bits`` in the token under ``label``, for signing (citizens' keys)
        or for decrypting (the SCMD encryption key); returns the public key (SubjectPublicKeyInfo DER)."""

        def generate(session):
            public, _private = session.generate_keypair(
                KeyType.RSA, bits, store=True, label=label,
                public_template={Attribute.VERIFY: sign, Attribute.ENCRYPT: decrypt},
                private_template={Attribute.SIGN: sign, Attribute.DECRYPT: decrypt, Attribute.SENSITIVE: True,
                                  Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True},
            )
            return _rsa_spki(public)

        return self._run(generate)

    def sign_pkcs1(self, label: str, digest_infos: list[bytes]) -> list[bytes]:
        """RSASSA-PKCS1-v1_5 signatures (RFC 8017 §8.2) of each DigestInfo (algorithm identifier
        and digest, already encoded) with the RSA key ``label`` (CKM_RSA_PKCS: the token pads)."""

        def sign(session):
            key = self._private_key(session, label)
            return [key.sign(d, mechanism=Mechanism.RSA_PKCS) for d in digest_infos]

        return self._run(sign)

    def decrypt_pkcs1(self, label: str, ciphertext: bytes) -> bytes:
        """RSAES-PKCS1-v1_5 decryption (RFC 8017 §7.2) inside the token with the RSA key ``label``;
        raises :class:`HsmError` when the ciphertext does not decrypt (wrong key, length or padding)."""

        def decrypt(session):
            key = self._private_key(session, label)
            try:
                return key.decrypt(ciphertext, mechanism=Mechanism.RSA_PKCS)
            except (pkcs11.PKCS11Error, ValueError) as e:
                raise _Undecryptable() from e

        try:
            return self._run(decrypt)
        except _Undecryptable as e:
            raise HsmError("the ciphertext does not decrypt") from e

    def sign_digests(self, label: str, digests: list[bytes]) -> list[bytes]:
        """ECDSA signatures (DER, as X.509 and CMS want them) of each digest with the key ``label``."""

        def sign(session):
            key = self._private_key(session, label)
            return [encode_ecdsa_signature(key.sign(d, mechanism=Mechanism.ECDSA)) for d in digests]

        return self._run(sign)

    def generate_hmac_key(self, label: str) -> None:
        """A new 256-bit secret key in the token under ``label`` for HMAC-SHA-256 only (the PIN
        pepper, :mod:`chave.identity.pins`): sensitive, never extractable, so it signs inside the
        token and no copy of it exists outside."""

        def generate(session):
            session.generate_key(KeyType.GENERIC_SECRET, 256, label=label, store=True, template={
                Attribute.SIGN: True, Attribute.VERIFY: False, Attribute.ENCRYPT: False, Attribute.DECRYPT: False,
                Attribute.WRAP: False, Attribute.UNWRAP: False, Attribute.DERIVE: False,
                Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True})

        self._run(generate)

    def hmac_sha256(self, label: str, data: bytes) -> bytes:
        """HMAC-SHA-256 (CKM_SHA256_HMAC) of ``data`` under the secret key ``label``, computed in
        the token; raises :class:`HsmError` when the token holds no single such key."""

        def mac(session):
            # The key's handle is kept for the session: a token holding every citizen's signing
            # key would otherwise be searched at each PIN check.
            found = self._secret_keys.get(label)
            if found is None or found[0] is not session:
                try:
                    found = (session, session.get_key(object_class=ObjectClass.SECRET_KEY, label=label))
                except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as e:
                    raise _NoKey(label) from e
                self._secret_keys[label] = found
            return found[1].sign(data, mechanism=Mechanism.SHA256_HMAC)

        try:
            return self._run(mac)
        except _NoKey as e:
            raise HsmError(f"no single secret key {label!r} in the HSM") from e

    def has_secret_key(self, label: str) -> bool:
        return self._run(lambda s: bool(list(s.get_objects({Attribute.LABEL: label,
                                                             Attribute.CLASS: ObjectClass.SECRET_KEY}))))

    def public_key(self, label: str) -> bytes:
        """The public key of the pair ``label`` (SubjectPublicKeyInfo DER)."""

        def read(session):
            try:
                key = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
                return _rsa_spki(key) if key.key_type == KeyType.RSA else encode_ec_public_key(key)
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


class _NoKey(Exception):
    """Inside :meth:`Pkcs11Hsm.hmac_sha256`: the key is missing, which a new session would not change."""


class _Undecryptable(Exception):
    """Inside :meth:`Pkcs11Hsm.decrypt_pkcs1`: a refusal of the ciphertext, not of the session
    (so it is not tried again on a new session)."""


def _rsa_spki(public_key) -> bytes:
    """An RSA public key object of the token as SubjectPublicKeyInfo DER (python-pkcs11 encodes
    PKCS#1's RSAPublicKey; X.509 wants it wrapped with its algorithm)."""
    from cryptography.hazmat.primitives import serialization

    return serialization.load_der_public_key(encode_rsa_public_key(public_key)).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@locked_cache(maxsize=1, lock=MODULE_LOCK)  # made once, its module initialised once, however many threads ask
def _hsm(module: str, token_label: str, user_pin: str, softhsm_conf: str) -> Pkcs11Hsm:
    if softhsm_conf and os.environ.get("SOFTHSM2_CONF") != softhsm_conf:
        # SoftHSM2 reads its configuration when the module is initialised: point it at this one
        # and initialise again, so that the token is the one these settings name (the previous
        # adapter's session ends and is reopened if it is ever used again).
        os.environ["SOFTHSM2_CONF"] = softhsm_conf
        reinitialize_module(module)
    return Pkcs11Hsm(module, token_label, user_pin)


def hsm() -> Pkcs11Hsm:
    """The process's HSM adapter, as the settings name it."""
    return _hsm(settings.CHAVE_SIGNING_PKCS11_MODULE, settings.CHAVE_SIGNING_TOKEN_LABEL,
                settings.CHAVE_SIGNING_USER_PIN, settings.CHAVE_SIGNING_SOFTHSM2_CONF)
