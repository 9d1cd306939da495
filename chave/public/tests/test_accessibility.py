"""What assistive technology finds on every page: one <h1>, headings in order, landmarks, a skip
link to the main content, labelled fields, unique ids and the page language."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

PAGES = ["/", "/faq/", "/help/", "/dev/outbox/", "/login/"]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
FOCUSABLE = {"a", "button", "input", "select", "textarea", "summary"}


class Outline(HTMLParser):
    """Collects what a screen reader announces: headings, landmarks, fields, labels, ids."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.headings: list[tuple[int, str]] = []
        self.landmarks: list[str] = []
        self.ids: list[str] = []
        self.labels_for: set[str] = set()
        self.fields: list[dict] = []
        self.buttons: list[str] = []
        self.focusable: list[dict] = []
        self.html_lang = None
        self.open: list[str] = []
        self._heading: list | None = None
        self._button: list | None = None
        self._label_depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.html_lang = a.get("lang")
        if "id" in a:
            self.ids.append(a["id"])
        if tag in {"header", "nav", "main", "footer"}:
            self.landmarks.append(tag)
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._heading = [int(tag[1]), ""]
        if tag == "label":
            self._label_depth += 1
            if a.get("for"):
                self.labels_for.add(a["for"])
        if tag in {"input", "select", "textarea"} and a.get("type") not in {"hidden", "submit", "button"}:
            self.fields.append({**a, "_tag": tag, "_in_label": self._label_depth > 0})
        if tag == "button":
            self._button = [a.get("aria-label", "")]
        if tag in FOCUSABLE and (tag != "a" or "href" in a) and a.get("type") != "hidden":
            self.focusable.append({**a, "_tag": tag})
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if self._heading is not None and tag == f"h{self._heading[0]}":
            self.headings.append((self._heading[0], " ".join(self._heading[1].split())))
            self._heading = None
        if tag == "label":
            self._label_depth -= 1
        if tag == "button" and self._button is not None:
            self.buttons.append(" ".join("".join(self._button).split()))
            self._button = None
        if tag in self.open:
            while self.open and self.open.pop() != tag:
                pass

    def handle_data(self, data):
        if self._heading is not None:
            self._heading[1] += data
        if self._button is not None:
            self._button.append(data)


def outline(path: str, lang: str) -> Outline:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    response = client.get(path)
    assert response.status_code == 200, path
    parsed = Outline()
    parsed.feed(response.content.decode())
    parsed.close()
    return parsed


@pytest.fixture(autouse=True)
def _development(settings):
    settings.CHAVE_ENV = "dev"  # so that the development outbox page and banner exist


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("path", PAGES)
def test_one_h1_and_headings_in_order(path, lang):
    page = outline(path, lang)
    levels = [level for level, _ in page.headings]
    assert levels.count(1) == 1, page.headings
    assert levels[0] == 1, page.headings
    for before, after in zip(levels, levels[1:]):
        assert after <= before + 1, f"heading level jumps from h{before} to h{after} on {path}"
    assert all(text for _, text in page.headings), "an empty heading"


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("path", PAGES)
def test_landmarks_and_a_skip_link_to_the_main_content(path, lang):
    page = outline(path, lang)
    assert page.landmarks.count("main") == 1
    assert {"header", "nav", "footer"} <= set(page.landmarks)
    first = page.focusable[0]
    assert first["_tag"] == "a" and first["href"] == "#main", "the skip link must come first"
    assert "main" in page.ids


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("path", PAGES)
def test_fields_are_labelled_buttons_named_ids_unique(path, lang):
    page = outline(path, lang)
    for field in page.fields:
        assert field["_in_label"] or field.get("id") in page.labels_for or field.get("aria-label"), field
    assert all(page.buttons), "a button without a name"
    duplicates = {i for i in page.ids if page.ids.count(i) > 1}
    assert not duplicates, duplicates
    assert page.html_lang == {"en": "en", "pt-pt": "pt-PT"}[lang]


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
