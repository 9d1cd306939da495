"""Redis down (issue 17), as operators and the relying parties of the signing PKI see it: a private
redis-server holds the cache and the throttles and is killed. ``/health/ready`` says Redis is down
and where the throttles count meanwhile, without taking the instance out of rotation; the signing
CA's CRL is still served (signed for the request) instead of a 500; once Redis is back, all is as before.
"""

from __future__ import annotations

import pytest
from cryptography import x509

from chave.signing import pki
from chave.testing.faults import PrivateRedis
from chave.throttle import services as throttle

pytestmark = [pytest.mark.django_db, pytest.mark.faults]


@pytest.fixture
def redis_server(settings):
    server = PrivateRedis()
    server.start()
    settings.CHAVE_REDIS_URL, settings.CHAVE_THROTTLE_STORE = server.url, "redis"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": server.url,
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    throttle._redis.cache_clear()
    throttle._outage.update(until=0.0, announced=0.0)
    yield server
    throttle._redis.cache_clear()
    throttle._outage.update(until=0.0, announced=0.0)
    server.close()


def ready(client) -> tuple[int, dict]:
    response = client.get("/health/ready")
    return response.status_code, response.json()


def crl(client) -> x509.CertificateRevocationList:
    response = client.get("/pki/signing/ca.crl")
    assert response.status_code == 200, response.content[:200]
    listed = x509.load_der_x509_crl(response.content)
    assert listed.is_signature_valid(pki.material().ca.public_key())
    return listed


def test_health_reports_redis_and_the_crl_is_served_while_it_is_down(client, signing_pki, redis_server, caplog):
    code, answer = ready(client)
    assert code == 200 and answer["status"] == "ok"
    assert answer["checks"]["redis"] == {"ok": True, "throttles": "redis"}
    crl(client)  # signed once, kept in Redis

    redis_server.stop()
    code, answer = ready(client)
    assert code == 200 and answer["status"] == "degraded"  # still in rotation: nothing depends on Redis alone
    assert answer["checks"]["redis"] == {"ok": False, "throttles": "database"}
    assert answer["checks"]["database"]["ok"] is True
    assert crl(client).issuer == pki.material().ca.subject  # not a 500: a CRL signed for this request
    assert "signing CRL: the cache is unreachable" in caplog.text
    metrics = client.get("/health/metrics").content.decode()
    assert 'chave_ready{check="redis"} 0.0' in metrics

    redis_server.start()
    code, answer = ready(client)
    assert code == 200 and answer["status"] == "ok" and answer["checks"]["redis"]["ok"] is True
    crl(client)
