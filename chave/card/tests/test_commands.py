"""``chave dev-pki``, ``chave dev-card`` (hyphenated as the issue names them) and the test PKI's
CRL and OCSP URLs."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from django.core.management import CommandError, call_command
from django.utils import translation

from chave.card import protocol, verification
from chave.card.pki import DevPki

from .conftest import child_env, json_sign

pytestmark = pytest.mark.django_db


def test_dev_pki_init_as_the_cli_spells_it(tmp_path):
    env = {**os.environ, "CHAVE_CARD_DEV_DIR": str(tmp_path), "CHAVE_DATA_DIR": str(tmp_path / "data"),
           "DJANGO_SETTINGS_MODULE": "chave.settings"}
    first = subprocess.run([sys.executable, "-m", "chave.cli", "dev-pki", "init", "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["created"] is True
    signing = Path(json.loads(first.stdout)["signing_directory"])  # the signing hierarchy comes with it
    assert signing.is_relative_to(tmp_path / "data") and (signing / "root.crt").exists()
    again = subprocess.run([sys.executable, "-m", "chave.cli", "dev-pki", "init", "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout)["created"] is False
    pki_dir = tmp_path / "pki"
    assert stat.S_IMODE(pki_dir.stat().st_mode) == 0o700
    for name in ("root.key", "sub-ca.key", "ocsp.key"):
        assert stat.S_IMODE((pki_dir / name).stat().st_mode) == 0o600
    root = DevPki(pki_dir).root
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Citizen Card (TEST)"


def test_dev_card_issue_makes_a_card_like_the_real_one(cards, card_dir, agent, tmp_path):
    env = child_env(card_dir, CHAVE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="chave.settings")
    env.pop("CHAVE_DATABASE_URL", None)  # its own embedded database, whatever the suite runs on
    chave = [sys.executable, "-m", "chave.cli"]
    subprocess.run([*chave, "migrate", "-v0"], env=env, check=True, timeout=300)
    done = subprocess.run([*chave, "dev-card", "issue", "--nic", "77788899", "--name", "Gabriela Santos Rocha",
                           "--birth-date", "2001-02-03", "--pin", "8642", "--json"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["nic"] == "77788899" and made["pin"] == "8642" and not made["revoked"]
    certificate = x509.load_pem_x509_certificate(made["certificate"].encode())
    subject = {a.oid: a.value for a in certificate.subject}
    assert subject[NameOID.SERIAL_NUMBER] == "BI77788899" and subject[NameOID.COMMON_NAME] == "Gabriela Santos Rocha"
    assert (subject[NameOID.GIVEN_NAME], subject[NameOID.SURNAME], subject[NameOID.COUNTRY_NAME]) == (
        "Gabriela", "Santos Rocha", "PT")
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.content_commitment
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in certificate.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    with sqlite3.connect(tmp_path / "chave.sqlite3") as db:
        birth_date, expiry = db.execute("select birth_date, document_expiry from identity_civilrecord "
                                        "where doc_number = '77788899'").fetchone()
    assert birth_date == "2001-02-03" and expiry == certificate.not_valid_after_utc.date().isoformat()
    # The key was made on the token: the agent signs with it, and the signature is the certificate's.
    status, body = json_sign(agent, {"challenge_id": "c", "challenge": "x", "origin": agent.service_origin,
                                     "pin": "8642", "card": made["token_label"]})
    assert status == 200
    assert x509.load_der_x509_certificate(protocol.b64decode(body["certificate"])) == certificate
    verification.check_signature(certificate, protocol.b64decode(body["signature"]), protocol.signed_payload(
        challenge_id="c", challenge="x", origin=protocol.origin_of(agent.service_origin)))
    listed = subprocess.run([*chave, "dev-card", "list", "--json"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert made["token_label"] in [c["token_label"] for c in json.loads(listed.stdout)]


@translation.override("en")
def test_dev_commands_are_refused_in_production(settings):
    settings.IS_PRODUCTION = True
    with pytest.raises(CommandError, match="refused in production"):
        call_command("dev_pki", "init")
    with pytest.raises(CommandError, match="refused in production"):
        call_command("dev_card", "issue", "--nic", "77788899", "--name", "A B")


@translation.override("en")
def test_dev_card_explains_bad_arguments(cards):
    with pytest.raises(CommandError, match="--nic and --name"):
        call_command("dev_card", "issue", "--nic", "77788899")
    with pytest.raises(CommandError):
        call_command("dev_card", "issue", "--nic", "123", "--name", "A B")


@pytest.mark.django_db(transaction=True)
def test_the_crl_and_ocsp_urls_publish_the_test_pki(cards, live_server, client):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    pki = DevPki()
    crl = x509.load_der_x509_crl(client.get("/pki/card/crl").content)
    assert crl.is_signature_valid(pki.sub_ca.public_key())
    assert crl.get_revoked_certificate_by_serial_number(int(cards["revoked"].certificate_serial, 16))
    assert crl.get_revoked_certificate_by_serial_number(int(cards["good"].certificate_serial, 16)) is None
    assert client.post("/pki/card/ocsp", b"junk", content_type="text/plain").status_code == 415
    answer = ocsp.load_der_ocsp_response(client.post("/pki/card/ocsp", b"junk",
                                                     content_type="application/ocsp-request").content)
    assert answer.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    request = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        issuer_name_hash=b"\0" * 20, issuer_key_hash=b"\0" * 20, serial_number=1, algorithm=hashes.SHA1(),
    ).build()
    answer = ocsp.load_der_ocsp_response(client.post(
        "/pki/card/ocsp", request.public_bytes(serialization.Encoding.DER),
        content_type="application/ocsp-request").content)
    assert answer.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
