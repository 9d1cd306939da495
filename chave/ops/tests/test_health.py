"""/health/live and /health/ready as a load balancer and an on-call operator see them."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import CommandError, call_command

from chave.delivery import services as delivery

pytestmark = pytest.mark.django_db


def ready(client):
    response = client.get("/health/ready")
    assert response["Content-Type"] == "application/json" and "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def test_live_answers_without_touching_anything(client):
    response = client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert not response.cookies  # no session, no CSRF cookie
    assert client.post("/health/live").status_code == 405


def test_ready_when_every_component_answers(client, signing_pki):
    code, answer = ready(client)
    assert code == 200 and answer["status"] == "ok"
    assert {name: check["ok"] for name, check in answer["checks"].items()} == {
        "database": True, "cache": True, "delivery": True, "signing": True, "pin_pepper": True}
    assert answer["checks"]["delivery"] == {"ok": True, "waiting": 0, "lag_seconds": 0}


def test_a_worker_that_fell_behind_is_degraded_not_unavailable(client, signing_pki, clock):
    delivery.queue_message(channel="sms", destination="+351912000099", body="x", redacted="x")
    code, answer = ready(client)
    assert answer["status"] == "ok" and answer["checks"]["delivery"]["waiting"] == 1
    clock.travel(dt.timedelta(minutes=6))  # nobody ran the worker
    code, answer = ready(client)
    assert code == 200 and answer["status"] == "degraded"
    assert answer["checks"]["delivery"]["ok"] is False and answer["checks"]["delivery"]["lag_seconds"] > 300


def test_a_signing_key_missing_from_the_hsm_is_degraded_and_the_reason_stays_in_the_log(client, signing_pki,
                                                                                        settings, caplog):
    settings.CHAVE_SIGNING_CA_KEY_LABEL = "not-in-this-hsm"
    code, answer = ready(client)
    assert code == 200 and answer["status"] == "degraded" and answer["checks"]["signing"] == {"ok": False}
    assert "not-in-this-hsm" not in json.dumps(answer)
    assert "not-in-this-hsm" in caplog.text


def test_an_unreachable_redis_is_degraded_not_unavailable(client, signing_pki, settings):
    """Every instance shares the one Redis: without it the throttles count in the database, so the
    instances stay in rotation and the operators see why (the private-Redis test: ``test_redis_down``)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens there
    code, answer = ready(client)
    assert code == 200 and answer["status"] == "degraded"
    assert answer["checks"]["redis"] == {"ok": False, "throttles": "database"} and "cache" not in answer["checks"]
    assert answer["checks"]["database"]["ok"] is True


def test_the_command_prints_the_same_checks_and_fails_when_asked_to_be_strict(signing_pki, settings, capsys):
    call_command("health")
    assert json.loads(capsys.readouterr().out)["status"] == "ok"
    settings.CHAVE_SIGNING_CA_KEY_LABEL = "not-in-this-hsm"
    call_command("health")  # degraded is still ready
    assert json.loads(capsys.readouterr().out)["status"] == "degraded"
    with pytest.raises(CommandError, match="not ready: degraded"):
        call_command("health", "--strict")


def test_readiness_answers_only_the_operators_networks(client, settings):
    assert client.get("/health/ready", REMOTE_ADDR="203.0.113.9").status_code == 404
    settings.CHAVE_HEALTH_NETWORKS = ["203.0.113.0/24"]
    assert client.get("/health/ready", REMOTE_ADDR="203.0.113.9").status_code in (200, 503)
    assert client.get("/health/ready").status_code == 404  # 127.0.0.1 is no longer listed
    settings.CHAVE_TRUSTED_PROXIES = 1  # behind the load balancer: the address it saw counts
    assert client.get("/health/ready", HTTP_X_FORWARDED_FOR="203.0.113.50").status_code in (200, 503)
    assert client.get("/health/ready", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 404
    assert client.get("/health/live", REMOTE_ADDR="198.51.100.7").status_code == 200


def metrics(client) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/health/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


def test_metrics_count_what_happened_recently_across_instances(client, signing_pki, make_citizen, clock):
    from chave.identity import services as identity

    key = make_citizen(phone="+351912000077")
    for _ in range(2):
        identity.check_login_pin(key, "9071")  # wrong PINs, as an attack would make
    delivery.queue_message(channel="sms", destination="+351912000077", body="x", redacted="x")
    seen = metrics(client)
    assert seen[("chave_events_recent", (("event", "pin.attempt"), ("outcome", "wrong")))] == 2
    assert seen[("chave_delivery_messages", (("status", "queued"),))] >= 1
    assert seen[("chave_tasks_ready", ())] >= 1
    assert seen[("chave_ready", (("check", "database"),))] == 1
    clock.travel(dt.timedelta(minutes=10))  # out of the window
    assert ("chave_events_recent", (("event", "pin.attempt"), ("outcome", "wrong"))) not in metrics(client)
    assert client.get("/health/metrics", REMOTE_ADDR="198.51.100.7").status_code == 404


def test_a_pin_pepper_key_missing_from_the_hsm_takes_the_instance_out_of_rotation(client, signing_pki, settings):
    """No PIN can be checked without it: the load balancer should send logins elsewhere."""
    settings.IS_PRODUCTION = True  # production never makes the key by itself
    settings.CHAVE_PIN_PEPPER_KEY_LABEL = "no-such-pepper-key"
    code, answer = ready(client)
    assert code == 503 and answer["status"] == "unavailable"
    assert answer["checks"]["pin_pepper"] == {"ok": False} and answer["checks"]["database"]["ok"] is True
    assert "no-such-pepper-key" not in json.dumps(answer)
