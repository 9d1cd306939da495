"""Fixtures for the signing tests (``signing_pki``, the PKI and its SoftHSM2 token, is in
``chave/conftest.py``: readiness checks use it too)."""

from __future__ import annotations

import base64
import hashlib

import pytest


@pytest.fixture
def signer(signing_pki, make_citizen):
    """A citizen with signing active (signing PIN 5820); returns their key and credential. The key
    is of ``CHAVE_SIGNING_KEY_ALGORITHM`` (RSA 3072 by default) unless ``key_algorithm`` says."""
    from django.test import override_settings

    from chave.signing import services

    def make(key_algorithm=None, **kwargs):
        key = make_citizen(**kwargs)
        with override_settings(**({"CHAVE_SIGNING_KEY_ALGORITHM": key_algorithm} if key_algorithm else {})):
            credential = services.activate_signing(key, "5820", by="test").credential
        return key, credential

    return make


def digest_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
