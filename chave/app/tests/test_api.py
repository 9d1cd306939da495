"""The app API as a native app and an attacker meet it: the OpenAPI 3.1 document is valid and the
answers match it; unsigned, wrongly signed, replayed, late, tampered and oversized calls get a
4xx JSON error, never a 500; bad signatures are throttled per address."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from django.test import Client

from chave.login.tests.pages import says
from chave.testing.device import ApiRefused, Device, DjangoTransport

from .helpers import pairing_code

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENT = json.loads((Path(__file__).resolve().parents[1] / "openapi.json").read_text())


def conforms(data, schema_name: str) -> None:
    jsonschema.validate(data, {"$ref": f"#/components/schemas/{schema_name}", "components": DOCUMENT["components"]},
                        cls=jsonschema.Draft202012Validator)


def test_the_openapi_document_is_valid_and_served(client):
    from openapi_spec_validator import validate

    served = client.get("/app/api/openapi.json")
    assert served.status_code == 200 and served["Content-Type"] == "application/json"
    document = json.loads(served.content)
    validate(document)
    assert document["openapi"].startswith("3.1")
    # Every URL of the API is in the document, and nothing else.
    from chave.app import api_urls

    paths = {"/" + str(p.pattern).replace("<uuid:", "{").replace(">", "}") for p in api_urls.urlpatterns
             if p.name != "not_found"}
    assert paths - {"/openapi.json"} == set(document["paths"])


def test_answers_match_the_document(area, outbox, new_device, clock):
    device = new_device()
    conforms(device.config(), "Config")
    paired = device.pair(pairing_code(area), name="Telemóvel")
    conforms(paired.data, "Pairing")
    confirmed = device.confirm(outbox.last_code("+351912345678"))
    conforms(confirmed.data, "Confirmed")
    conforms(device.info(), "Device")
    conforms(device.settings(offline_period=60), "Device")
    conforms(device.inbox(), "Inbox")
    with pytest.raises(ApiRefused) as refused:
        device.settings(offline_period=7)
    conforms(refused.value.answer.data, "Error")
    assert "chave-time" in refused.value.answer.headers


@pytest.fixture
def device(paired):
    return paired


def _raw(device, method, path, body=b"", **headers):
    return device.transport.send(method, path, body, headers)


def test_unsigned_calls_are_refused_with_json(device):
    answer = _raw(device, "GET", "/app/api/inbox")
    assert answer.status == 401 and answer.data["error"] == "unknown_device"
    answer = _raw(device, "GET", "/app/api/inbox", **{"Chave-Device": device.device_id})
    assert answer.status == 401 and answer.data["error"] == "unsigned"


def test_a_signature_must_cover_this_very_call(device):
    body = json.dumps({"offline_period": 60}).encode()
    headers = device.headers("POST", "/app/api/device/settings", body)
    # The body changed after signing.
    tampered = _raw(device, "POST", "/app/api/device/settings", json.dumps({"offline_period": 300}).encode(), **headers)
    assert tampered.status == 401 and tampered.data["error"] == "bad_signature"
    # Another path.
    moved = _raw(device, "POST", "/app/api/device/remove", body, **device.headers("POST", "/app/api/device/settings",
                                                                                  body))
    assert moved.status == 401
    # The right call goes through once; the same call again is a replay.
    assert _raw(device, "POST", "/app/api/device/settings", body, **headers).status == 200
    replay = _raw(device, "POST", "/app/api/device/settings", body, **headers)
    assert replay.status == 401 and replay.data["error"] == "replayed"


def test_another_key_cannot_speak_for_a_device(device, new_device):
    intruder = new_device()
    intruder.device_id = device.device_id  # knows the id, not the key
    with pytest.raises(ApiRefused) as refused:
        intruder.inbox()
    assert refused.value.status == 401 and refused.value.error == "bad_signature"


def test_a_late_or_early_signature_is_refused(device, clock):
    import datetime as dt

    late = device.headers("GET", "/app/api/inbox", b"", timestamp=int(clock.now().timestamp()) - 301)
    answer = _raw(device, "GET", "/app/api/inbox", **late)
    assert answer.status == 401 and answer.data["error"] == "clock_skew"
    early = device.headers("GET", "/app/api/inbox", b"", timestamp=int((clock.now() + dt.timedelta(seconds=301))
                                                                        .timestamp()))
    assert _raw(device, "GET", "/app/api/inbox", **early).status == 401


@pytest.mark.parametrize("headers", [
    {"Chave-Device": "not-a-uuid", "Chave-Timestamp": "1", "Chave-Nonce": "x" * 20, "Chave-Signature": "AAAA"},
    {"Chave-Device": "00000000-0000-0000-0000-000000000000", "Chave-Timestamp": "9" * 40, "Chave-Nonce": "x",
     "Chave-Signature": "%%%"},
    {"Chave-Device": "x" * 5000, "Chave-Timestamp": "²³", "Chave-Nonce": "\x00" * 20, "Chave-Signature": "A" * 5000},
])
def test_malformed_signature_headers_are_4xx(device, headers):
    answer = _raw(device, "GET", "/app/api/inbox", **headers)
    assert 400 <= answer.status < 500 and answer.data["error"]


def test_malformed_bodies_are_4xx(device):
    for raw in (b"[]", b"null", b"{", b"\xff\xfe", b'{"a": "\\u0000"}', b"[" * 10_000):
        answer = device.call("POST", "/app/api/device/settings", raw=raw, check=False)
        assert answer.status == 400 and answer.data["error"] == "invalid_json", raw[:10]
    big = device.call("POST", "/app/api/device/settings", raw=b'{"name": "' + b"x" * 70_000 + b'"}', check=False)
    assert big.status == 413


def test_an_unknown_call_is_a_json_404(client):
    response = client.post("/app/api/no/such/call", b"{}", content_type="application/json")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_wrong_methods_are_405_json(device):
    answer = device.call("GET", "/app/api/device/settings", check=False)
    assert answer.status == 405 and answer.data["error"] == "method_not_allowed"


def test_bad_signatures_are_throttled_per_address(device, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "app_bad_signature_per_ip": (3, 600)}}
    for _ in range(3):
        assert _raw(device, "GET", "/app/api/inbox", **{"Chave-Device": device.device_id}).status == 401
    answer = _raw(device, "GET", "/app/api/inbox", **{"Chave-Device": device.device_id})
    assert answer.status == 429 and "retry-after" in answer.headers
    # Even a good signature from that address waits.
    with pytest.raises(ApiRefused) as refused:
        device.inbox()
    assert refused.value.status == 429
    # Another address is not affected.
    other = Device(DjangoTransport(Client(), REMOTE_ADDR="198.51.100.9"), private_key=device.private_key)
    other.device_id, other.clock_offset = device.device_id, device.clock_offset
    assert other.inbox()["codes"] == []


def test_refusals_speak_the_callers_language(area, new_device):
    device = new_device(language="pt-pt")
    with pytest.raises(ApiRefused) as refused:
        device.pair("ZZZZ2222")
    assert refused.value.answer["message"] == says(
        "This pairing code is not valid: it may have expired or been used. Ask for a new one in the personal area.",
        "pt-pt")
    assert "código" in refused.value.answer["message"]
