"""The CSC v2 API end to end over real HTTP: pyHanko's CSC client (``CSCSigner``, an independent
implementation of the CSC API) signs a PDF through Chave; the result passes pyHanko's validator
with the project's trust roots, poppler's pdfsig and qpdf --check. Refusals an integrator sees."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import io

import aiohttp
import pytest
import requests
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.signers import csc_signer
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from chave.audit.models import AuditEvent
from chave.signing import pades

from .helpers import PIN, make_integrator, pdfsig, qpdf_check, sample_pdf, service_token, verify_signature

pytestmark = pytest.mark.django_db(transaction=True)
PHONE = "+351912000101"


@pytest.fixture
def integrator(signing_pki, live_server):
    party, secret = make_integrator()
    token = service_token(live_server.url, party.client_id, secret).json()["access_token"]
    return party, token


def api(base, name, token, body):
    return requests.post(f"{base}/csc/v2/{name}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)


class ExplicitAuthorization(csc_signer.CSCAuthorizationManager):
    """The client side of CSC explicit authorisation (sendOTP, then authorize with PIN + OTP and
    the hashes), which pyHanko leaves to the application; the code is read like the citizen reads
    their phone."""

    def __init__(self, session_info, credential_info, *, http, outbox, pin=PIN, description="contrato.pdf"):
        super().__init__(session_info, credential_info)
        self.http, self.outbox, self.pin, self.description = http, outbox, pin, description

    async def authorize_signature(self, hash_b64s):
        info = self.csc_session_info
        async with self.http.post(info.endpoint_url("credentials/sendOTP"), headers=info.auth_headers,
                                  json={"credentialID": info.credential_id, "description": self.description}) as r:
            assert r.status == 204, await r.text()
        # The delivery worker runs here, in the main thread (it installs signal handlers); the loop
        # waits meanwhile, as a person reading their phone would make it.
        code = self.outbox.last_code(PHONE)
        request = self.format_csc_auth_request(pin=self.pin, otp=code, hash_b64s=hash_b64s)
        async with self.http.post(info.endpoint_url("credentials/authorize"), headers=info.auth_headers,
                                  json=request) as r:
            assert r.status == 200, await r.text()
            return self.parse_csc_auth_response(await r.json())


@pytest.mark.parametrize("key_algorithm", ["rsa-3072", "ec-p256"])
def test_a_third_party_csc_client_signs_a_pdf_that_independent_validators_accept(
        signer, integrator, live_server, outbox, tmp_path, monkeypatch, key_algorithm):
    """With an RSA key (the default) and with a P-256 key (made before RSA was the default)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the test reads the outbox inside the client's loop
    key, credential = signer(phone=PHONE, key_algorithm=key_algorithm)
    party, token = integrator
    listed = api(live_server.url, "credentials/list", token, {"userID": "912 000 101"}).json()
    assert listed["credentialIDs"] == [credential.credential_id]

    async def sign() -> bytes:
        async with aiohttp.ClientSession() as http:
            session_info = csc_signer.CSCServiceSessionInfo(
                service_url=live_server.url, credential_id=credential.credential_id, oauth_token=token, api_ver="v2")
            credential_info = await csc_signer.fetch_certs_in_csc_credential(http, session_info)
            assert credential_info.hash_pinning_required and credential_info.max_batch_size == 100
            auth = ExplicitAuthorization(session_info, credential_info, http=http, outbox=outbox)
            signer_ = csc_signer.CSCSigner(http, auth_manager=auth)
            writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf()))
            out = await signers.PdfSigner(
                signers.PdfSignatureMetadata(field_name="Sig1", subfilter=fields.SigSeedSubFilter.PADES),
                signer=signer_, timestamper=HTTPTimeStamper(live_server.url + "/pki/signing/tsa"),
            ).async_sign_pdf(writer)
            return out.getvalue()

    signed = asyncio.run(sign())
    message = outbox.last(PHONE)
    assert "contrato.pdf" in message.body and "Plataforma de Documentos" in message.body

    async def validate():
        sig = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
        return await async_validate_pdf_signature(sig, pades.validation_context(), ts_validation_context=pades.validation_context())

    status = asyncio.run(validate())
    assert status.intact and status.valid and status.trusted
    assert status.signing_cert.public_key.algorithm == {"rsa-3072": "rsa", "ec-p256": "ec"}[key_algorithm]
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.timestamp_validity is not None and status.timestamp_validity.valid and status.timestamp_validity.trusted
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    assert "Signature is Valid" in pdfsig(path)
    assert qpdf_check(path).returncode == 0
    # Every call was audited with the integrator.
    endpoints = set(AuditEvent.objects.filter(event="signing.api").values_list("detail__endpoint", flat=True))
    assert {"csc.credentials.list", "csc.credentials.info", "csc.credentials.sendOTP", "csc.credentials.authorize",
            "csc.signatures.signHash"} <= endpoints


def _authorize(base, token, credential, outbox, hashes, *, pin=PIN, otp=None, v1=False):
    assert api(base, "credentials/sendOTP", token, {"credentialID": credential.credential_id}).status_code == 204
    body = {"credentialID": credential.credential_id, "numSignatures": len(hashes), "PIN": pin,
            "OTP": otp or outbox.last_code(PHONE)}
    body.update({"hash": hashes} if v1 else {"hashes": hashes, "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1"})
    return api(base, "credentials/authorize", token, body)


def _digest(n: int) -> str:
    return base64.b64encode(hashlib.sha256(f"document {n}".encode()).digest()).decode()


def _sign(base, token, credential, sad, hashes, v1=False, sign_algo=None):
    from chave.signing import services

    sign_algo = sign_algo or services.sign_algorithm_oids(credential)["sha256"]
    body = {"credentialID": credential.credential_id, "SAD": sad, "signAlgo": sign_algo}
    body.update({"hash": hashes, "hashAlgo": "2.16.840.1.101.3.4.2.1"} if v1 else
                {"hashes": hashes, "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1"})
    return api(base, "signatures/signHash", token, body)


@pytest.mark.parametrize("key_algorithm", ["rsa-3072", "ec-p256"])
def test_the_sad_signs_exactly_the_authorised_hashes_once(signer, integrator, live_server, outbox, clock,
                                                          key_algorithm):
    from chave.signing import services

    _key, credential = signer(phone=PHONE, key_algorithm=key_algorithm)
    outbox.last(PHONE)  # the activation notice goes first (the clock is frozen: order by sending)
    clock.travel(dt.timedelta(seconds=1))
    _party, token = integrator
    base = live_server.url
    batch = [_digest(n) for n in range(100)]
    sad = _authorize(base, token, credential, outbox, batch, v1=True).json()["SAD"]
    # Another hash than the authorised ones: refused, and the SAD is spent.
    assert _sign(base, token, credential, sad, batch[:99] + [_digest(999)]).status_code == 400
    assert _sign(base, token, credential, sad, batch).json()["error_description"] == "Invalid SAD."

    clock.travel(dt.timedelta(seconds=31))
    sad = _authorize(base, token, credential, outbox, batch).json()["SAD"]
    answer = _sign(base, token, credential, sad, batch, v1=True)
    assert answer.status_code == 200, answer.text
    signatures = [base64.b64decode(s) for s in answer.json()["signatures"]]
    public = services.certificate(credential).public_key()
    for digest, signature in zip(batch, signatures, strict=True):
        verify_signature(public, signature, base64.b64decode(digest))
    # The key's own algorithm only: an RSA key refuses ECDSA, a P-256 key RSA.
    other = {"rsa-3072": "1.2.840.10045.4.3.2", "ec-p256": "1.2.840.113549.1.1.11"}[key_algorithm]
    clock.travel(dt.timedelta(seconds=31))
    sad2 = _authorize(base, token, credential, outbox, batch[:1]).json()["SAD"]
    wrong_algo = _sign(base, token, credential, sad2, batch[:1], sign_algo=other)
    assert wrong_algo.status_code == 400 and "signAlgo" in wrong_algo.json()["error_description"]
    reused = _sign(base, token, credential, sad, batch)
    assert reused.status_code == 400 and reused.json()["error_description"] == "Invalid SAD."

    clock.travel(dt.timedelta(seconds=31))
    sad = _authorize(base, token, credential, outbox, batch[:1]).json()["SAD"]
    clock.travel(dt.timedelta(seconds=301))
    expired = _sign(base, token, credential, sad, batch[:1])
    assert expired.status_code == 400 and expired.json()["error_description"] == "The SAD has expired."


def test_refusals_an_integrator_sees(signer, integrator, live_server, outbox, clock, make_citizen):
    _key, credential = signer(phone=PHONE)
    _other_key, other = signer(phone="+351912000102")
    outbox.last(PHONE), outbox.last("+351912000102")  # activation notices first (frozen clock)
    clock.travel(dt.timedelta(seconds=1))
    _party, token = integrator
    base = live_server.url
    # More than 100 hashes.
    too_many = api(base, "credentials/authorize", token, {"credentialID": credential.credential_id,
                                                           "numSignatures": 101, "hashes": [_digest(n) for n in range(101)],
                                                           "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                                                           "PIN": PIN, "OTP": "123456"})
    assert too_many.status_code == 400 and "At most 100" in too_many.json()["error_description"]
    # Wrong code, with the attempts left; wrong PIN, with the attempts left, then blocked.
    assert api(base, "credentials/sendOTP", token, {"credentialID": credential.credential_id}).status_code == 204
    code = outbox.last_code(PHONE)
    wrong_code = api(base, "credentials/authorize", token, {
        "credentialID": credential.credential_id, "numSignatures": 1, "hashes": [_digest(1)], "PIN": PIN,
        "OTP": "000000" if code != "000000" else "111111"})
    assert wrong_code.json()["error"] == "invalid_otp" and wrong_code.json()["remaining_attempts"] == 2
    clock.travel(dt.timedelta(seconds=31))
    wrong = _authorize(base, token, credential, outbox, [_digest(1)], pin="9371")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_pin"
    assert wrong.json()["remaining_attempts"] == 2
    clock.travel(dt.timedelta(seconds=31))
    assert _authorize(base, token, credential, outbox, [_digest(1)], pin="9371").json()["remaining_attempts"] == 1
    clock.travel(dt.timedelta(seconds=31))
    third = _authorize(base, token, credential, outbox, [_digest(1)], pin="9371")
    assert third.json()["error"] == "invalid_pin" and "new signing PIN" in third.json()["error_description"]
    refused = api(base, "credentials/sendOTP", token, {"credentialID": credential.credential_id})
    assert refused.status_code == 400 and "new signing PIN" in refused.json()["error_description"]
    # Another citizen's credential cannot use this one's SAD.
    clock.travel(dt.timedelta(seconds=31))
    sad_other = api(base, "credentials/sendOTP", token, {"credentialID": other.credential_id})
    assert sad_other.status_code == 204
    code = outbox.last_code("+351912000102")
    sad = api(base, "credentials/authorize", token, {"credentialID": other.credential_id, "numSignatures": 1,
                                                      "hashes": [_digest(5)], "PIN": PIN, "OTP": code}).json()["SAD"]
    assert _sign(base, token, credential, sad, [_digest(5)]).status_code == 400
    # Signing not active.
    citizen_without = make_citizen(phone="+351912000103")
    assert api(base, "credentials/list", token, {"userID": "+351912000103"}).json()["credentialIDs"] == []
    assert citizen_without.citizen.signing_credentials.count() == 0
    # No token, or a bad one.
    assert requests.post(base + "/csc/v2/credentials/list", json={"userID": PHONE}, timeout=30).status_code == 401
    assert api(base, "credentials/list", "not-a-token", {"userID": PHONE}).status_code == 401


def test_service_tokens_only_for_approved_parties_and_only_scope_csc(signing_pki, live_server):
    from chave.federation import services as federation

    party, secret = make_integrator()
    issued = service_token(live_server.url, party.client_id, secret, scope="")
    assert issued.status_code == 200 and issued.json()["scope"] == "csc" and "refresh_token" not in issued.json()
    assert service_token(live_server.url, party.client_id, secret, scope="openid").status_code == 400
    federation.decide(party, "suspend", by="test", reason="test")
    assert service_token(live_server.url, party.client_id, secret).status_code in (400, 401)
    info = requests.post(live_server.url + "/csc/v2/info", json={}, timeout=30).json()
    assert info["authType"] == ["oauth2client"] and "signatures/signHash" in info["methods"]
    assert AuditEvent.objects.filter(event="oidc.token", detail__grant="client_credentials").exists()
