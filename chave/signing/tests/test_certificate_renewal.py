"""A renewed identity document renews the signing certificate: re-issued by the signing CA for the
same key in the HSM (no new activation, the signing PIN unchanged), kept in a history per
credential; OCSP and the CRL answer for the earlier serial as well as the new one, as a relying
party asks them (cryptography's OCSP request and response, the CRL over HTTP)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from django.core.management import call_command

from chave.audit.models import AuditEvent
from chave.identity import services as identity
from chave.identity.registry import DocumentRef, LocalRecords
from chave.signing import services
from chave.signing.models import SigningCertificate

from .test_pki_services import _cert, ask, signed_by_the_responder

pytestmark = pytest.mark.django_db


def _crl(client) -> dict[int, x509.RevokedCertificate]:
    crl = x509.load_der_x509_crl(client.get("/pki/signing/ca.crl").content)
    return {entry.serial_number: entry for entry in crl}


def _history(credential) -> list[tuple[str, str]]:
    return list(credential.certificates.order_by("issued_at", "id").values_list("serial_number", "status"))


def test_a_renewed_card_reissues_the_certificate_for_the_same_key_and_both_serials_answer(
        signing_pki, signer, client, clock, capsys, django_capture_on_commit_callbacks):
    ca, responder = _cert(signing_pki, "ca.crt"), _cert(signing_pki, "ocsp.crt")
    key, credential = signer(document_expiry=clock.today() + dt.timedelta(days=20))
    old = services.certificate(credential)
    assert old.not_valid_after_utc.date() == key.valid_until  # the certificate ends with the key (card + 30 days)
    clock.travel(dt.timedelta(days=5))

    assert identity.renew_document(key, clock.today() + dt.timedelta(days=3650), by="civil-registry",
                                   channel="registry")
    credential.refresh_from_db()
    new = services.certificate(credential)
    # The same credential and key in the HSM: the same public key, a new serial, a later end.
    assert services.active_credential(key.citizen) == credential
    assert new.public_key().public_numbers() == old.public_key().public_numbers()
    assert new.serial_number != old.serial_number and new.subject == old.subject
    assert new.not_valid_after_utc > old.not_valid_after_utc
    new.verify_directly_issued_by(ca)
    assert services.check_signing_pin(credential, "5820").ok  # the same signing PIN
    assert _history(credential) == [(f"{old.serial_number:x}", "superseded"), (f"{new.serial_number:x}", "current")]
    event = AuditEvent.objects.get(event="signing.reissue")
    assert event.outcome == "ok" and event.detail["previous_serial"] == f"{old.serial_number:x}"
    assert event.detail["certificate_serial"] == f"{new.serial_number:x}" and event.detail["previous_revoked"] is False
    assert event.detail["by"] == "civil-registry" and event.channel == "registry"
    # The integrators' chain starts with the new certificate.
    assert services.chain_pem(credential)[0] == new.public_bytes(serialization.Encoding.PEM).decode()

    # The earlier certificate is still true (the same person, the same key): both are good.
    for cert in (old, new):
        answer = ask(client, cert, ca)
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD and answer.serial_number == cert.serial_number
        assert signed_by_the_responder(answer, responder)
    assert not {old.serial_number, new.serial_number} & set(_crl(client))

    # The operator sees the history, newest first.
    call_command("signing", "show", key.citizen.doc_number, "--json")
    shown = json.loads(capsys.readouterr().out)
    assert [(c["serial"], c["status"]) for c in shown["certificates"]] == [
        (f"{new.serial_number:x}", "current"), (f"{old.serial_number:x}", "superseded")]
    assert shown["certificate_serial"] == f"{new.serial_number:x}"

    # Deactivating signing revokes every certificate of the key: OCSP and the CRL say so for both.
    with django_capture_on_commit_callbacks(execute=True):
        services.deactivate_signing(key.citizen, by="test")
    listed = _crl(client)
    for cert in (old, new):
        answer = ask(client, cert, ca)
        assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert answer.revocation_reason == x509.ReasonFlags.cessation_of_operation
        assert listed[cert.serial_number].extensions.get_extension_for_class(x509.CRLReason).value.reason == \
            x509.ReasonFlags.cessation_of_operation


def test_new_names_in_the_civil_records_revoke_the_earlier_certificate_as_superseded(signing_pki, signer, client,
                                                                                    clock):
    ca = _cert(signing_pki, "ca.crt")
    key, credential = signer(nic="12345678", full_name="Maria Teste Silva",
                             document_expiry=clock.today() + dt.timedelta(days=20))
    old = services.certificate(credential)
    clock.travel(dt.timedelta(days=10))
    records = LocalRecords()
    record = records.lookup(DocumentRef("cc", "PT", "12345678"))
    records.store(dataclasses.replace(record, full_name="Maria Teste Costa", family_name="Costa",
                                      document_expiry=clock.today() + dt.timedelta(days=3650)))

    assert identity.renew_from_registry() == 1
    credential.refresh_from_db()
    key.citizen.refresh_from_db()
    assert (key.citizen.full_name, key.citizen.family_name) == ("Maria Teste Costa", "Costa")
    new = services.certificate(credential)
    assert new.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Maria Teste Costa"
    assert new.subject.get_attributes_for_oid(NameOID.SURNAME)[0].value == "Costa"
    assert new.public_key().public_numbers() == old.public_key().public_numbers()
    # The earlier certificate names someone who no longer is: revoked, reason superseded.
    answer = ask(client, old, ca)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason == x509.ReasonFlags.superseded
    listed = _crl(client)
    assert listed[old.serial_number].extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.superseded
    assert new.serial_number not in listed
    assert ask(client, new, ca).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert _history(credential) == [(f"{old.serial_number:x}", "revoked"), (f"{new.serial_number:x}", "current")]
    event = AuditEvent.objects.get(event="key.renew")
    assert event.detail["names_changed"] == ["family_name", "full_name"]
    assert AuditEvent.objects.get(event="signing.reissue").detail["previous_revoked"] is True


def test_a_renewal_that_does_not_outlive_the_certificate_keeps_it(signing_pki, signer, clock, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "signing_certificate_days": 365}
    key, credential = signer(document_expiry=clock.today() + dt.timedelta(days=3000))
    serial = credential.serial_number
    # The certificate ends a year from now (the policy), long before the key: renewing the document
    # gives nothing a certificate issued now would add.
    assert identity.renew_document(key, clock.today() + dt.timedelta(days=3650), by="test")
    credential.refresh_from_db()
    assert credential.serial_number == serial and _history(credential) == [(serial, "current")]
    assert not AuditEvent.objects.filter(event="signing.reissue").exists()
    # Half a year later the next renewal does outlive it: re-issued.
    clock.travel(dt.timedelta(days=180))
    assert identity.renew_document(key, clock.today() + dt.timedelta(days=3650), by="test")
    credential.refresh_from_db()
    assert credential.serial_number != serial
    assert credential.not_after.date() == (clock.now() + dt.timedelta(days=365)).date()


def test_a_ca_that_cannot_sign_leaves_the_renewal_done_and_the_certificate_in_use(signing_pki, signer, clock,
                                                                                 settings, caplog):
    key, credential = signer(document_expiry=clock.today() + dt.timedelta(days=20))
    serial, label = credential.serial_number, settings.CHAVE_SIGNING_CA_KEY_LABEL
    settings.CHAVE_SIGNING_CA_KEY_LABEL = "no-such-key"  # the HSM holds no such key: the CA cannot sign
    new_expiry = clock.today() + dt.timedelta(days=3650)
    assert identity.renew_document(key, new_expiry, by="test")
    key.refresh_from_db()
    credential.refresh_from_db()
    assert key.citizen.document_expiry == new_expiry  # the key is renewed all the same
    assert credential.serial_number == serial and _history(credential) == [(serial, "current")]
    event = AuditEvent.objects.get(event="signing.reissue")
    assert (event.outcome, event.detail["error"]) == ("failed", "HsmError")
    assert "not re-issued: HsmError" in caplog.text
    # The next renewal, with the CA back, re-issues it.
    settings.CHAVE_SIGNING_CA_KEY_LABEL = label
    assert identity.renew_document(key, new_expiry + dt.timedelta(days=1), by="test")
    credential.refresh_from_db()
    assert credential.serial_number != serial
    assert SigningCertificate.objects.filter(credential=credential).count() == 2


def test_a_revoked_credential_is_not_reissued(signing_pki, signer, clock, django_capture_on_commit_callbacks):
    key, credential = signer(document_expiry=clock.today() + dt.timedelta(days=20))
    with django_capture_on_commit_callbacks(execute=True):
        services.deactivate_signing(key.citizen, by="test")
    assert services.reissue_certificate(credential, by="test") is None
    assert identity.renew_document(key, clock.today() + dt.timedelta(days=3650), by="test")
    assert not AuditEvent.objects.filter(event="signing.reissue").exists()
    assert _history(credential) == [(credential.serial_number, "revoked")]


def test_a_new_document_number_reissues_the_certificate_naming_it_and_revokes_the_earlier(signing_pki, client,
                                                                                       clock):
    from chave.identity.registry import IdentityRecord

    ca = _cert(signing_pki, "ca.crt")
    doc = DocumentRef("residence_permit", "UA", "AB123456")
    LocalRecords().store(IdentityRecord(doc=doc, full_name="Olena Kovalenko", given_name="Olena",
                                        family_name="Kovalenko", birth_date=dt.date(1988, 3, 2),
                                        document_expiry=clock.today() + dt.timedelta(days=20), nif="123456789"))
    key, _ = identity.register_citizen(doc, [identity.ContactInput("mobile", "+351912345678")], pin="4719",
                                       contacts_verified_by="test")
    credential = services.activate_signing(key, "5820", by="test").credential
    old = services.certificate(credential)
    assert "AB123456" in old.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value

    identity.replace_document(key, DocumentRef("residence_permit", "UA", "CD765432"),
                              clock.today() + dt.timedelta(days=1825), by="staff:clerk", channel="counter")
    credential.refresh_from_db()
    new = services.certificate(credential)
    assert "CD765432" in new.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
    assert new.public_key().public_numbers() == old.public_key().public_numbers()
    assert services.check_signing_pin(credential, "5820").ok  # no new activation
    # The earlier certificate names a document the citizen no longer holds: revoked, superseded.
    answer = ask(client, old, ca)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason == x509.ReasonFlags.superseded
    assert ask(client, new, ca).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert _history(credential) == [(f"{old.serial_number:x}", "revoked"), (f"{new.serial_number:x}", "current")]
