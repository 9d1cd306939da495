"""The public pages as a citizen reads them: both languages, the rules as the service applies
them, the help contacts of this instance, the language switch and the development outbox."""

from __future__ import annotations

import copy
import html
import re

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

PAGES = ["/", "/faq/", "/help/"]
# What each page's <h1> says, in each language.
H1 = {
    ("/", "en"): "Chave, your Digital Mobile Key",
    ("/", "pt-pt"): "Chave, a sua Chave Móvel Digital",
    ("/faq/", "en"): "Questions and answers",
    ("/faq/", "pt-pt"): "Perguntas e respostas",
    ("/help/", "en"): "Help and contacts",
    ("/help/", "pt-pt"): "Ajuda e contactos",
    ("/dev/outbox/", "en"): "Development outbox",
    ("/dev/outbox/", "pt-pt"): "Caixa de saída de desenvolvimento",
}
HTML_LANG = {"en": "en", "pt-pt": "pt-PT"}


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def h1(response) -> str:
    found = re.findall(r"<h1[^>]*>(.*?)</h1>", response.content.decode(), re.S)
    assert len(found) == 1, f"expected one <h1>, found {len(found)}"
    return text_of(found[0])


def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]*)"', response.content.decode()).group(1)


def block(response, anchor: str) -> str:
    """The text of the FAQ answer whose question has id ``anchor``."""
    page = response.content.decode()
    found = re.search(rf'<div class="qa">\s*<h3 id="{anchor}">.*?</div>', page, re.S)
    assert found, f"no question with id {anchor!r}"
    return text_of(found.group(0))


def in_language(lang: str) -> Client:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    return client


def policy_with(**changes) -> dict:
    policy = copy.deepcopy(settings.CHAVE_POLICY)
    policy.update(changes)
    return policy


# --- both languages -------------------------------------------------------------------------

@pytest.mark.parametrize("lang, accept", [("en", "en-GB,en;q=0.9"), ("pt-pt", "pt-PT,pt;q=0.9,en;q=0.5")])
@pytest.mark.parametrize("path", PAGES)
def test_each_page_speaks_the_browser_language(path, lang, accept):
    response = Client().get(path, HTTP_ACCEPT_LANGUAGE=accept)
    assert response.status_code == 200
    assert html_lang(response) == HTML_LANG[lang]
    assert h1(response) == H1[(path, lang)]


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("path", PAGES)
def test_the_language_cookie_wins_over_the_browser(path, lang):
    response = in_language(lang).get(path, HTTP_ACCEPT_LANGUAGE="de-DE" if lang == "pt-pt" else "pt-PT")
    assert html_lang(response) == HTML_LANG[lang]
    assert h1(response) == H1[(path, lang)]


def test_without_a_preference_the_pages_are_in_portuguese():
    response = Client().get("/faq/")
    assert html_lang(response) == "pt-PT"
    assert "O que é a Chave?" in response.content.decode()
    assert "What is Chave?" not in response.content.decode()


def test_portuguese_pages_use_european_portuguese_words():
    page = text_of(in_language("pt-pt").get("/").content.decode())
    assert "telemóvel" in page and "código de segurança" in page and "Chave Móvel Digital" in page
    assert "celular" not in page  # Brazilian usage


# --- the rules, as the service applies them ------------------------------------------------------

def test_faq_states_the_wrong_pin_rule_of_the_policy():
    unlock = block(in_language("en").get("/faq/"), "unlock")
    assert "3 wrong PINs in a row: the key is locked for 5 minutes." in unlock
    assert "4 wrong PINs in a row: the key is locked for 15 minutes." in unlock
    assert "5 wrong PINs in a row: the key is locked for 1 hour." in unlock
    assert "6 wrong PINs in a row: the key is blocked until you unlock it." in unlock


def test_faq_follows_a_changed_policy(settings):
    settings.CHAVE_POLICY = policy_with(
        pin_lock_steps={2: 120, 3: 2 * 3600}, pin_block_after=4, code_lifetime_seconds={"login": 600}
    )
    response = in_language("en").get("/faq/")
    unlock = block(response, "unlock")
    assert "2 wrong PINs in a row: the key is locked for 2 minutes." in unlock
    assert "3 wrong PINs in a row: the key is locked for 2 hours." in unlock
    assert "4 wrong PINs in a row: the key is blocked until you unlock it." in unlock
    assert "5 minutes" not in unlock and "6 wrong PINs" not in unlock
    assert "only for 10 minutes" in block(response, "code-reuse")
    home = text_of(in_language("en").get("/").content.decode())
    assert "After 2 wrong PINs in a row your key is locked" in home
    assert "Type the code within 10 minutes." in home


def test_faq_follows_a_changed_policy_in_portuguese(settings):
    settings.CHAVE_POLICY = policy_with(pin_lock_steps={2: 90, 3: 2 * 86400}, pin_block_after=4)
    unlock = block(in_language("pt-pt").get("/faq/"), "unlock")
    assert "2 PIN errados seguidos: a chave fica bloqueada durante 90 segundos." in unlock
    assert "3 PIN errados seguidos: a chave fica bloqueada durante 2 dias." in unlock
    assert "4 PIN errados seguidos: a chave fica bloqueada até a desbloquear." in unlock


def test_faq_states_code_and_pin_rules_of_the_policy(settings):
    settings.CHAVE_POLICY = policy_with(
        pin_min_length=5, pin_max_length=7, code_max_wrong=2, code_max_sends_per_transaction=4,
        code_resend_cooldown_seconds=45, temporary_pin_days=10, inactivity_revoke_days=0,
    )
    response = in_language("en").get("/faq/")
    assert "The PIN has 5 to 7 digits" in block(response, "change-pin")
    assert "After 2 wrong attempts the code stops working" in block(response, "code-reuse")
    assert "after 45 seconds, up to 4 codes per sign-in" in block(response, "which-code")
    assert "stops working 10 days after it was issued" in block(response, "counter-key")
    assert "is not used for" not in block(response, "validity")  # revocation switched off


def test_templates_carry_no_literal_lock_numbers():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "templates" / "public"
    for name in ("faq.html", "home.html", "_lock_steps.html"):
        text = (folder / name).read_text(encoding="utf-8")
        assert not re.search(r"(?<![\d/.-])(3|5|6|15|60)(?![\d/])\s*(wrong|minute|minutes|hour)", text), name


# --- the FAQ covers the questions citizens ask ----------------------------------------------------

# The questions of the FAQ of the Portuguese system (shared/seed), each answered here.
SEED_QUESTIONS = [
    "cannot-sign-in", "differences", "several-phones", "forgot-pin", "unlock", "change-pin", "cancel",
    "legislation", "no-phone", "code-reuse", "which-code", "counter-key", "phone-and-email", "app",
    "secure", "integrate",
]


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_every_seed_question_has_an_answer_with_an_anchor(lang):
    response = in_language(lang).get("/faq/")
    page = response.content.decode()
    for anchor in SEED_QUESTIONS:
        assert len(block(response, anchor)) > 80, anchor
        assert f'href="#{anchor}"' in page, f"{anchor} is missing from the list of questions"


def test_the_login_page_links_to_an_existing_answer():
    login = Client().get("/login/").content.decode()
    fragments = re.findall(r'href="/faq/#([\w-]+)"', login)
    assert fragments, "the login page links to no answer"
    faq = Client().get("/faq/").content.decode()
    for fragment in fragments:
        assert f'id="{fragment}"' in faq


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_faq_names_the_legal_basis(lang):
    legislation = block(in_language(lang).get("/faq/"), "legislation")
    for act in ("Lei n.º 37/2014, de 26 de junho", "Portaria n.º 189/2014, de 23 de setembro",
                "Lei n.º 32/2017, de 1 de junho", "Portaria n.º 190-A/2019"):
        assert act in legislation
    assert "Chave Móvel Digital" in legislation


def test_the_answers_say_what_this_system_does():
    response = in_language("en").get("/faq/")
    assert "at most one mobile number" in block(response, "several-phones")
    assert "Use the most recent message" in block(response, "which-code")
    assert "by e-mail" in block(response, "no-phone")
    assert "Add the Chave app" in block(response, "app")  # the app exists: no "not yet"
    forgot = block(response, "forgot-pin")
    assert "personal area" in forgot and "Citizen Card" in forgot and "counter" in forgot
    assert "Only Public Administration entities" in block(response, "integrate")
    secure = block(response, "secure")
    assert "never stored in clear" in secure and "work only once" in secure
    validity = block(response, "validity")  # 30 days after the card; 548 days of disuse
    assert "for 30 more days after the card expires" in validity
    assert "not used for 18 months is cancelled" in validity


def test_the_x_channel_is_mentioned_only_when_offered(settings):
    settings.CHAVE_X_PROVIDER = "off"
    assert "X (Twitter)" not in block(in_language("en").get("/faq/"), "what-is")
    settings.CHAVE_X_PROVIDER = "sink"
    assert "X (Twitter)" in block(in_language("en").get("/faq/"), "what-is")


# --- the home page ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lang, sign_in", [("en", "Sign in"), ("pt-pt", "Entrar")])
def test_home_leads_to_sign_in_and_gives_safety_advice(lang, sign_in):
    page = in_language(lang).get("/").content.decode()
    main = page[page.index("<main"):page.index("</main>")]
    assert re.search(rf'<a class="button" href="/login/">{sign_in}</a>', main)
    words = text_of(main)
    if lang == "en":
        assert "Chave never asks for your PIN by phone" in words
        assert "Never share your PIN or a security code" in words
        assert "register now" in words and "At a counter" in words
    else:
        assert "A Chave nunca lhe pede o PIN por telefone" in words
        assert "Nunca partilhe o seu PIN" in words
        assert "registe-se já" in words and "Num balcão de atendimento" in words


# --- help contacts come from settings --------------------------------------------------------------

def test_help_contacts_come_from_settings(settings):
    settings.CHAVE_HELP_EMAIL = "apoio@servico.example.pt"
    settings.CHAVE_HELP_PHONE = "+351 210 000 111"
    for path in PAGES:
        page = in_language("en").get(path).content.decode()
        assert 'href="mailto:apoio@servico.example.pt"' in page, path
        assert 'href="tel:+351210000111">+351 210 000 111</a>' in page, path
        assert "ajuda@chave.localhost" not in page
    faq = in_language("en").get("/faq/")
    assert "apoio@servico.example.pt" in block(faq, "cannot-sign-in")
    assert "apoio@servico.example.pt" in block(faq, "integrate")


def test_without_a_help_phone_no_phone_is_shown(settings):
    settings.CHAVE_HELP_PHONE = ""
    for path in PAGES:
        page = in_language("pt-pt").get(path).content.decode()
        assert "tel:" not in page, path
        assert 'href="mailto:' in page


# --- the language switch ---------------------------------------------------------------------------

def _switch_form(page: str) -> tuple[str, dict]:
    form = re.search(r'<form class="lang" action="([^"]+)" method="post">(.*?)</form>', page, re.S)
    assert form, "no language switch"
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    buttons = re.findall(r'<button type="submit" name="language" value="([^"]+)"', form.group(2))
    assert len(buttons) == 1
    fields["language"] = buttons[0]
    return form.group(1), {k: html.unescape(v) for k, v in fields.items()}


@pytest.mark.parametrize("start, other", [("pt-pt", "en"), ("en", "pt-pt")])
def test_the_language_switch_changes_language_and_stays_on_the_page(start, other):
    client = Client(enforce_csrf_checks=True)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = start
    action, fields = _switch_form(client.get("/faq/?x=1").content.decode())
    assert fields["language"] == other and fields["next"] == "/faq/?x=1"
    response = client.post(action, fields)
    assert response.status_code == 302 and response["Location"] == "/faq/?x=1"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == other
    page = client.get(response["Location"])
    assert html_lang(page) == HTML_LANG[other]
    assert h1(page) == H1[("/faq/", other)]


def test_the_language_switch_names_the_other_language_in_that_language():
    page = in_language("pt-pt").get("/").content.decode()
    assert '<button type="submit" name="language" value="en" lang="en">English</button>' in page
    page = in_language("en").get("/").content.decode()
    assert '<button type="submit" name="language" value="pt-pt" lang="pt-PT">Português</button>' in page


def test_the_language_switch_does_not_send_citizens_to_other_sites():
    response = Client().post("/i18n/setlang/", {"language": "en", "next": "https://phish.example/"})
    assert response.status_code == 302
    assert "phish.example" not in response["Location"]


def test_the_language_switch_refuses_an_unknown_language():
    client = Client()
    client.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    assert html_lang(client.get("/")) == "pt-PT"


# --- the development outbox ------------------------------------------------------------------------

@pytest.mark.parametrize("env", ["test", "production"])
def test_the_dev_outbox_does_not_exist_outside_development(settings, env):
    settings.CHAVE_ENV = env
    assert Client().get("/dev/outbox/").status_code == 404
    assert "/dev/outbox/" not in Client().get("/").content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_dev_outbox_shows_what_the_sink_kept(settings, make_citizen, run_worker, lang):
    settings.CHAVE_ENV = "dev"
    make_citizen(phone="+351912345678", language=lang)
    run_worker()
    response = in_language(lang).get("/dev/outbox/")
    assert response.status_code == 200
    assert h1(response) == H1[("/dev/outbox/", lang)]
    page = response.content.decode()
    assert "+351912345678" in page
    assert 'href="/dev/outbox/"' in page  # the development banner points here


@pytest.mark.parametrize(("lang", "heading"), [("en", "Page not found"), ("pt-pt", "Página não encontrada")])
def test_an_unknown_address_gets_our_own_not_found_page_in_the_citizen_s_language(client, lang, heading):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    response = client.get("/no-such-page/")
    page = response.content.decode()
    assert response.status_code == 404 and 'id="not-found"' in page and f"<h1>{heading}</h1>" in page


def test_a_request_for_another_host_is_a_400_page_not_a_500(client):
    response = client.get("/", HTTP_HOST="evil.example")
    assert response.status_code == 400 and 'id="bad-request"' in response.content.decode()


def test_pages_allow_no_script_and_no_framing(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy and "frame-ancestors 'none'" in policy
    assert "Content-Security-Policy" in client.get("/no-such-page/").headers
