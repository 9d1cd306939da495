"""The public pages describe what this service does today: no feature it offers is called planned,
every feature they describe is offered (its link answers), and a feature switched off is not
promised. The terms of use, the privacy notice and the costs answer are there, in both languages."""

import re

import pytest
from django.test import Client, override_settings

from chave.login.tests.pages import says
from chave.public import facts

pytestmark = [pytest.mark.django_db, pytest.mark.once]

LANGS = ["pt-pt", "en"]
# How a page would say "not yet" in either language.
PROMISES = re.compile(r"planned|coming soon|later version|not yet|brevemente|em breve|versão futura|ainda não é possível",
                      re.IGNORECASE)


def _get(path: str, lang: str) -> str:
    client = Client()
    client.cookies["django_language"] = lang
    response = client.get(path)
    assert response.status_code == 200, path
    return response.content.decode()


def _visible(page: str) -> str:
    main = page[page.index("<main"):page.index("</main>")]
    return " ".join(re.sub(r"<[^>]+>", " ", main).split())


@pytest.mark.parametrize("lang", LANGS)
def test_no_page_calls_an_offered_feature_planned(lang):
    offered = facts.features()
    assert offered.card_registration and offered.signing and offered.app  # the development instance offers all
    for path in ("/", "/faq/"):
        page = _get(path, lang)
        assert not PROMISES.search(_visible(page)), (path, PROMISES.search(_visible(page)))
        # Each feature the page describes is one the service offers, and its link answers.
        for feature, block in re.findall(r'data-feature="(\w+)"[^>]*>(.*?)</(?:li|p|span)>', page, re.S):
            assert getattr(offered, feature), (path, feature)
            for href in re.findall(r'href="([^"]+)"', block):
                assert Client().get(href).status_code in (200, 302), (path, feature, href)
    home = _get("/", lang)
    for feature in ("card_registration", "signing", "app"):
        assert f'data-feature="{feature}"' in home


@pytest.mark.parametrize("lang", LANGS)
@override_settings(IS_PRODUCTION=True, CHAVE_CARD_TRUST_ANCHORS=[])
def test_a_feature_not_configured_is_not_promised(lang):
    """A production instance without Citizen Card trust anchors refuses every card: the pages do not
    offer registration with the card."""
    assert not facts.features().card_registration
    for path in ("/", "/faq/"):
        page = _get(path, lang)
        assert 'data-feature="card_registration"' not in page and 'href="/card/register/"' not in page


@pytest.mark.parametrize("lang", LANGS)
def test_terms_privacy_and_costs_are_public(lang):
    home = _get("/", lang)
    assert 'href="/terms/"' in home and 'href="/privacy/"' in home  # from every page's footer
    terms = _visible(_get("/terms/", lang))
    assert says("Terms of use", lang) in terms and "2026-12" in terms
    privacy = _visible(_get("/privacy/", lang))
    for heading in ("What we keep", "For how long", "Who sees it", "Your rights"):
        assert says(heading, lang) in privacy
    assert 'href="/area/export/"' in _get("/privacy/", lang)
    free = says("Nothing. The key, the security codes and signing are free of charge. Your operator's usual charges "
                "for receiving SMS or data may apply.", lang)
    assert free in _visible(home) and free in _visible(_get("/faq/", lang))
