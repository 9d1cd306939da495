"""The certificate history migration, run on a database holding credentials as an upgrade runs it:
each credential's certificate becomes its first history entry, and OCSP and the CRL, which now
read the history, answer for it as before."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from chave.signing import services
from chave.signing.models import SigningCertificate

from .test_pki_services import _cert, ask

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.once]

BEFORE = ("signing", "0002_key_algorithm")
AFTER = ("signing", "0003_certificate_history")


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def test_existing_credentials_get_their_certificate_as_history(signing_pki, signer, client,
                                                              django_capture_on_commit_callbacks):
    ca = _cert(signing_pki, "ca.crt")
    kept_key, kept = signer(phone="+351912000021")
    gone_key, gone = signer(phone="+351912000022")
    with django_capture_on_commit_callbacks(execute=True):
        services.deactivate_signing(gone_key.citizen, by="test")

    migrate(BEFORE)
    migrate(AFTER)

    rows = {row.credential_id: row for row in SigningCertificate.objects.all()}
    assert (rows[kept.pk].serial_number, rows[kept.pk].status) == (kept.serial_number, "current")
    assert bytes(rows[kept.pk].certificate_der) == bytes(kept.certificate_der)
    assert (rows[gone.pk].status, rows[gone.pk].revocation_reason) == ("revoked", "cessationOfOperation")
    assert ask(client, services.certificate(kept), ca).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert ask(client, services.certificate(gone), ca).certificate_status == ocsp.OCSPCertStatus.REVOKED
    crl = x509.load_der_x509_crl(client.get("/pki/signing/ca.crl").content)
    assert {entry.serial_number for entry in crl} == {services.certificate(gone).serial_number}
