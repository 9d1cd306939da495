"""Fixtures for the signing tests: a real SoftHSM2 token and the development signing PKI.

``signing_pki`` (session): a fresh PKI directory and SoftHSM2 token for the run, published on
the session's live server (so certificates point at URLs that answer: OCSP, CRLs, CA issuers).
Tests that make the server read their data ask for ``live_server`` themselves (transactional).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from django.test import override_settings


@pytest.fixture(scope="session")
def signing_pki(request, tmp_path_factory, django_db_setup, django_db_blocker):
    server = request.getfixturevalue("live_server")
    directory = tmp_path_factory.mktemp("signing-pki")
    override = override_settings(
        CHAVE_SIGNING_DIR=directory,
        CHAVE_SIGNING_SOFTHSM2_CONF=str(directory / "hsm" / "softhsm2.conf"),
        CHAVE_SIGNING_PKI_URL=server.url + "/pki/signing",
        CHAVE_SIGNING_TSA_URL="",
    )
    override.enable()
    from chave.signing.devpki import ensure_dev_pki

    ensure_dev_pki()
    yield directory
    override.disable()


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
