"""Chave's own RFC 3161 time-stamp authority (``/pki/signing/tsa``), as a time-stamp client
sees it over HTTP: granted tokens under the configured policy, with accuracy, the request's
nonce and imprint, certificates only when asked; weak or malformed requests refused with the
RFC 3161 failure the client can act on; bad bodies a 4xx, never a 500."""

from __future__ import annotations

import hashlib
import secrets

import pytest
from asn1crypto import algos, tsp

from chave.signing import pki
from chave.signing.pki import TimeStampResponse

pytestmark = pytest.mark.django_db(transaction=True)


def ask(client, *, algorithm="sha256", digest=None, cert_req=True, policy=None, nonce=None):
    digest = hashlib.new(algorithm, b"a document").digest() if digest is None else digest
    request = {"version": "v1", "message_imprint": tsp.MessageImprint({
        "hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}), "hashed_message": digest}),
        "cert_req": cert_req, "nonce": nonce or secrets.randbits(64)}
    if policy:
        request["req_policy"] = policy
    answer = client.post("/pki/signing/tsa", tsp.TimeStampReq(request).dump(),
                         content_type="application/timestamp-query")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/timestamp-reply"
    return TimeStampResponse.load(answer.content)


def test_a_granted_token_carries_the_policy_accuracy_nonce_and_imprint(client, signing_pki, settings):
    nonce = secrets.randbits(64)
    response = ask(client, algorithm="sha384", nonce=nonce)
    assert response["status"]["status"].native == "granted"
    signed = response["time_stamp_token"]["content"]
    info = signed["encap_content_info"]["content"].parsed
    assert info["policy"].dotted == settings.CHAVE_SIGNING_TSA_POLICY == "0.4.0.2023.1.1"
    assert info["accuracy"]["seconds"].native == 1
    assert info["nonce"].native == nonce
    assert info["message_imprint"]["hashed_message"].native == hashlib.sha384(b"a document").digest()
    # The TSA's certificate and its chain, and the signed attribute naming the TSA's certificate
    # (both encoded once per process and reused: each token must still carry the right ones).
    m = pki.material()
    assert {c.chosen.dump() for c in signed["certificates"]} == {pki.der(c) for c in (m.tsa, *m.chain)}
    attributes = {a["type"].native: a["values"][0] for a in signed["signer_infos"][0]["signed_attrs"]}
    assert attributes["signing_certificate"]["certs"][0]["cert_hash"].native == hashlib.sha1(pki.der(m.tsa)).digest()
    # Serial numbers never repeat.
    serials = {ask(client)["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed[
        "serial_number"].native for _ in range(5)}
    assert len(serials) == 5


def test_certificates_only_when_the_request_asks_for_them(client, signing_pki):
    signed = ask(client, cert_req=False)["time_stamp_token"]["content"]
    assert not signed["certificates"].native


@pytest.mark.parametrize(("kwargs", "failure"), [
    ({"algorithm": "md5"}, "bad_alg"),
    ({"algorithm": "sha1"}, "bad_alg"),
    ({"digest": b"\x01" * 20}, "bad_data_format"),
    ({"policy": "1.3.6.1.4.1.4146.2.2"}, "unaccepted_policy"),
])
def test_weak_or_inconsistent_requests_are_rejected_with_their_failure(client, signing_pki, kwargs, failure):
    response = ask(client, **kwargs)
    assert response["status"]["status"].native == "rejection"
    assert response["status"]["fail_info"].native == {failure}
    assert response["status"]["status_string"].native
    assert not response["time_stamp_token"].native


def test_the_configured_policy_may_be_asked_for(client, signing_pki, settings):
    assert ask(client, policy=settings.CHAVE_SIGNING_TSA_POLICY)["status"]["status"].native == "granted"


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b"not a request", "application/timestamp-query", 400),
    (b"\x30\x03\x02\x01\x01", "application/timestamp-query", 400),
    (b"x", "text/plain", 415),
])
def test_bad_bodies_get_a_4xx(client, signing_pki, body, content_type, status):
    assert client.post("/pki/signing/tsa", body, content_type=content_type).status_code == status
