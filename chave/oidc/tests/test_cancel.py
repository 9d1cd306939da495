""""Cancel and go back to the portal" on the sign-in pages of a portal's request: the portal gets
``access_denied`` with its ``state`` and the issuer, as for a refused consent."""

import re

import pytest
from django.test import Client

from chave import clock
from chave.audit.models import AuditEvent
from chave.login.models import LoginTransaction
from chave.login.tests.pages import says, speak

from .portal import query_of, register_portal
from .signin import PHONE, PIN, renew, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def citizen(make_citizen):
    return make_citizen(phone=PHONE, email="maria@example.pt")


def csrf_browser() -> Client:
    return Client(enforce_csrf_checks=True)  # as a real browser: the form's token is needed


def token_of(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def cancel_form(page: str) -> str:
    found = re.search(r'<form method="post" action="([^"]+)" class="cancel-to-portal"', page)
    assert found, "no cancel button on the page"
    return found.group(1)


def reference(page: str) -> str:
    """The request the page's cancel form names."""
    return re.search(r'<input type="hidden" name="request" value="([0-9a-f]+)">', page).group(1)


def cancel(client, url: str = "/login/"):
    """Press the cancel button of the page at ``url``."""
    return client.post("/oidc/cancel", {"request": reference(client.get(url).content.decode())})


def test_cancel_on_the_login_page_sends_access_denied_with_state_and_iss(citizen):
    portal = register_portal(name="Portal das Finanças")
    browser = csrf_browser()
    speak(browser, "pt-pt")
    response = browser.get(renew(portal).authorize_url())
    assert response["Location"].endswith("/login/")
    page = browser.get("/login/").content.decode()
    assert cancel_form(page) == "/oidc/cancel"
    assert "Cancelar e voltar ao serviço Portal das Finanças" in page

    for other in ("/card/", "/login/app/"):  # the other ways to sign in offer it too
        assert cancel_form(browser.get(other).content.decode()) == "/oidc/cancel", other
    assert browser.post("/oidc/cancel").status_code == 403  # CSRF: no token, nothing happens
    response = browser.post("/oidc/cancel", {"csrfmiddlewaretoken": token_of(page), "request": reference(page)})
    assert response.status_code == 302 and response["Location"].startswith(portal.redirect_uri)
    params = query_of(response["Location"])
    assert params["error"] == "access_denied" and params["state"] == portal.state
    assert params["iss"] == "http://127.0.0.1:8000" and "code" not in params
    assert params["error_description"] == "The citizen cancelled the sign-in."
    event = AuditEvent.objects.get(event="oidc.authorize")
    assert (event.outcome, event.citizen_id, event.detail["client_id"]) == ("abandoned", None, portal.client_id)
    # The request is over: the login page is Chave's own again, with no button to a portal.
    page = browser.get("/login/").content.decode()
    assert "cancel-to-portal" not in page and "Portal das Finanças" not in page


def test_cancel_after_the_pin_ends_the_login_and_names_the_citizen(client, outbox, citizen):
    portal = register_portal()
    client.get(renew(portal).authorize_url())
    response = client.post("/login/", {"identifier": PHONE, "pin": PIN})
    assert response.status_code == 302  # on to the code (or the channel) page
    page = client.get(response["Location"], follow=True).content.decode()
    assert cancel_form(page) == "/oidc/cancel"
    response = client.post("/oidc/cancel", {"request": reference(page)})
    params = query_of(response["Location"])
    assert params["error"] == "access_denied" and params["state"] == portal.state
    assert LoginTransaction.objects.get().expires_at <= clock.now()
    assert client.get("/login/code/")["Location"].endswith("/login/")  # the login cannot go on
    assert AuditEvent.objects.get(event="oidc.authorize").citizen_id == citizen.citizen_id


def test_cancel_with_form_post_posts_the_error_to_the_portal(client, citizen):
    portal = register_portal()
    client.get(renew(portal).authorize_url(response_mode="form_post"))
    response = cancel(client)
    assert response.status_code == 200
    page = response.content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    assert fields["error"] == "access_denied" and fields["state"] == portal.state and fields["iss"]
    assert f'action="{portal.redirect_uri}"' in page


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_a_cancel_with_no_request_waiting_is_a_clear_page(client, citizen, lang):
    speak(client, lang)
    response = client.post("/oidc/cancel")
    assert response.status_code == 400
    assert says("This sign-in has already ended", lang) in response.content.decode()
    # Cancelled twice (a second tab): the second finds nothing, and says so.
    portal = register_portal()
    client.get(renew(portal).authorize_url())
    page = client.get("/login/").content.decode()
    assert client.post("/oidc/cancel", {"request": reference(page)}).status_code == 302
    again = client.post("/oidc/cancel", {"request": reference(page)})
    assert again.status_code == 400 and 'id="cancel-gone"' in again.content.decode()
    assert client.get("/oidc/cancel").status_code == 405


def test_a_signed_in_citizen_who_cancels_a_step_up_stays_signed_in(client, outbox, citizen):
    sign_in(client, outbox, channel="email")  # level 2
    portal = register_portal(min_level=3)
    response = client.get(renew(portal).authorize_url())
    assert response["Location"].endswith("/login/")
    response = cancel(client)
    assert query_of(response["Location"])["error"] == "access_denied"
    assert client.get("/area/").status_code == 200  # Chave's own session is untouched


def test_a_page_left_open_cannot_cancel_a_newer_request(client, citizen):
    first, second = register_portal(name="Primeiro portal"), register_portal(name="Segundo portal")
    client.get(renew(first).authorize_url())
    stale = client.get("/login/").content.decode()
    client.get(renew(second).authorize_url())  # another tab: a newer request, of another portal
    refused = client.post("/oidc/cancel", {"request": reference(stale)})
    assert refused.status_code == 400 and 'id="cancel-gone"' in refused.content.decode()
    assert not AuditEvent.objects.filter(event="oidc.authorize").exists()
    page = client.get("/login/").content.decode()
    assert "Segundo portal" in page  # the newer request goes on, and its own button answers it
    response = client.post("/oidc/cancel", {"request": reference(page)})
    assert response["Location"].startswith(second.redirect_uri)
    assert query_of(response["Location"])["state"] == second.state
