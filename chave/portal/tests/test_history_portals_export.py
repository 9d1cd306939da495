"""History with "this wasn't me", the portals consented to, and the export of one's data."""

import json
import logging
import re

import pytest

from chave.audit import services as audit
from chave.audit.models import AuditEvent
from chave.federation.models import Consent, SsoSession
from chave.identity.models import Key, KeyStatus
from chave.login.tests.pages import body, says
from chave.oidc.models import Token
from chave.oidc.tests.portal import register_portal
from chave.oidc.tests.signin import redeem, refresh, visit
from chave.portal.models import NotMeReport

from .helpers import EMAIL, PHONE, PIN, client_in, enter_with_card, enter_with_key
from .test_area_pages import notices_to

pytestmark = pytest.mark.django_db(transaction=True)


def _portal_login(client, outbox):
    """A login to a portal in ``client``'s browser (consent given), with its tokens."""
    portal = register_portal()
    trip = visit(client, outbox, portal, channel="sms")
    response = redeem(client, portal, trip.code)
    assert response.status_code == 200, response.content
    return portal, response.json()


# --- History -----------------------------------------------------------------------------------


def test_history_shows_logins_with_portal_method_level_and_outcome(area, key, outbox):
    _portal_login(area, outbox)
    audit.record("pin.attempt", outcome="wrong", citizen=key.citizen, channel="web", ip="198.51.100.7")
    page = body(area.get("/area/history/"))
    logins = re.findall(r'<li id="event-\d+" data-event="login" data-outcome="ok">(.*?)</li>', page, re.S)
    assert logins and "Key, code by SMS" in logins[0] and '<dd class="level">3</dd>' in logins[0]
    assert '<dd class="portal">Chave</dd>' in logins[-1]
    portal_entry = re.search(r'data-event="oidc.authorize".*?</li>', page, re.S).group(0)
    assert "Portal das Finanças (teste)" in portal_entry
    wrong = re.search(r'data-event="pin.attempt" data-outcome="wrong">.*?</li>', page, re.S).group(0)
    assert "PIN typed — not successful" in wrong and '<dd class="outcome">Wrong</dd>' in wrong
    assert '<dd class="place">Not available</dd>' in wrong
    assert 'data-event="code.send"' not in page  # bookkeeping is not shown
    assert page.count('class="not-me"') == page.count('<li id="event-')


@pytest.mark.parametrize("lang, words", [
    ("en", ["Key locked for a while after wrong PINs", "Key recovered with the Citizen Card", "Document signed",
            "Security code typed — not successful", "Wrong code", "On the Chave website", "Today, "]),
    ("pt-pt", ["Chave bloqueada temporariamente após PIN errados", "Chave recuperada com o Cartão de Cidadão",
               "Documento assinado", "Código de segurança introduzido — sem sucesso", "Código errado",
               "No sítio da Chave", "Hoje, "]),
])
def test_history_speaks_the_citizen_s_words_grouped_by_day(area, key, clock, lang, words):
    import datetime as dt

    from django.utils import translation

    from chave import clock as service_clock
    from chave import formats

    clock.travel(-dt.timedelta(days=1))
    audit.record("card.recover", outcome="ok", citizen=key.citizen, channel="web")
    clock.travel(dt.timedelta(days=1))
    audit.record("key.locked", outcome="ok", citizen=key.citizen, channel="web", until="x")
    audit.record("code.verify", outcome="wrong_code", citizen=key.citizen, channel="sms")
    audit.record("signing.sign", outcome="ok", citizen=key.citizen)
    area.cookies["django_language"] = lang
    page = " ".join(body(area.get("/area/history/", HTTP_ACCEPT_LANGUAGE=lang)).split())
    for text in words:
        assert text in page
    # One heading per day, the newest first, the date in words; each event at its time.
    days = re.findall(r'<h2 id="day-\d+" class="history-date">(.*?)</h2>', page)
    with translation.override(lang):
        today, yesterday = formats.day(service_clock.today()), formats.day(service_clock.today() - dt.timedelta(days=1))
        at = formats.clock_time(AuditEvent.objects.filter(event="signing.sign").get().at)
    assert days == [f"{words[-1]}{today}", yesterday]
    assert re.search(r"\d{1,2} (de )?[a-zA-Zç]+ (de )?\d{4}", today)  # "6 December 2026", "6 de dezembro de 2026"
    assert f">{at}</time>" in page
    # A temporary lock is what happened to the key, not a "success"; no internal name shows.
    locked = re.search(r'data-event="key.locked".*?</li>', page, re.S).group(0)
    assert 'class="outcome"' not in locked
    visible = re.sub(r"<[^>]+>", " ", page)
    for raw in ("card.recover", "key.locked", "wrong_code", "signing.sign", "(wrong", " web ", " sms "):
        assert raw not in visible


def test_history_places_come_from_the_configured_ranges(area, key, settings, tmp_path):
    ranges = tmp_path / "ranges.csv"
    ranges.write_text("# network,place\n198.51.100.0/24,\"Porto, PT\"\n198.51.0.0/16,Portugal\nnonsense\n"
                      "2001:db8::/32,Lisboa\n")
    settings.CHAVE_GEOIP_CSV = str(ranges)
    audit.record("pin.attempt", outcome="wrong", citizen=key.citizen, channel="web", ip="198.51.100.7")
    audit.record("pin.attempt", outcome="wrong", citizen=key.citizen, channel="web", ip="198.51.7.7")
    audit.record("pin.attempt", outcome="wrong", citizen=key.citizen, channel="web", ip="2001:db8::1")
    page = body(area.get("/area/history/"))
    assert "Porto, PT" in page and "Portugal" in page and "Lisboa" in page


def test_history_is_paginated(area, key):
    for n in range(45):
        audit.record("pin.attempt", outcome="wrong", citizen=key.citizen, channel="web", ip=f"192.0.2.{n}")
    first = body(area.get("/area/history/"))
    assert first.count('<li id="event-') == 20 and 'rel="next" href="?page=2"' in first
    last = body(area.get("/area/history/?page=3"))
    assert 'rel="prev"' in last and 'rel="next"' not in last
    assert body(area.get("/area/history/?page=nonsense")).count('<li id="event-') == 20
    assert area.get("/area/history/?page=999").status_code == 200


def test_history_shows_only_the_citizen_s_own_events(area, make_citizen):
    other = make_citizen(phone="+351916666666")
    audit.record("pin.attempt", outcome="wrong", citizen=other.citizen, channel="web", ip="203.0.113.99")
    assert "203.0.113.99" not in body(area.get("/area/history/"))


# --- "This wasn't me" --------------------------------------------------------------------------


def test_this_wasnt_me_blocks_the_key_ends_sessions_and_records_the_report(area, key, outbox):
    stranger = client_in("pt-pt")
    enter_with_key(stranger, outbox, identifier=EMAIL, channel="email")
    _portal_login(stranger, outbox)
    strange = AuditEvent.objects.filter(event="login", citizen=key.citizen, channel="email").latest("at")
    page = body(area.get(f"/area/history/{strange.pk}/not-me/"))
    assert 'id="confirm-not-me"' in page
    response = area.post(f"/area/history/{strange.pk}/not-me/")
    assert response.status_code == 200
    assert 'id="next-steps"' in body(response) and 'href="/card/recover/"' in body(response)
    assert Key.objects.get(pk=key.pk).status == KeyStatus.BLOCKED
    report = NotMeReport.objects.get(event=strange)
    assert report.blocked_key and report.sessions_ended == 2
    assert AuditEvent.objects.filter(event="area.not_me", citizen=key.citizen).count() == 1
    assert AuditEvent.objects.filter(event="key.blocked", citizen=key.citizen, detail__by="citizen_report").exists()
    for browser in (area, stranger):
        assert browser.get("/area/")["Location"].startswith("/area/enter/")
    assert not SsoSession.objects.filter(key=key, ended_at__isnull=True).exists()
    assert not Token.objects.filter(key=key, revoked_at__isnull=True).exists()
    assert notices_to(outbox, PHONE, "key_reported") == 1 and notices_to(outbox, EMAIL, "key_reported") == 1
    # The key cannot sign in any more (the same words as a wrong PIN for the login page).
    assert client_in("en").post("/login/", {"identifier": PHONE, "pin": PIN}).status_code == 400


def _reported_by_card(key):
    """A browser entered with the Citizen Card that reported the latest event, entered again."""
    client = client_in("en")
    enter_with_card(client, key)
    event = AuditEvent.objects.filter(citizen=key.citizen).latest("at")
    client.post(f"/area/history/{event.pk}/not-me/")
    enter_with_card(client, key)
    return client, event


def test_a_second_report_changes_nothing(key, outbox):
    client, event = _reported_by_card(key)
    page = body(client.get(f"/area/history/{event.pk}/not-me/"))
    assert 'id="already"' in page and 'id="confirm-not-me"' not in page
    client.post(f"/area/history/{event.pk}/not-me/")
    assert NotMeReport.objects.count() == 1
    assert AuditEvent.objects.filter(event="area.not_me").count() == 1
    another = AuditEvent.objects.filter(citizen=key.citizen, event="login").first() or \
        AuditEvent.objects.filter(citizen=key.citizen).exclude(pk=event.pk).first()
    client.post(f"/area/history/{another.pk}/not-me/")
    assert NotMeReport.objects.get(event=another).blocked_key is False  # blocked already


def test_someone_else_s_event_cannot_be_reported(area, make_citizen):
    other = make_citizen(phone="+351916666666")
    event = audit.record("login", outcome="ok", citizen=other.citizen, channel="sms")
    assert area.post(f"/area/history/{event.pk}/not-me/").status_code == 404
    assert area.get("/area/history/99999999/not-me/").status_code == 404
    assert Key.objects.get(pk=other.pk).status == KeyStatus.ACTIVE


# --- Portals -----------------------------------------------------------------------------------


def test_portals_list_what_is_shared_and_revoking_ends_the_tokens(area, key, outbox):
    portal, tokens = _portal_login(area, outbox)
    page = body(area.get("/area/portals/"))
    entry = re.search(rf'<li id="portal-{portal.client_id}">.*?</li>', page, re.S).group(0)
    assert "Portal das Finanças (teste)" in entry and says("Full name") in entry
    response = area.post(f"/area/portals/{portal.client_id}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/area/portals/"
    assert not Consent.objects.filter(citizen=key.citizen).exists()
    assert refresh(client_in(), portal, tokens["refresh_token"]).status_code == 400
    assert 'id="no-portals"' in body(area.get("/area/portals/"))
    # Replayed, or a portal the citizen never consented to: nothing to revoke.
    again = area.post(f"/area/portals/{portal.client_id}/revoke/")
    assert again.status_code == 302
    assert AuditEvent.objects.filter(event="oidc.consent", outcome="revoked").count() == 1


def test_revoke_is_post_only(area, key, outbox):
    portal, _ = _portal_login(area, outbox)
    assert area.get(f"/area/portals/{portal.client_id}/revoke/").status_code == 405
    assert Consent.objects.filter(citizen=key.citizen).exists()


# --- Export ------------------------------------------------------------------------------------


def test_export_is_a_json_file_of_everything_without_secrets(area, key, outbox, caplog):
    caplog.set_level(logging.DEBUG)
    portal, _ = _portal_login(area, outbox)
    event = AuditEvent.objects.filter(citizen=key.citizen, event="login").first()
    other = client_in("en")
    enter_with_card(other, key)
    assert area.get("/area/export/").status_code == 200
    response = area.post("/area/export/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert re.fullmatch(r'attachment; filename="chave-my-data-\d{8}-\d{6}\.json"', response["Content-Disposition"])
    data = json.loads(response.content)
    assert data["citizen"]["full_name"] == "Maria Teste Silva"
    assert {c["value"] for c in data["keys"][0]["contacts"]} == {PHONE, EMAIL}
    assert data["consents"][0]["portal"] == "Portal das Finanças (teste)"
    assert "NomeCompleto" in data["consents"][0]["shared"]
    assert any(e["event"] == "login" for e in data["history"])
    assert data["keys"][0]["sessions"] and data["keys"][0]["portal_sessions"]
    assert data["messages"] and all("••••••" in m["text"] for m in data["messages"] if m["kind"] == "code")
    text = response.content.decode()
    fresh = Key.objects.get(pk=key.pk)
    assert fresh.pin_hash not in text and "argon2" not in text and "pin_hash" not in text
    assert "code_hash" not in text and "session_key" not in text
    for row in fresh.codes.all():
        assert row.code_hash not in text
    assert not re.search(r"#\d{6}", text)
    assert AuditEvent.objects.filter(event="area.export", citizen=key.citizen).exists()
    assert event is not None


def test_export_includes_reports(key, outbox):
    client, event = _reported_by_card(key)
    data = json.loads(client.post("/area/export/").content)
    assert data["reports"][0]["event"] == event.event and data["reports"][0]["blocked_key"] is True


def test_a_citizen_card_entry_is_in_the_history_at_level_4(key):
    client = client_in("en")
    enter_with_card(client, key)
    page = body(client.get("/area/history/"))
    card = re.search(r'data-event="login" data-outcome="ok">.*?</li>', page, re.S).group(0)
    assert '<dd class="method">Citizen Card</dd>' in card and '<dd class="level">4</dd>' in card
    assert "assurance level 4" in body(client.get("/area/"))
