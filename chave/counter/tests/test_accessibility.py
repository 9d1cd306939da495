"""What assistive technology finds on the counter's pages, in both languages, for each role: the
clerk's desk (find, a citizen with letters and actions, register), the supervisor's report, the mail
room's letters, the rp administrator's portals; also the refusals shown on the way: one <h1> and
headings in order, landmarks and the skip link, labelled fields, named buttons, unique ids and the
page language (``chave.testing.accessibility``). The sign-in pages are checked with the public
pages (``chave/public/tests/test_accessibility.py``)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client

from chave.counter import letters, services
from chave.federation.models import RelyingParty
from chave.identity import services as identity
from chave.testing.accessibility import assert_accessible

from .screen import choose_pin, type_code
from .test_desk import presented
from .test_letters import ask_new_pin
from .test_registration import EMAIL, PHONE, PIN, portuguese, register
from .test_rp_admin import REQUEST

# The worker makes the letter; the same on any database: SQLite pass only.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.once]
NIC = "12345678"


@pytest.fixture
def desk_day(make_staff, make_citizen, staff_client, run_worker):
    """A day at the counter: a key unlocked, then a new PIN sent by letter for it (made and put in
    a batch by the mail room) and a second letter queued; another key blocked; a portal's request
    recorded. Returns the ids the pages' paths name (the staff client is signed out)."""
    key = make_citizen(nic=NIC, phone="+351912000111", email="rita@example.pt")
    identity.block_key(key, by="test")
    key.refresh_from_db()
    clerk = make_staff("clerk")
    services.unlock(clerk.staff, key, services.Presented("cc", "PT", NIC, "Citizen identified with their card"))
    desk = staff_client("clerk")
    assert ask_new_pin(desk, key, NIC).status_code == 302
    run_worker()
    letters.make_batch(make_staff("mailroom", counter="").staff)
    ask_new_pin(desk, key, NIC)  # a second letter, still queued
    assert staff_client("rp-admin", counter="").post("/counter/rp/request", REQUEST).status_code == 200
    blocked = make_citizen(nic="23456789", phone="+351912000222")
    identity.block_key(blocked, by="test")
    desk.logout()
    return {"citizen": key.citizen.pk, "blocked": blocked.citizen.pk,
            "portal": RelyingParty.objects.get().client_id}


# Each page: who asks, how (method, path formatted with ``desk_day``, data), the status.
PAGES = {
    "find": ("clerk", "get", "/counter/find/", {}, 200),
    "find, found": ("clerk", "post", "/counter/find/", {"q": NIC}, 200),
    "find, nobody": ("clerk", "post", "/counter/find/", {"q": "87654321"}, 200),
    "citizen": ("clerk", "get", "/counter/citizen/{citizen}/", {}, 200),
    "citizen, blocked": ("clerk", "get", "/counter/citizen/{blocked}/", {}, 200),
    "citizen, unlock refused": ("clerk", "post", "/counter/citizen/{blocked}/unlock",
                                presented("unlock", "23456789", **{"unlock-reason": "because"}), 400),
    "unlock": ("clerk", "get", "/counter/citizen/{blocked}/unlock", {}, 200),
    "new PIN": ("clerk", "get", "/counter/citizen/{citizen}/new-pin", {}, 200),
    "contact": ("clerk", "get", "/counter/citizen/{citizen}/contact", {}, 200),
    "cancel": ("clerk", "get", "/counter/citizen/{citizen}/cancel", {}, 200),
    "cancel, confirm": ("clerk", "post", "/counter/citizen/{citizen}/cancel", presented("cancel", NIC), 200),
    "register": ("clerk", "get", "/counter/register", {}, 200),
    "register, refused": ("clerk", "post", "/counter/register", {"nationality": "pt", "nic": "1"}, 400),
    "not for the clerk": ("clerk", "get", "/counter/rp/", {}, 403),
    "report": ("supervisor", "get", "/counter/report/", {}, 200),
    "letters": ("mailroom", "get", "/counter/letters/", {}, 200),
    "rp list": ("rp-admin", "get", "/counter/rp/", {}, 200),
    "rp detail": ("rp-admin", "get", "/counter/rp/{portal}/", {}, 200),
    "rp request": ("rp-admin", "get", "/counter/rp/request", {}, 200),
    "rp request, refused": ("rp-admin", "post", "/counter/rp/request", {**REQUEST, "entity_nif": "123"}, 400),
}


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("name", list(PAGES))
def test_every_counter_page_is_accessible(desk_day, staff_client, name, lang):
    role, method, path, data, status = PAGES[name]
    client = staff_client(role, counter="" if role in {"mailroom", "rp-admin"} else "Loja do Cidadão Laranjeiras")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    path = path.format(**desk_day)
    page = assert_accessible(getattr(client, method)(path, data), lang, name, status=status)
    if name == "citizen":  # the page shows what the day left: the letters and the actions
        assert {"letters", "actions"} <= set(page.ids)


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_registration_page_is_accessible(staff_client, clock, lang):
    portuguese(clock)
    desk = staff_client("clerk")
    desk.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    response = register(desk)
    assert response.status_code == 302 and "/counter/registrations/" in response["Location"]
    assert_accessible(desk.get(response["Location"]), lang, "registration")


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_citizen_screen_and_its_pairing_are_accessible(staff_client, clock, outbox, lang):
    """The device facing the citizen, at each step a registration takes it through: the desk's
    pairing page, the pairing confirmation, idle, a code to type (also refused), a PIN to choose
    (also refused), and the thanks."""
    portuguese(clock)
    desk = staff_client("clerk")
    desk.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    assert_accessible(desk.get("/counter/desk/screen"), lang, "desk: pair a screen")
    paired = desk.post("/counter/desk/screen")
    assert_accessible(paired, lang, "desk: the pairing link")
    link = re.search(r'id="pairing-link" href="([^"]+)"', paired.content.decode()).group(1)
    device = Client()
    device.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    assert_accessible(device.get(link), lang, "screen: confirm the pairing")
    assert device.post(link).status_code == 302
    idle = assert_accessible(device.get("/counter/screen/"), lang, "screen: idle")
    assert "screen-idle" in idle.ids
    url = register(desk)["Location"]
    desk.post(url + "step", {"step": "mobile"})
    task = assert_accessible(device.get("/counter/screen/"), lang, "screen: a code to type")
    assert "screen-task" in task.ids
    wrong = "000000" if outbox.last_code(PHONE) != "000000" else "111111"
    assert_accessible(type_code(device, wrong), lang, "screen: a wrong code", status=400)
    assert_accessible(type_code(device, outbox.last_code(PHONE)), lang, "screen: thanks")
    desk.post(url + "step", {"step": "email"})
    type_code(device, outbox.last_code(EMAIL))
    desk.post(url + "step", {"step": "pin"})
    assert_accessible(device.get("/counter/screen/"), lang, "screen: a PIN to choose")
    assert_accessible(choose_pin(device, "1234"), lang, "screen: a trivial PIN", status=400)
    thanks = assert_accessible(choose_pin(device, PIN), lang, "screen: the PIN chosen")
    assert "screen-thanks" in thanks.ids
