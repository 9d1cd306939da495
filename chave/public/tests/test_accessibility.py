"""What assistive technology finds on every page: one <h1>, headings in order, landmarks, a skip
link to the main content, labelled fields, unique ids and the page language."""

from __future__ import annotations

import pytest
from django.test import Client

from chave.testing.accessibility import Outline, assert_headings, assert_landmarks, assert_named, outline

__all__ = ["Outline", "outline"]  # other apps' tests import them from chave.testing.accessibility

pytestmark = [pytest.mark.django_db, pytest.mark.once]  # the same on any database: SQLite pass only

PAGES = ["/", "/faq/", "/help/", "/dev/outbox/", "/login/", "/area/enter/", "/validate/", "/counter/login",
         "/counter/login/card"]


@pytest.fixture(autouse=True)
def _development(settings):
    settings.CHAVE_ENV = "dev"  # so that the development outbox page and banner exist


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("path", PAGES)
def test_one_h1_and_headings_in_order(path, lang):
    assert_headings(outline(path, lang), path)


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("path", PAGES)
def test_landmarks_and_a_skip_link_to_the_main_content(path, lang):
    assert_landmarks(outline(path, lang), path)


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("path", PAGES)
def test_fields_are_labelled_buttons_named_ids_unique(path, lang):
    assert_named(outline(path, lang), lang, path)


def test_the_login_form_is_labelled_in_both_languages():
    """A page with a real form: each visible field has a label naming it."""
    for lang in ("en", "pt-pt"):
        page = outline("/login/", lang)
        assert len(page.fields) >= 2
        assert all(f.get("id") in page.labels_for for f in page.fields)


def test_the_current_page_is_marked_in_the_navigation():
    client = Client()
    page = client.get("/faq/").content.decode()
    nav = page[page.index("<nav"):page.index("</nav>")]
    assert nav.count('aria-current="page"') == 1
    assert 'href="/faq/" aria-current="page"' in nav


def test_focus_is_visible_in_the_style_sheet():
    from pathlib import Path

    css = (Path(__file__).resolve().parents[1] / "static" / "chave" / "site.css").read_text()
    assert ":focus-visible" in css and "outline: 3px solid" in css
    assert "outline: none" not in css.replace("main:focus { outline: none; }", "")
