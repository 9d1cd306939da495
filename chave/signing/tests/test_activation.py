"""Activation: a key pair in the real SoftHSM2 token, a certificate from the signing CA as
domain.md says, the CLI; deactivation, a new mobile number and a cancelled key revoke it."""

from __future__ import annotations

import json

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import translation

from chave.audit.models import AuditEvent
from chave.identity import contacts, services as identity
from chave.identity.models import ContactKind
from chave.signing import services
from chave.signing.hsm import hsm
from chave.signing.models import SigningCredential

pytestmark = pytest.mark.django_db


def test_dev_pki_is_idempotent_and_keeps_its_keys_in_the_hsm(signing_pki, settings):
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    from chave.signing.devpki import ensure_dev_pki

    before = {p.name: p.read_bytes() for p in signing_pki.glob("*.crt")}
    ensure_dev_pki()
    assert {p.name: p.read_bytes() for p in signing_pki.glob("*.crt")} == before
    assert not list(signing_pki.rglob("*.key")) and not list(signing_pki.rglob("*.pem"))  # no private key on disk
    for label in (settings.CHAVE_SIGNING_CA_KEY_LABEL, settings.CHAVE_SIGNING_OCSP_KEY_LABEL,
                  settings.CHAVE_SIGNING_TSA_KEY_LABEL):
        def attributes(session, label=label):
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
            return key[Attribute.SENSITIVE], key[Attribute.EXTRACTABLE]

        assert hsm()._run(attributes) == (True, False)
        with pytest.raises(pkcs11.PKCS11Error):  # the token will not hand the private value out
            hsm()._run(lambda session, label=label: session.get_key(
                object_class=ObjectClass.PRIVATE_KEY, label=label)[Attribute.VALUE])
    ca = x509.load_pem_x509_certificate((signing_pki / "ca.crt").read_bytes())
    for name in ("ocsp.crt", "tsa.crt"):  # signed by the CA's key in the HSM
        x509.load_pem_x509_certificate((signing_pki / name).read_bytes()).verify_directly_issued_by(ca)
    tsa = x509.load_pem_x509_certificate((signing_pki / "tsa.crt").read_bytes())
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    ocsp = x509.load_pem_x509_certificate((signing_pki / "ocsp.crt").read_bytes())
    assert list(ocsp.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    root = x509.load_pem_x509_certificate((signing_pki / "root.crt").read_bytes())
    assert "Chave Signing Root CA (TEST)" in root.subject.rfc4514_string()


def test_dev_pki_is_refused_in_production(settings, signing_pki):
    from django.core.exceptions import ImproperlyConfigured

    from chave.signing.devpki import ensure_dev_pki

    settings.IS_PRODUCTION = True
    with pytest.raises(ImproperlyConfigured):
        ensure_dev_pki()


def test_activation_makes_a_non_extractable_hsm_key_and_a_qualified_style_certificate(signer):
    key, credential = signer(full_name="Maria Teste Silva")
    cert = services.certificate(credential)
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "PT"
    assert subject.get_attributes_for_oid(NameOID.GIVEN_NAME)[0].value == "Maria"
    assert subject.get_attributes_for_oid(NameOID.SURNAME)[0].value == "Silva"
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Maria Teste Silva"
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == f"IDCPT-{key.citizen.doc_number}"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.content_commitment and not usage.digital_signature and not usage.key_cert_sign
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["0.4.0.194112.1.2"]
    # QCStatements, read back with an independent parser (pyHanko's ASN.1 definitions via asn1crypto).
    from pyhanko.sign.ades.qualified_asn1 import get_qc_statements

    statements = get_qc_statements(asn1_x509.Certificate.load(cert.public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER)))
    native = {s["statement_id"].native: s["statement_info"].native for s in statements}
    assert set(native) == {"qc_compliance", "qc_sscd", "qc_type"}
    assert native["qc_type"] == ["qct_esign"]
    aia = {d.access_method.dotted_string: d.access_location.value
           for d in cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value}
    assert aia["1.3.6.1.5.5.7.48.1"].endswith("/pki/signing/ocsp")
    assert aia["1.3.6.1.5.5.7.48.2"].endswith("/pki/signing/ca.crt")
    crl_dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert crl_dp[0].full_name[0].value.endswith("/pki/signing/ca.crl")
    # The private key lives in the token, sensitive and not extractable.
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    assert hsm().has_key(credential.hsm_label)
    private = hsm()._run(lambda s: s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=credential.hsm_label))
    assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE]
    with pytest.raises(pkcs11.PKCS11Error):
        hsm()._run(lambda s: s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=credential.hsm_label)[Attribute.VALUE])
    assert AuditEvent.objects.filter(event="signing.activate", citizen=key.citizen, outcome="ok").exists()


def test_a_passport_holder_gets_the_pas_semantics_identifier(signing_pki, db):
    import datetime as dt

    from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

    doc = DocumentRef("passport", "BR", "FZ123456")
    LocalRecords().store(IdentityRecord(doc=doc, full_name="João Souza", given_name="João", family_name="Souza",
                                        birth_date=dt.date(1990, 1, 2), document_expiry=dt.date(2035, 1, 1)))
    key, _pin = identity.register_citizen(doc, [identity.ContactInput(ContactKind.MOBILE, "+351913000111")],
                                          pin="4719", contacts_verified_by="test")
    credential = services.activate_signing(key, "5820", by="test").credential
    serial = services.certificate(credential).subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
    assert serial == "PASBR-FZ123456"


@pytest.mark.parametrize("pin, code", [("4719", "signing_pin_same_as_login"), ("1234", "pin_trivial"),
                                        ("12", "pin_format")])
def test_the_signing_pin_follows_the_pin_rules_and_differs_from_the_login_pin(signer, make_citizen, pin, code):
    key = make_citizen(pin="4719")
    with pytest.raises(ValidationError) as caught:
        services.activate_signing(key, pin, by="test")
    assert caught.value.code == code
    assert not SigningCredential.objects.filter(citizen=key.citizen).exists()


def test_activating_twice_is_refused(signer):
    key, _credential = signer()
    with pytest.raises(ValidationError) as caught:
        services.activate_signing(key, "6931", by="test")
    assert caught.value.code == "signing_already_active"


@translation.override("en")
def test_cli_activates_with_a_pin_in_dev_and_prints_a_temporary_one_otherwise(signing_pki, make_citizen, settings,
                                                                             capsys):
    key = make_citizen(phone="+351912000001")
    settings.CHAVE_ENV = "test"
    with pytest.raises(CommandError, match="CHAVE_ENV=dev"):
        call_command("signing", "activate", "912000001", "--signing-pin", "5820")
    call_command("signing", "activate", key.citizen.doc_number, "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["temporary_signing_pin"] and len(out["temporary_signing_pin"]) >= 4
    credential = SigningCredential.objects.get(credential_id=out["credential_id"])
    assert credential.pin_must_change  # printed PINs are changed before the first signature
    call_command("signing", "deactivate", "912000001")
    credential.refresh_from_db()
    assert credential.status == "revoked" and credential.revocation_reason == "cessationOfOperation"
    settings.CHAVE_ENV = "dev"
    call_command("signing", "activate", "+351 912 000 001", "--signing-pin", "5820")
    assert "Signing active" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No citizen"):
        call_command("signing", "activate", "nobody@example.org")


def test_deactivation_revokes_and_destroys_the_hsm_key(signer, django_capture_on_commit_callbacks):
    key, credential = signer()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deactivate_signing(key.citizen, by="test")
    credential.refresh_from_db()
    assert credential.status == "revoked" and credential.revoked_at
    assert not hsm().has_key(credential.hsm_label)
    assert not services.deactivate_signing(key.citizen, by="test")


def test_a_cancelled_key_revokes_the_signing_certificate(signer):
    key, credential = signer()
    identity.cancel_key(key, by="citizen")
    credential.refresh_from_db()
    assert credential.status == "revoked" and credential.revocation_reason == "cessationOfOperation"


@pytest.mark.django_db(transaction=True)
def test_a_new_mobile_number_revokes_the_signing_certificate_a_new_email_does_not(signer, outbox):
    key, credential = signer(phone="+351912000002", email="ana@example.org")
    started = contacts.request_verification(key, ContactKind.EMAIL, "ana.nova@example.org")
    contacts.confirm(key, ContactKind.EMAIL, "ana.nova@example.org", transaction_id=started.transaction,
                     code=outbox.last_code("ana.nova@example.org"))
    credential.refresh_from_db()
    assert credential.status == "active"
    started = contacts.request_verification(key, ContactKind.MOBILE, "+351912000003")
    contacts.confirm(key, ContactKind.MOBILE, "+351912000003", transaction_id=started.transaction,
                     code=outbox.last_code("+351912000003"))
    credential.refresh_from_db()
    assert credential.status == "revoked" and credential.revocation_reason == "affiliationChanged"


@pytest.mark.django_db(transaction=True)
def test_the_citizen_is_told_when_signing_is_activated_and_deactivated(signer, outbox):
    key, credential = signer(phone="+351912000003", email=None, language="en")
    told = outbox.last("+351912000003").body
    assert "digital signature with your Digital Mobile Key is now active" in told
    services.deactivate_signing(key.citizen, by="test")
    told = outbox.last("+351912000003").body
    assert "deactivated and its certificate revoked" in told


def test_portals_are_told_whether_the_citizen_can_sign(signer):
    """The TemAssinaturaDigitalCMD attribute follows the citizen's signing credential."""
    from chave.federation.attributes import attribute_values

    key, _ = signer()
    assert attribute_values(key)["TemAssinaturaDigitalCMD"] is True
    services.deactivate_signing(key.citizen, by="test")
    assert attribute_values(key)["TemAssinaturaDigitalCMD"] is False
