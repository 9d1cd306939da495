"""Fixtures for the signing tests (``signing_pki``, the PKI and its SoftHSM2 token, is in
``chave/conftest.py``: readiness checks use it too)."""

from __future__ import annotations

import base64
import hashlib

import pytest


@pytest.fixture
def signer(signing_pki, make_citizen):
    """A citizen with signing active (signing PIN 5820); returns their key and credential."""
    from chave.signing import services

    def make(**kwargs):
        key = make_citizen(**kwargs)
        credential = services.activate_signing(key, "5820", by="test").credential
        return key, credential

    return make


def digest_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
