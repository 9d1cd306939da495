"""What assistive technology finds on a page, for every app's tests: :class:`Outline` reads a page
as a screen reader announces it (headings, landmarks, fields and their labels, buttons and their
names, ids, the page language, what Tab reaches), and the ``assert_*`` checks say what every page
of Chave must offer. :func:`assert_accessible` runs them all on a response.
"""

from __future__ import annotations

from html.parser import HTMLParser

from django.conf import settings
from django.test import Client

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
FOCUSABLE = {"a", "button", "input", "select", "textarea", "summary"}
HTML_LANG = {"en": "en", "pt-pt": "pt-PT"}
BUTTON_INPUTS = {"submit", "button", "reset", "image"}


class Outline(HTMLParser):
    """Collects what a screen reader announces: headings, landmarks, fields, labels, ids.

    ``focusable`` is what Tab reaches, in order (an element with ``tabindex="-1"`` is left out:
    it takes focus only from a script or a link); ``hidden_focusable`` lists what is hidden from
    assistive technology (``aria-hidden="true"``) yet still reached by Tab."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.headings: list[tuple[int, str]] = []
        self.landmarks: list[str] = []
        self.ids: list[str] = []
        self.labels_for: set[str] = set()
        self.fields: list[dict] = []
        self.buttons: list[str] = []
        self.focusable: list[dict] = []
        self.hidden_focusable: list[dict] = []
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
        kind = a.get("type")
        if tag == "input" and kind == "image":  # a button named by its alt text
            self.buttons.append(" ".join((a.get("aria-label") or a.get("alt") or "").split()))
        elif tag in {"input", "select", "textarea"} and kind not in {"hidden", *BUTTON_INPUTS}:
            self.fields.append({**a, "_tag": tag, "_in_label": self._label_depth > 0})
        if tag == "button":
            self._button = [a.get("aria-label", "")]
        if tag in FOCUSABLE and (tag != "a" or "href" in a) and kind != "hidden" and "disabled" not in a:
            if a.get("tabindex") != "-1":
                self.focusable.append({**a, "_tag": tag})
                if a.get("aria-hidden") == "true":
                    self.hidden_focusable.append({**a, "_tag": tag})
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


def parse(html: str) -> Outline:
    page = Outline()
    page.feed(html)
    page.close()
    return page


def outline(path: str, lang: str, client: Client | None = None) -> Outline:
    """The outline of ``path`` read in ``lang`` (by a new anonymous browser unless ``client``)."""
    client = client or Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return parse(response.content.decode())


def assert_headings(page: Outline, where: str = "") -> None:
    """One <h1>, first; no level skipped on the way down; no empty heading."""
    levels = [level for level, _ in page.headings]
    assert levels.count(1) == 1, (where, page.headings)
    assert levels[0] == 1, (where, page.headings)
    for before, after in zip(levels, levels[1:]):
        assert after <= before + 1, f"heading level jumps from h{before} to h{after} on {where}: {page.headings}"
    assert all(text for _, text in page.headings), f"an empty heading on {where}"


def assert_landmarks(page: Outline, where: str = "") -> None:
    """Header, navigation, one main and a footer; Tab reaches the skip link to the main first."""
    assert page.landmarks.count("main") == 1, (where, page.landmarks)
    assert {"header", "nav", "footer"} <= set(page.landmarks), (where, page.landmarks)
    first = page.focusable[0]
    assert first["_tag"] == "a" and first["href"] == "#main", f"the skip link must come first on {where}"
    assert "main" in page.ids, where


def assert_named(page: Outline, lang: str, where: str = "") -> None:
    """Every field labelled, every button named, nothing hidden from a screen reader reachable by
    Tab, ids unique, the page's language said."""
    for field in page.fields:
        named = field["_in_label"] or field.get("id") in page.labels_for
        assert named or field.get("aria-label") or field.get("aria-labelledby"), (where, field)
    assert all(page.buttons), f"a button without a name on {where}: {page.buttons}"
    assert not page.hidden_focusable, f"hidden from screen readers yet reached by Tab on {where}"
    duplicates = {i for i in page.ids if page.ids.count(i) > 1}
    assert not duplicates, (where, duplicates)
    assert page.html_lang == HTML_LANG[lang], (where, page.html_lang)


def assert_accessible(response, lang: str, where: str = "", *, status: int = 200) -> Outline:
    """Every check on a response of ``status``; returns the page's outline."""
    assert response.status_code == status, (where, response.status_code, response.content.decode()[:2000])
    page = parse(response.content.decode())
    assert_headings(page, where)
    assert_landmarks(page, where)
    assert_named(page, lang, where)
    return page


def walk(client: Client, steps, **values):
    """The requests a user makes to reach a page, in order: ``steps`` is a list of ``(method, path)``
    or ``(method, path, data)``, paths formatted with ``values``; returns the last response."""
    response = None
    for method, path, *data in steps:
        response = getattr(client, method)(path.format(**values), *data)
    return response


# --- In a real browser: target size and spacing (WCAG 2.2, 2.5.8) ------------------------------

MIN_TARGET = 24  # CSS pixels: WCAG 2.2 "Target Size (Minimum)"
MIN_GAP = 8  # CSS pixels between two buttons: they never touch (GOV.UK stacks them with a margin)

# What a finger aims at, as laid out: every visible control except a link inside running text
# (WCAG's "inline" exception: a link in a sentence is as tall as the sentence).
_TARGETS_JS = """() => {
  const inline = (el) => el.tagName === 'A' && !el.classList.contains('button')
      && getComputedStyle(el).display === 'inline' && el.parentElement
      && /^(P|LI|DD|TD|SPAN|SMALL|STRONG|EM|LABEL|LEGEND)$/.test(el.parentElement.tagName)
      && (el.parentElement.textContent.trim().length > el.textContent.trim().length + 1);
  const out = [];
  for (const el of document.querySelectorAll(
      'a[href], button, input:not([type=hidden]), select, textarea, summary, .button')) {
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!r.width || !r.height || style.visibility === 'hidden' || el.closest('[hidden]')) continue;
    const label = (el.getAttribute('aria-label') || el.textContent || el.value || el.name || el.id || el.tagName)
        .trim().replace(/\\s+/g, ' ').slice(0, 60);
    out.push({tag: el.tagName.toLowerCase(), type: el.type || '', label, inline: inline(el),
              button: el.tagName === 'BUTTON' || el.classList.contains('button')
                      || (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)),
              x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height});
  }
  return out;
}"""


def targets(page) -> list[dict]:
    """The controls of a Playwright ``page`` with their boxes (CSS pixels, page coordinates)."""
    return page.evaluate(_TARGETS_JS)


def _gap(a: dict, b: dict) -> float:
    dx = max(b["x"] - (a["x"] + a["w"]), a["x"] - (b["x"] + b["w"]), 0)
    dy = max(b["y"] - (a["y"] + a["h"]), a["y"] - (b["y"] + b["h"]), 0)
    return max(dx, dy)


def _centre_distance_to(point: tuple[float, float], box: dict) -> float:
    dx = max(box["x"] - point[0], 0, point[0] - (box["x"] + box["w"]))
    dy = max(box["y"] - point[1], 0, point[1] - (box["y"] + box["h"]))
    return (dx * dx + dy * dy) ** 0.5


def assert_target_sizes(page, where: str = "") -> None:
    """Every control is at least 24 by 24 CSS pixels (a checkbox or radio as much as a button,
    whatever its label's length), or has WCAG 2.5.8's spacing instead: a 24-pixel circle on its
    centre meets no other control nor another small one's circle. A link in running text is exempt."""
    found = [t for t in targets(page) if not t["inline"]]
    small = [t for t in found if t["w"] < MIN_TARGET or t["h"] < MIN_TARGET]
    crowded = []
    for t in small:
        centre = (t["x"] + t["w"] / 2, t["y"] + t["h"] / 2)
        for other in found:
            if other is t:
                continue
            if other in small:
                o = (other["x"] + other["w"] / 2, other["y"] + other["h"] / 2)
                near = ((centre[0] - o[0]) ** 2 + (centre[1] - o[1]) ** 2) ** 0.5 < MIN_TARGET
            else:
                near = _centre_distance_to(centre, other) < MIN_TARGET / 2
            if near:
                crowded.append(f"{t['tag']}{'[' + t['type'] + ']' if t['type'] else ''} “{t['label']}” "
                               f"{t['w']:.0f}×{t['h']:.0f} near “{other['label']}”")
                break
    assert not crowded, f"{where or page.url}: targets under {MIN_TARGET}px without room around them: {crowded}"


def assert_buttons_apart(page, where: str = "") -> None:
    """No two buttons touch: at least 8 CSS pixels between any two (stacked on a phone too)."""
    buttons = [t for t in targets(page) if t["button"]]
    close = [f"“{a['label']}” / “{b['label']}” ({_gap(a, b):.0f}px)"
             for i, a in enumerate(buttons) for b in buttons[i + 1:] if _gap(a, b) < MIN_GAP]
    assert not close, f"{where or page.url}: buttons closer than {MIN_GAP}px: {close}"


def assert_fits_a_finger(page, where: str = "") -> None:
    """Both checks of the laid-out page: target sizes and the space between buttons."""
    assert_target_sizes(page, where)
    assert_buttons_apart(page, where)
