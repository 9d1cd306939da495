"""The activation letter as a PDF (fpdf2): A4, laid out for a DL window envelope (DIN 5008 form B:
the window is 20 mm from the left, 45 mm from the top, 85 × 45 mm), with the recipient's name and
postal address in the window, the letter's reference, the temporary PIN, its valid-until date and
the instructions in Portuguese and in English.

DejaVu Sans is embedded so that every name prints (fpdf2's core fonts are Latin-1 only).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from fpdf import FPDF

# fontTools logs the glyphs it keeps when fpdf2 subsets a font: for a letter, that would say which
# digits the PIN has. Its INFO messages are never wanted.
logging.getLogger("fontTools").setLevel(logging.WARNING)

# The letter's labels, each printed in Portuguese and English ("PT / EN"; once if the two agree).
TITLE = gettext_noop("Digital Mobile Key")
PIN_LABEL = gettext_noop("Temporary PIN")
VALID_LABEL = gettext_noop("PIN valid until")
REFERENCE_LABEL = gettext_noop("Reference")
HANDED_OVER_LABEL = gettext_noop("Handed over at")

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
WINDOW = {"x": 20, "y": 45, "w": 85, "h": 45}  # millimetres, DIN 5008 form B


@dataclass(frozen=True)
class LetterContent:
    reference: str
    recipient: str
    address: str
    pin: str
    valid_until: dt.datetime
    issued_on: dt.date


def both(msgid: str) -> str:
    with translation.override("pt-pt"):
        portuguese = _(msgid)
    with translation.override("en"):
        english = _(msgid)
    return english if portuguese == english else f"{portuguese} / {english}"


def both_dates(day: dt.date) -> str:
    """A date as each language writes it ("5 de janeiro de 2027 / 5 January 2027")."""
    written = []
    for language in ("pt-pt", "en"):
        with translation.override(language):
            written.append(formats.date_format(day, "DATE_FORMAT"))
    return written[1] if written[0] == written[1] else " / ".join(written)


def _instructions(content: LetterContent, language: str) -> tuple[str, str]:
    with translation.override(language):
        until = formats.date_format(timezone.localdate(content.valid_until), "DATE_FORMAT")
        title = _("Your temporary PIN for the Digital Mobile Key")
        body = _(
            "You asked for a new PIN at a Chave counter. Sign in at %(url)s with your mobile number or "
            "e-mail address and the temporary PIN above. You will be asked to choose your own PIN before "
            "anything else. The temporary PIN is valid until %(until)s. Never share it with anyone, not "
            "even Chave staff. If you did not ask for it, contact %(help)s."
        ) % {"url": settings.CHAVE_PUBLIC_URL, "until": until, "help": settings.CHAVE_HELP_EMAIL}
        return title, body


def render(content: LetterContent) -> bytes:
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_title(f"Chave {content.reference}")
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 14)
    pdf.set_xy(20, 15)
    pdf.cell(0, 8, f"Chave — {both(TITLE)}")

    # The window: only what the post needs to see.
    pdf.set_font("DejaVu", "", 11)
    pdf.set_xy(WINDOW["x"] + 5, WINDOW["y"] + 5)
    lines = [content.recipient, *[line.strip() for line in content.address.splitlines() if line.strip()]]
    pdf.multi_cell(WINDOW["w"] - 10, 5.5, "\n".join(lines), new_x="LMARGIN", new_y="NEXT")

    pdf.set_font("DejaVu", "", 10)
    pdf.set_xy(125, WINDOW["y"] + 5)
    pdf.multi_cell(65, 5.5, f"{both(REFERENCE_LABEL)}: {content.reference}\n{both_dates(content.issued_on)}")

    pdf.set_xy(20, WINDOW["y"] + WINDOW["h"] + 15)
    pdf.set_font("DejaVu", "B", 12)
    pdf.cell(0, 8, f"{both(PIN_LABEL)}:", new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(20)
    pdf.set_font("DejaVu", "B", 22)
    pdf.cell(0, 14, " ".join(content.pin), new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(20)
    pdf.set_font("DejaVu", "", 10)
    pdf.cell(0, 6, f"{both(VALID_LABEL)}: {both_dates(timezone.localdate(content.valid_until))}",
             new_x="LMARGIN", new_y="NEXT")
    for language in ("pt-pt", "en"):
        title, body = _instructions(content, language)
        pdf.ln(6)
        pdf.set_x(20)
        pdf.set_font("DejaVu", "B", 11)
        pdf.multi_cell(170, 6, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_x(20)
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(170, 5.5, body, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
