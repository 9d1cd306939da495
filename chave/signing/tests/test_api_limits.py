"""What an integrator (or someone guessing tokens) meets at the limits of the signing APIs: a
per-integrator call limit and a per-address limit on bad tokens (429 with Retry-After, in each
API's own error shape, audited), and the validation API's size limit (413 before the body is
read when its length says too much, or as soon as it streams past the limit), which is the
validation page's limit rather than Django's in-memory 2.5 MB."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.client import AsyncRequestFactory, FakePayload

from chave.audit.models import AuditEvent
from chave.signing import pades, services, views

from .helpers import PIN, make_integrator, sample_pdf

pytestmark = pytest.mark.django_db(transaction=True)
PHONE = "+351912000401"
NOBODY = {"userID": "+351912999999"}


@pytest.fixture
def limits(settings):
    def set_(**throttles):
        settings.CHAVE_POLICY = {**settings.CHAVE_POLICY,
                                 "throttles": {**settings.CHAVE_POLICY["throttles"], **throttles}}

    return set_


def token(client, name):
    party, secret = make_integrator(name)
    basic = base64.b64encode(f"{party.client_id}:{secret}".encode()).decode()
    issued = client.post("/oidc/token", {"grant_type": "client_credentials", "scope": "csc"},
                         HTTP_AUTHORIZATION=f"Basic {basic}")
    assert issued.status_code == 200, issued.content
    return party, issued.json()["access_token"]


def call(client, url, bearer, body):
    return client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {bearer}")


def test_an_integrator_over_its_limit_gets_429_until_the_window_passes_and_others_do_not(
        client, clock, limits):
    limits(signing_api_per_client=(3, 60))
    first, first_token = token(client, "Plataforma de Documentos")
    _second, second_token = token(client, "Portal do Cidadão")
    for _ in range(3):
        assert call(client, "/csc/v2/credentials/list", first_token, NOBODY).status_code == 200
    refused = call(client, "/csc/v2/credentials/list", first_token, NOBODY)
    assert refused.status_code == 429 and refused["Retry-After"] == "60"
    assert refused.json()["error"] == "access_denied" and "Too many calls" in refused.json()["error_description"]
    # Every endpoint counts against the same integrator.
    other = call(client, "/csc/v2/credentials/info", first_token, {"credentialID": "x"})
    assert other.status_code == 429 and other["Retry-After"] == "60"
    # Another integrator is not affected.
    assert call(client, "/csc/v2/credentials/list", second_token, NOBODY).status_code == 200
    # The refusals were audited with the integrator and the throttle.
    refusals = AuditEvent.objects.filter(event="signing.api", outcome="429")
    assert refusals.count() == 2
    assert {(e.detail["client_id"], e.detail["throttle"]) for e in refusals} == {
        (first.client_id, "signing_api_per_client")}
    # One second early is still too early; at the end of the window the calls go through again.
    clock.travel(dt.timedelta(seconds=59))
    assert call(client, "/csc/v2/credentials/list", first_token, NOBODY)["Retry-After"] == "1"
    clock.travel(dt.timedelta(seconds=1))
    assert call(client, "/csc/v2/credentials/list", first_token, NOBODY).status_code == 200


def test_bad_tokens_from_one_address_are_throttled_before_any_token_is_checked(client, clock, limits):
    limits(signing_api_bad_token_per_ip=(3, 300))  # shorter than the token lives
    _party, good = token(client, "Plataforma de Documentos")
    for guess in ("guess-1", "guess-2", "guess-3"):
        answer = call(client, "/csc/v2/credentials/list", guess, NOBODY)
        assert answer.status_code == 401 and "Retry-After" not in answer
    assert client.post("/csc/v2/credentials/list", NOBODY, content_type="application/json").status_code == 429
    refused = call(client, "/csc/v2/credentials/info", "guess-4", {"credentialID": "x"})
    assert refused.status_code == 429 and refused["Retry-After"] == "300" and refused.json()["error"] == "access_denied"
    # From this address even the right token now gets the same answer: guessing gets no faster.
    assert call(client, "/csc/v2/credentials/list", good, NOBODY).status_code == 429
    # Another address is not affected.
    assert client.post("/csc/v2/credentials/list", NOBODY, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {good}", REMOTE_ADDR="198.51.100.7").status_code == 200
    assert AuditEvent.objects.filter(event="signing.api", outcome="429", ip="127.0.0.1",
                                     detail__throttle="signing_api_bad_token_per_ip").count() == 3
    clock.travel(dt.timedelta(seconds=300))
    assert call(client, "/csc/v2/credentials/list", good, NOBODY).status_code == 200


def test_json_apis_refuse_large_bodies_with_json_before_reading_them(client, clock):
    _party, bearer = token(client, "Plataforma de Documentos")
    big = b'{"userID": "' + b"9" * (3 * 1024 * 1024) + b'"}'
    answer = client.post("/csc/v2/credentials/list", big, content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {bearer}")
    assert answer.status_code == 413 and answer.json()["error"] == "invalid_request"
    # A length that says too much is enough: nothing more is read (the test client would fail
    # the request if the view read past the two bytes sent).
    answer = client.post("/csc/v2/credentials/authorize", b"{}", content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {bearer}", CONTENT_LENGTH=str(10 * 1024 * 1024))
    assert answer.status_code == 413 and answer.json()["error"] == "invalid_request"
    assert call(client, "/csc/v2/credentials/list", bearer, "[1]").status_code == 400
    assert call(client, "/csc/v2/credentials/list", bearer, "{not json").status_code == 400


# --- The validation API ------------------------------------------------------------------------


def _signed_through_the_csc_api(client, outbox, clock, credential, pdf: bytes) -> bytes:
    """The PDF signed (PAdES B-T) with the citizen's key, the hash authorised by signing PIN and
    code through the CSC API, as an integrator does."""
    _party, bearer = token(client, "Plataforma de Documentos")
    outbox.last(PHONE)  # the activation notice goes first (the clock is frozen: order by sending)
    clock.travel(dt.timedelta(seconds=1))
    certificate = services.certificate(credential)
    document = io.BytesIO(pdf)
    prepared = pades.prepare(document, certificate)
    hashes = [base64.b64encode(prepared.to_sign).decode()]
    cid = credential.credential_id
    assert call(client, "/csc/v2/credentials/sendOTP", bearer, {"credentialID": cid}).status_code == 204
    sad = call(client, "/csc/v2/credentials/authorize", bearer, {
        "credentialID": cid, "numSignatures": 1, "hashes": hashes, "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
        "PIN": PIN, "OTP": outbox.last_code(PHONE)}).json()["SAD"]
    done = call(client, "/csc/v2/signatures/signHash", bearer, {
        "credentialID": cid, "SAD": sad, "hashes": hashes, "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
        "signAlgo": services.sign_algorithm_oids(credential)["sha256"]})
    assert done.status_code == 200, done.content
    pades.finish(document, prepared, certificate, base64.b64decode(done.json()["signatures"][0]))
    return document.getvalue()


def test_the_validation_api_takes_a_signed_pdf_above_the_old_2_5_mb_cap(
        signer, client, outbox, clock, live_server):
    key, credential = signer(phone=PHONE)
    pdf = sample_pdf(2, padding=3 * 1024 * 1024)
    signed = _signed_through_the_csc_api(client, outbox, clock, credential, pdf)
    assert len(signed) > 3 * 1024 * 1024
    answer = client.post("/api/signing/validate", signed, content_type="application/pdf")
    assert answer.status_code == 200, answer.content[:500]
    report = answer.json()["signatures"][0]
    assert report["intact"] and report["valid"] and report["trusted"] and report["coverage"] == "entire_file"
    assert report["signer_serial"] == f"IDCPT-{key.citizen.doc_number}" and report["level"] == "B-T"

    # Damaged copies: a report that says so, or 400; never a server error.
    flipped = bytearray(signed)
    flipped[signed.index(b"Contrato pagina 1")] ^= 0x01
    answer = client.post("/api/signing/validate", bytes(flipped), content_type="application/pdf")
    assert answer.status_code == 200 and not answer.json()["signatures"][0]["intact"]
    # The signer's certificate inside the signature made unreadable: pyHanko cannot validate it at all.
    subject = services.certificate(credential).subject.public_bytes().hex().encode()
    at = signed.lower().index(subject, signed.rindex(b"/Contents <"))
    answer = client.post("/api/signing/validate", signed[:at] + b"0" * 16 + signed[at + 16:],
                         content_type="application/pdf")
    assert answer.status_code == 200, answer.content[:500]
    report = answer.json()["signatures"][0]
    assert not report["intact"] and not report["valid"] and report["summary"].startswith("INVALID")
    for damaged in (signed[: len(signed) // 2], signed[:1024], signed.replace(b"/ByteRange", b"/ByteRangX"),
                    signed.replace(b"/Contents <", b"/Contents (")):
        answer = client.post("/api/signing/validate", damaged, content_type="application/pdf")
        assert answer.status_code in (200, 400), answer.content[:500]
        assert answer.status_code == 400 or not all(s["intact"] and s["valid"] for s in answer.json()["signatures"])


@pytest.mark.parametrize("garbage", [b"not a pdf", b"%PDF-1.7\n" + bytes(range(256)) * 40, b"%PDF-1.4\n%%EOF\n",
                                     b"\x00" * 5000])
def test_the_validation_api_answers_400_to_garbage(client, garbage):
    answer = client.post("/api/signing/validate", garbage, content_type="application/pdf")
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_request", "error_description": "Not a readable PDF."}


def test_the_validation_api_refuses_other_types_and_empty_bodies(client):
    answer = client.post("/api/signing/validate", sample_pdf(1), content_type="application/octet-stream")
    assert answer.status_code == 415 and answer.json()["error"] == "invalid_request"
    answer = client.generic("POST", "/api/signing/validate", b"", CONTENT_TYPE="application/pdf")
    assert answer.status_code == 400 and "empty" in answer.json()["error_description"]


def test_the_validation_api_refuses_a_too_long_content_length_before_reading(client, settings):
    default = settings.CHAVE_POLICY["signing_validate_max_bytes"]
    assert default == settings.CHAVE_POLICY["signing_area_max_bytes"]  # what the validation page takes
    for limit in (default, 1_000_000):
        settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "signing_validate_max_bytes": limit}
        # The length says more than the limit: refused at once (the test client would fail the
        # request if the view read past the four bytes sent).
        answer = client.post("/api/signing/validate", b"%PDF", content_type="application/pdf",
                             CONTENT_LENGTH=str(limit + 1))
        assert answer.status_code == 413
        assert answer.json() == {"error": "invalid_request", "error_description": "The file is too large."}


class CountingStream(FakePayload):
    """A body that arrives without a length (an ASGI server's chunked upload), counting reads."""

    def __init__(self, content: bytes):
        super().__init__(content)
        self.taken = 0

    def read(self, size=-1, /):
        data = super().read(size)
        self.taken += len(data)
        return data


def test_the_validation_api_stops_reading_a_body_without_length_at_the_limit(settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "signing_validate_max_bytes": 100_000}
    pdf = sample_pdf(1, padding=400_000)
    stream = CountingStream(pdf)
    request = AsyncRequestFactory().request(method="POST", path="/api/signing/validate", _body_file=stream,
                                            headers=[(b"content-type", b"application/pdf")])
    assert "CONTENT_LENGTH" not in request.META
    answer = views.validate_api(request)
    assert answer.status_code == 413 and answer["Content-Type"] == "application/json"
    assert stream.taken == 100_001
    # Within the limit, the same kind of request gets its report.
    small = sample_pdf(1)
    request = AsyncRequestFactory().request(method="POST", path="/api/signing/validate",
                                            _body_file=CountingStream(small),
                                            headers=[(b"content-type", b"application/pdf")])
    answer = views.validate_api(request)
    assert answer.status_code == 200 and b'"signatures": []' in answer.content


def test_the_openapi_documents_describe_the_limits(client):
    csc = json.loads(client.get("/csc/v2/openapi.json").content)
    validation = json.loads(client.get("/api/signing/openapi.json").content)
    for document, prefix in ((csc, "/credentials/"), (csc, "/signatures/")):
        operations = [item["post"] for path, item in document["paths"].items() if path.startswith(prefix)]
        assert operations and all({"413", "429"} <= set(op["responses"]) for op in operations)
        assert "Retry-After" in document["components"]["responses"]["TooManyRequests"]["headers"]
    assert {"400", "413", "415"} <= set(validation["paths"]["/validate"]["post"]["responses"])


def test_validation_is_limited_per_address_on_the_api_and_the_page_until_the_window_passes(client, clock, limits):
    """Validation is open to anyone: one address may check a few documents, then gets 429 (the
    API with Retry-After, the page with a message in the visitor's language) until the window
    passes; another address is not affected."""
    limits(signing_validate_per_ip=(2, 600))
    pdf = sample_pdf(1)
    assert client.post("/api/signing/validate", pdf, content_type="application/pdf").status_code == 200
    page = client.post("/validate/", {"document": SimpleUploadedFile("a.pdf", pdf, "application/pdf")},
                       HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    refused = client.post("/api/signing/validate", pdf, content_type="application/pdf")
    assert refused.status_code == 429 and refused["Retry-After"] == "600"
    assert "Too many documents" in refused.json()["error_description"]
    page = client.post("/validate/", {"document": SimpleUploadedFile("a.pdf", pdf, "application/pdf")},
                       HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 429 and "Too many documents were checked" in page.content.decode()
    other = client.post("/api/signing/validate", pdf, content_type="application/pdf", REMOTE_ADDR="192.0.2.9")
    assert other.status_code == 200
    clock.travel(dt.timedelta(seconds=601))
    assert client.post("/api/signing/validate", pdf, content_type="application/pdf").status_code == 200
