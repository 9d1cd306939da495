"""The registry in Django's admin, as staff use it: list, filter, search, approve and suspend with
a reason, the decision history; no secret shown and no way around the services."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import translation

from chave.audit.models import AuditEvent
from chave.federation import services as federation
from chave.federation.models import RelyingParty

from chave.oidc.tests.test_registry import register

pytestmark = pytest.mark.django_db

LIST = "/admin/federation/relyingparty/"


def admin_account(client, *, admin=True, username="ana.staff", prepare=None, role="rp-admin"):
    """A staff account (``chave staff add --admin``) signed in through the counter's sign-in;
    ``prepare(user)`` may change the account first."""
    import pyotp

    from chave import clock
    from chave.counter import services as counter

    new = counter.create_staff(username=username, name="Staff " + username, role=role, admin=admin)
    if prepare:
        prepare(new.staff.user)
    answer = client.post("/counter/login", {"username": username, "password": new.password,
                                            "code": pyotp.parse_uri(new.provisioning_uri).at(clock.now())})
    assert answer.status_code == 302
    return client


@pytest.fixture
def staff(client):
    return admin_account(client)


def test_the_admin_is_entered_only_through_the_counter_sign_in(client, clock):
    import datetime as dt

    answer = client.get(LIST)
    assert answer.status_code == 302 and answer["Location"].startswith("/admin/login/")
    login_page = client.get(answer["Location"])  # Django's own login page is never shown
    assert login_page.status_code == 302 and login_page["Location"].startswith("/counter/login?next=")
    # A superuser's password alone opens nothing: the second factor is the counter's.
    User.objects.create_superuser("root", "root@chave.example", "a-long-password-123")
    assert client.post("/admin/login/", {"username": "root", "password": "a-long-password-123"}).status_code == 302
    client.force_login(User.objects.get(username="root"))
    assert client.get(LIST).status_code == 302
    client.logout()
    admin_account(client)
    assert client.get(LIST).status_code == 200
    clock.travel(dt.timedelta(minutes=11))  # the staff session went idle
    assert client.get(LIST).status_code == 302


def test_a_counter_account_without_the_admin_flag_stays_out(client):
    admin_account(client, admin=False)
    assert client.get(LIST).status_code == 302


def party(name="Portal da Saúde", **extra) -> RelyingParty:
    return register(name=name, **extra).relying_party


def page(client, url, **params) -> str:
    with translation.override("en"):
        response = client.get(url, params, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def run_action(client, action, parties, **extra):
    data = {"action": action, "_selected_action": [p.pk for p in parties], **extra}
    return client.post(LIST, data, HTTP_ACCEPT_LANGUAGE="en")


def test_staff_list_filter_and_search_the_parties(staff):
    health = party("Portal da Saúde")
    tax = party("Portal das Finanças", redirect_uris=["https://financas.gov.pt/cb"])
    federation.decide(tax, "approve", by="setup")
    listing = page(staff, LIST)
    assert health.client_id in listing and tax.client_id in listing
    approved = page(staff, LIST, state__exact="approved")
    assert tax.client_id in approved and health.client_id not in approved
    found = page(staff, LIST, q="Saúde")
    assert health.client_id in found and tax.client_id not in found
    assert tax.client_id in page(staff, LIST, q=tax.client_id) and health.client_id not in page(staff, LIST, q=tax.client_id)


def test_approving_asks_for_a_reason_then_decides_through_the_service(staff, clock):
    requested = party()
    asked = run_action(staff, "approve", [requested])
    assert asked.status_code == 200
    body = asked.content.decode()
    assert "Reason" in body and requested.client_id in body
    requested.refresh_from_db()
    assert requested.state == "requested"  # nothing happens before the reason is given

    empty = run_action(staff, "approve", [requested], apply="yes", reason="")
    assert empty.status_code == 200 and "This field is required" in empty.content.decode()
    requested.refresh_from_db()
    assert requested.state == "requested"

    done = run_action(staff, "approve", [requested], apply="yes", reason="Protocol signed on 2 Dec")
    assert done.status_code == 302
    requested.refresh_from_db()
    assert requested.state == "approved"
    event = requested.events.first()
    assert (event.action, event.by, event.reason, event.at) == ("approved", "ana.staff", "Protocol signed on 2 Dec",
                                                                 clock.now())
    assert AuditEvent.objects.filter(event="rp.approved", detail__by="ana.staff",
                                     detail__client_id=requested.client_id).count() == 1
    assert "1 portal changed." in page(staff, LIST)


def test_suspending_and_reinstating_from_the_admin(staff):
    target = party()
    federation.decide(target, "approve", by="setup")
    run_action(staff, "suspend", [target], apply="yes", reason="Leaked key")
    target.refresh_from_db()
    assert target.state == "suspended"
    run_action(staff, "approve", [target], apply="yes", reason="Keys replaced")
    target.refresh_from_db()
    assert target.state == "approved"
    assert list(target.events.order_by("at", "id").values_list("action", "by")) == [
        ("requested", "operator"), ("approved", "setup"), ("suspended", "ana.staff"), ("reinstated", "ana.staff")]


def test_an_illegal_move_is_reported_per_party_and_the_others_proceed(staff):
    requested, approved = party("Portal A"), party("Portal B", redirect_uris=["https://b.gov.pt/cb"])
    federation.decide(approved, "approve", by="setup")
    response = run_action(staff, "suspend", [requested, approved], apply="yes", reason="Audit finding")
    assert response.status_code == 302
    requested.refresh_from_db(), approved.refresh_from_db()
    assert (requested.state, approved.state) == ("requested", "suspended")
    messages = page(staff, LIST)
    assert "Portal A" in messages and "still awaiting approval" in messages and "1 portal changed." in messages
    assert requested.events.count() == 1


def test_the_party_page_shows_the_history_and_no_secret(staff):
    registration = register(auth_method="client_secret_basic", jwks=None)
    target = registration.relying_party
    federation.decide(target, "approve", by="setup", reason="Protocol 7/2026")
    body = page(staff, f"{LIST}{target.pk}/change/")
    assert "Protocol 7/2026" in body and "setup" in body and "https://saude.gov.pt/cb" in body
    assert registration.client_secret not in body
    assert target.client_secret_hash not in body
    assert "client_secret_hash" not in body and "secret hash" not in body.lower()
    # Read-only: no save, no delete, no adding parties past the service.
    assert 'name="_save"' not in body
    assert staff.get(f"{LIST}add/").status_code == 403
    assert staff.get(f"{LIST}{target.pk}/delete/").status_code == 403
    assert staff.post(f"{LIST}{target.pk}/change/", {"name": "Renamed", "state": "suspended"}).status_code == 403
    target.refresh_from_db()
    assert (target.name, target.state) == ("Portal da Saúde", "approved")


def test_staff_who_may_only_view_cannot_decide(client):
    admin_account(client, username="rui.viewer", role="auditor")  # the auditor reads portals, decides nothing
    target = party()
    listing = page(client, LIST)
    assert target.client_id in listing and 'value="approve"' not in listing
    response = run_action(client, "approve", [target], apply="yes", reason="sneaky")
    assert response.status_code in (200, 302)
    target.refresh_from_db()
    assert target.state == "requested" and target.events.count() == 1
