"""The clerk's desk on a phone-sized screen (390 × 844), in English and in Portuguese, in a real
browser: a search that leaves no NIC or phone number in the address bar or the history; the
citizen's page as a summary with a task list; an action on its own page that reports every problem
at once; a dangerous action that warns and asks to confirm; a letter that reads "printed, to be
posted" without a "lost in the post" action until it is posted; a supervisor reversing a new PIN, after
which the clerk's page tells the truth and the citizen's previous PIN works again."""

import os
import re

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.counter import letters, services  # noqa: E402
from chave.counter.models import CounterAction  # noqa: E402
from chave.identity import services as identity  # noqa: E402
from chave.identity.models import Key, KeyStatus  # noqa: E402
from chave.testing.browser import click_and_wait, expect  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE_VIEWPORT = {"width": 390, "height": 844}
NIC, MOBILE = "12345678", "+351912345678"
WORDS = {  # what each language's page says, where the test reads words
    "en": {"locale": "en-GB", "two_problems": ("This is not the citizen's registered document",
                                               "The reason needs at least 10 characters"),
           "unlocked": "The key is unlocked.", "confirm": "Cancel this citizen's key?",
           "printed": "Printed, to be posted", "posted": "Posted", "lost": "Lost in the post",
           "chosen": "Chosen by the citizen", "cancelled": "Cancelled",
           "back": "your previous PIN works again"},
    "pt-pt": {"locale": "pt-PT", "two_problems": ("Este não é o documento registado do cidadão",
                                                  "O motivo precisa de pelo menos 10 caracteres"),
              "unlocked": "A chave foi desbloqueada.", "confirm": "Cancelar a chave deste cidadão?",
              "printed": "Impressa, a enviar pelo correio", "posted": "Expedida", "lost": "Extraviada no correio",
              "chosen": "Escolhido pelo cidadão", "cancelled": "Cancelada",
              "back": "o seu PIN anterior volta a funcionar"},
}


def fits_the_screen(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]


def sign_in_on_a_phone(live_server, new_page, login, locale):
    page = new_page(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True, locale=locale)
    page.goto(live_server.url + "/counter/login")
    page.locator("#id_username").fill(login.username)
    page.locator("#id_password").fill(login.password)
    page.locator("#id_code").fill(login.code())
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/counter/(find|report|rp)/$"))
    return page


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_desk_on_a_phone(live_server, new_page, make_staff, make_citizen, run_worker, lang):
    words = WORDS[lang]
    key = make_citizen(nic=NIC, phone=MOBILE)
    identity.block_key(key, by="test")
    login = make_staff("clerk", counter="Loja Aveiro", name="Ana Sousa")
    page = sign_in_on_a_phone(live_server, new_page, login, words["locale"])
    # The back office's own header: who, in which role, at which counter; no citizen menu.
    assert page.locator("#staff-name").inner_text() == "Ana Sousa"
    assert page.locator("#staff-counter").inner_text() == "Loja Aveiro"
    assert page.locator("#staff-role").inner_text()
    assert not page.locator("nav a[href='/login/']").count()

    # Search: posted, so the number is in neither the address bar nor the history.
    page.locator("#id_q").fill("912 345 678")
    page.locator("#find-form button[type=submit]").click()
    page.locator("#results a").wait_for()
    assert page.url == live_server.url + "/counter/find/"
    assert "912" not in page.evaluate("document.referrer + location.href")
    click_and_wait(page.locator("#results a"))

    # The summary: status, the tasks; no form on it.
    assert page.locator("#key-status").get_attribute("data-status") == "blocked"
    expect(page.locator("#tasks #task-unlock")).to_be_visible()
    assert page.locator("#tasks a.danger").count() == 1
    assert page.locator("main form").count() == page.locator("#letters form").count() == 0
    assert fits_the_screen(page)

    # Unlock, on its own page: two mistakes, both reported at once; then done.
    page.locator("#task-unlock").click()
    page.locator("#id_unlock-presented_number").fill("87654321")
    page.locator("#id_unlock-reason").fill("lost")
    page.locator("#task-form button[type=submit]").click()
    summary = page.locator(".error-summary").inner_text()
    assert all(problem in summary for problem in words["two_problems"]), summary
    assert page.locator(".field.has-error").count() == 2 and fits_the_screen(page)
    page.locator("#id_unlock-presented_number").fill(NIC)
    page.locator("#id_unlock-reason").fill("Forgot the PIN, identified with the card")
    click_and_wait(page.locator("#task-form button[type=submit]"))
    assert words["unlocked"] in page.locator("ul.messages").inner_text()
    assert page.locator("#key-status").get_attribute("data-status") == "active"

    # Cancelling warns, asks to confirm, and going back changes nothing.
    page.locator("#task-cancel").click()
    expect(page.locator("#task-warning")).to_be_visible()
    assert page.locator("#task-form button.warning").count() == 1
    page.locator("#id_cancel-presented_number").fill(NIC)
    page.locator("#id_cancel-reason").fill("The citizen no longer wants the key")
    page.locator("#task-form button[type=submit]").click()
    assert page.locator("#confirm-title").inner_text() == words["confirm"]
    assert page.locator("#consequences li").count() == 3 and fits_the_screen(page)
    click_and_wait(page.locator("main a.button.secondary"))
    assert page.locator("#key-status").get_attribute("data-status") == "active"
    assert Key.objects.get(pk=key.pk).status == KeyStatus.ACTIVE
    assert [a.kind for a in CounterAction.objects.all()] == ["unlock"]

    # A letter printed by the mail room waits for the post: no "lost in the post" before it is posted.
    room = make_staff("mailroom", counter="").staff
    letter = letters.issue_new_pin(login.staff, key, services.Presented("cc", "PT", NIC, "Asked for a new PIN"),
                                   address="Rua das Flores 12\n1200-195 Lisboa")
    run_worker()
    batch = letters.make_batch(room)
    letters.batch_pdf(room, batch)
    page.reload()
    row = page.locator(f'tr[data-reference="{letter.reference}"]')
    assert row.locator(".letter-status").inner_text() == words["printed"]
    assert not row.locator("a.cancel-letter").count()
    letters.mark_posted(room, batch)
    page.reload()
    assert row.locator(".letter-status").inner_text() == words["posted"]
    expect(row.get_by_role("link", name=words["lost"])).to_be_visible()


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_a_supervisor_reverses_a_new_pin_on_a_phone_and_the_previous_pin_works_again(
        live_server, new_page, make_staff, make_citizen, outbox, clock, lang):
    from django.test import Client

    from chave.counter.models import Letter, LetterStatus
    from chave.login.tests.pages import sign_in

    words = WORDS[lang]
    key = make_citizen(nic=NIC, phone=MOBILE, pin="4719", language=lang)
    clerk = make_staff("clerk", counter="Loja Aveiro").staff
    letter = letters.issue_new_pin(clerk, key, services.Presented("cc", "PT", NIC, "Asked for a new PIN today"),
                                   address="Rua das Flores 12\n1200-195 Lisboa")
    action = CounterAction.objects.get(kind="new_pin")
    boss = make_staff("supervisor", counter="Loja Aveiro", name="Rui Costa")
    page = sign_in_on_a_phone(live_server, new_page, boss, words["locale"])
    page.locator("#staff-bar a[href='/counter/report/']").click()
    item = page.locator(f'li[data-action="{action.pk}"]')
    item.locator(f"#reason-{action.pk}").fill("The clerk did not check the document")
    item.locator("button[type=submit]").click()
    expect(page.locator(f'li[data-action="{action.pk}"] .reversed')).to_be_visible()
    assert fits_the_screen(page)

    # The clerk's page tells the truth; the citizen's own PIN opens the key again, and they are told.
    click_and_wait(page.locator(f'li[data-action="{action.pk}"] a'))
    assert page.locator("#pin-state").inner_text() == words["chosen"]
    row = page.locator(f'tr[data-reference="{letter.reference}"]')
    assert row.locator(".letter-status").inner_text() == words["cancelled"] and not row.locator("a").count()
    assert Letter.objects.get().status == LetterStatus.CANCELLED
    assert words["back"] in outbox.last(MOBILE).body
    assert sign_in(Client(), "912 345 678", pin="4719").status_code == 302


def test_the_rp_administrators_pages_fit_a_phone_in_both_languages(live_server, new_page, make_staff):
    """The portals' list and a portal's page, whose tables (client ids, the history) are wider than a
    phone: the tables scroll in their own region, the page never sideways; in Portuguese (the longer
    words), then in English through the header's language switch."""
    from chave.federation import services as federation
    from chave.oidc import services as registry

    from .test_rp_admin import REQUEST, jwks

    party = registry.register_relying_party(
        name="Autoridade Tributária e Aduaneira — Portal das Finanças", entity_nif="600084779",
        contact_email="integracao@at.gov.pt", redirect_uris=["https://www.portaldasfinancas.gov.pt/callback"],
        allowed_attributes=REQUEST["allowed_attributes"], jwks=jwks(), by="ana (CLI)").relying_party
    federation.decide(party, "approve", by="ana (CLI)", reason="Public entity, NIF checked at the registry")
    login = make_staff("rp-admin", counter="", name="Paula Portais")
    page = sign_in_on_a_phone(live_server, new_page, login, "pt-PT")
    for switch_to in ("English", None):
        page.goto(f"{live_server.url}/counter/rp/")
        assert fits_the_screen(page), "the list"
        click_and_wait(page.locator(f'#parties a[href$="/{party.client_id}/"]'))
        expect(page.locator("#rp-history")).to_contain_text("ana")
        assert fits_the_screen(page), "the portal's page"
        if switch_to:
            click_and_wait(page.get_by_role("button", name=switch_to))
