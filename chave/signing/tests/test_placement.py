"""Placing a visible signature in the personal area, as a browser without JavaScript does it: a
click on a page's image (``<input type="image">`` sends ``dN-at.x`` / ``dN-at.y``) puts the box
there, on pages of any size, turned or cropped, and the signed PDF has it there and inside the page;
corners follow the page's size; every page can be seen; bad clicks get a 400 that says why."""

from __future__ import annotations

import io
import re
import subprocess

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageChops, ImageStat
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from chave.signing import pades

from .helpers import PIN, sample_pdf, sign_placed, widget
from .test_area import sign_in

pytestmark = pytest.mark.django_db(transaction=True)
PHONE = "+351912000302"
A4, A3, LETTER_LANDSCAPE = (595, 842), (842, 1191), (792, 612)
MM = 25.4 / 72


def upload(client, *pdfs: bytes):
    files = [SimpleUploadedFile(f"doc{n}.pdf", pdf, "application/pdf") for n, pdf in enumerate(pdfs)]
    response = client.post("/area/sign/upload/", {"documents": files, "level": "B-T"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302 and response["Location"] == "/area/sign/place/"


def page_image(html: str, index: int = 0) -> tuple[str, int, int]:
    """The clickable image of document ``index``: its address, width and height (CSS pixels)."""
    tag = re.search(rf'<input type="image" name="d{index}-at"[^>]*>', html, re.S).group(0)
    src = re.search(r'src="([^"]+)"', tag).group(1)
    return src, int(re.search(r'width="(\d+)"', tag).group(1)), int(re.search(r'height="(\d+)"', tag).group(1))


def render(pdf: bytes, tmp_path, name: str) -> Image.Image:
    """Page 1 as a viewer shows it (poppler: crop box, rotation, the signature's appearance)."""
    (tmp_path / f"{name}.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-singlefile", "-cropbox", "-scale-to", "600", str(tmp_path / f"{name}.pdf"),
                    str(tmp_path / name)], check=True, timeout=60)
    return Image.open(tmp_path / f"{name}.png").convert("RGB")


def sent(outbox) -> int:
    """How many messages the citizen has had (the worker having sent what was queued)."""
    outbox.last(PHONE)
    return len(outbox.messages(PHONE))


def click(client, *, x, y, index=0, shown=1, page=1, position="bottom-right", **extra):
    form = {f"d{index}-page": page, f"d{index}-position": position, f"d{index}-shown": shown,
            f"d{index}-at.x": x, f"d{index}-at.y": y, **extra}
    return client.post("/area/sign/place/", form, HTTP_ACCEPT_LANGUAGE="en")


CASES = {
    # name: page size, /Rotate, crop box, where the citizen clicks (fractions of the image)
    "A4": (A4, 0, None, (0.30, 0.60)),
    "Letter landscape, near the bottom-right edge": (LETTER_LANDSCAPE, 0, None, (0.99, 0.98)),
    "A3, near the top-left edge": (A3, 0, None, (0.01, 0.02)),
    "A4 turned a quarter": (A4, 90, None, (0.25, 0.70)),
    "Letter with a crop box": ((612, 792), 0, (50, 100, 562, 700), (0.5, 0.5)),
}


@pytest.mark.parametrize("case", CASES)
def test_a_click_on_the_page_image_puts_the_signature_there_inside_the_page(
        signer, client, outbox, live_server, tmp_path, case):
    size, rotate, crop, (fx, fy) = CASES[case]
    key, _credential = signer(phone=PHONE)
    sign_in(client, key)
    original = sample_pdf(1, size=size, rotate=rotate, crop=crop)
    upload(client, original)
    src, width, height = page_image(client.get("/area/sign/place/").content.decode())
    left, bottom, right, top = crop or (0, 0, *size)
    shown_width, shown_height = (top - bottom, right - left) if rotate in (90, 270) else (right - left, top - bottom)
    assert abs(width / height - shown_width / shown_height) < 0.01  # the image keeps the page's proportions
    image = Image.open(io.BytesIO(client.get(src).content))
    assert abs(image.width / image.height - shown_width / shown_height) < 0.01 and max(image.size) <= 880

    x, y = round(fx * width), round(fy * height)
    before_click = sent(outbox)
    page = click(client, x=x, y=y, signing_pin=PIN)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="signature-box-0"' in html
    where = re.search(r"Your signature: page 1, (\d+) mm from the left, (\d+) mm from the bottom", html)
    assert where, html
    assert sent(outbox) == before_click  # the click sent no code: it was not the signing step

    signed = sign_placed(client, outbox, PHONE, {"d0-page": "1", "d0-position": "point", "signing_pin": PIN})[0]
    on, rect = widget(signed)
    assert on == 1
    # Inside the page as shown (the crop box), whatever the page's size.
    assert left <= rect[0] < rect[2] <= right and bottom <= rect[1] < rect[3] <= top
    # Where the citizen clicked: what changed on the rendered page is the box, centred on the click
    # unless the page's edge pushed it in, then touching that edge.
    before, after = render(original, tmp_path, "before"), render(signed, tmp_path, "after")
    box = ImageChops.difference(before, after).getbbox()
    assert box, "the signature does not show on the page"
    box_w, box_h = (box[2] - box[0]) / after.width, (box[3] - box[1]) / after.height
    expected = [min(max(f, half), 1 - half) for f, half in ((x / width, box_w / 2), (y / height, box_h / 2))]
    centre = ((box[0] + box[2]) / 2 / after.width, (box[1] + box[3]) / 2 / after.height)
    assert abs(centre[0] - expected[0]) < 0.02 and abs(centre[1] - expected[1]) < 0.02, (centre, expected)
    # The distances the page stated are those of the box.
    assert abs(int(where.group(1)) - box[0] / after.width * shown_width * MM) <= 2
    assert abs(int(where.group(2)) - (1 - box[3] / after.height) * shown_height * MM) <= 2


def test_corners_follow_each_page_size_and_a_click_moves_only_its_own_document(signer, client, outbox, live_server):
    key, _credential = signer(phone=PHONE)
    sign_in(client, key)
    upload(client, sample_pdf(2, size=A3), sample_pdf(1, size=LETTER_LANDSCAPE), sample_pdf(1, size=A4))
    _src, width, height = page_image(client.get("/area/sign/place/").content.decode(), index=2)
    placements = {"d0-page": "2", "d0-position": "top-right", "d1-page": "1", "d1-position": "bottom-right"}
    page = click(client, index=2, x=width // 2, y=height // 2, **placements)
    assert page.status_code == 200
    html = page.content.decode()
    # Document 2 shows its box; the others keep their corners, now chosen in the lists.
    assert 'id="signature-box-2"' in html and re.search(r'<option value="top-right" selected>', html)
    signed = sign_placed(client, outbox, PHONE, {**placements, "d2-page": "1", "d2-position": "point",
                                                 "signing_pin": PIN})
    assert widget(signed[0]) == (2, pytest.approx([842 - 40 - 200, 1191 - 40 - 60, 842 - 40, 1191 - 40]))
    assert widget(signed[1]) == (1, pytest.approx([792 - 40 - 200, 40, 792 - 40, 40 + 60]))
    on, rect = widget(signed[2])
    assert on == 1 and [(rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2] == pytest.approx([595 / 2, 842 / 2], abs=3)


@pytest.mark.parametrize(("values", "says"), [
    ({"d0-at.x": "9999", "d0-at.y": "10"}, "The place you clicked is outside the page image."),
    ({"d0-at.x": "-3", "d0-at.y": "10"}, "The place you clicked is outside the page image."),
    ({"d0-at.x": "ten", "d0-at.y": "10"}, "The place you clicked could not be read"),
    ({"d0-at.x": "nan", "d0-at.y": "10"}, "The place you clicked could not be read"),
    ({"d0-at.x": "12"}, "The place you clicked could not be read"),
    ({"d0-at.x": "12", "d0-at.y": "10", "d0-shown": "7"}, "This document has no page 7."),
    ({"d0-at.x": "12", "d0-at.y": "10", "d0-shown": "x"}, "Choose a page of this document."),
    ({"d0-show": "0"}, "This document has no page 0."),
    ({"d0-page": "9", "d0-show": "1"}, "Check the page and the position of each document."),
    ({"d0-position": "point", "d0-show": "1"}, "Check the page and the position of each document."),
])
def test_bad_clicks_and_pages_are_refused_with_400_and_change_nothing(signer, client, outbox, values, says):
    key, _credential = signer(phone=PHONE)
    sign_in(client, key)
    upload(client, sample_pdf(2))
    before = sent(outbox)
    form = {"d0-page": "2", "d0-position": "bottom-right", "d0-shown": "2", "signing_pin": PIN, **values}
    answer = client.post("/area/sign/place/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert answer.status_code == 400
    assert says in " ".join(answer.content.decode().split())
    assert sent(outbox) == before
    again = client.get("/area/sign/place/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Your signature: page 2, 125 mm from the left, 14 mm from the bottom." in again


def test_a_press_of_the_image_by_keyboard_points_to_the_lists(signer, client, outbox):
    key, _credential = signer(phone=PHONE)
    sign_in(client, key)
    upload(client, sample_pdf(1))
    before = sent(outbox)
    answer = click(client, x=0, y=0, signing_pin=PIN)
    assert answer.status_code == 200 and sent(outbox) == before
    text = " ".join(answer.content.decode().split())
    assert "choose the page and a position in the lists" in text
    assert "Your signature: page 1, 125 mm from the left, 14 mm from the bottom." in text


def test_every_page_can_be_seen_twenty_thumbnails_at_a_time(signer, client, outbox, live_server):
    key, _credential = signer(phone=PHONE)
    sign_in(client, key)
    upload(client, sample_pdf(45))
    html = client.get("/area/sign/place/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    # The last page is chosen at first: its block of thumbnails shows, with the way back.
    assert re.findall(r'name="d0-show" value="(\d+)"', html) == [str(n) for n in range(41, 46)] + ["21"]
    assert "Previous pages (21 to 40)" in html and "Next pages" not in html
    html = client.post("/area/sign/place/", {"d0-page": "45", "d0-position": "bottom-right", "d0-shown": "45",
                                              "d0-show": "21"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    thumbnails = re.findall(r'<img src="(/area/sign/page/0/(\d+)\.png)"', html)
    assert [int(n) for _src, n in thumbnails] == list(range(21, 41))
    assert "Previous pages (1 to 20)" in html and "Next pages (41 to 45)" in html
    assert "Showing page 21 of 45." in html
    for src, _n in thumbnails[-3:]:
        image = client.get(src)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert client.get("/area/sign/page/0/46.png").status_code == 404
    assert client.get("/area/sign/page/0/0.png").status_code == 404
    assert client.get("/area/sign/page/1/1.png").status_code == 404
    src, width, height = page_image(html)
    assert src == "/area/sign/page/0/21/view.png"
    # A click on page 21 as shown puts the signature there, whatever the list said.
    page = click(client, x=width // 2, y=height // 2, shown=21, page=45)
    assert "Your signature: page 21," in page.content.decode()
    signed = sign_placed(client, outbox, PHONE, {"d0-page": "21", "d0-position": "point", "signing_pin": PIN})[0]
    assert widget(signed)[0] == 21


def test_page_boxes_take_size_and_rotation_from_the_page_tree():
    """A page without its own /MediaBox and /Rotate takes its ancestors' (PDF 32000-1, 7.7.3.4)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf(2, size=A4)))
    pages = writer.root["/Pages"]
    pages["/MediaBox"] = generic.ArrayObject([generic.NumberObject(v) for v in (0, 0, 300, 500)])
    pages["/Rotate"] = generic.NumberObject(270)
    writer.update_container(pages)
    page_ref, _resources = writer.find_page_for_modification(1)
    del page_ref.get_object()["/MediaBox"]
    writer.update_container(page_ref.get_object())
    out = io.BytesIO()
    writer.write(out)
    boxes = pades.page_boxes(out.getvalue())
    assert boxes == [pades.PageBox(0, 0, 595, 842, 270), pades.PageBox(0, 0, 300, 500, 270)]
    assert boxes[1].shown_size == (500, 300)
    with pytest.raises(pades.PdfError):
        pades.page_boxes(b"%PDF-1.7\nnot really")


def _stamp(pdf: bytes, tmp_path, name: str, original: bytes) -> Image.Image:
    """The signature's stamp as the viewer shows it: what signing changed on the rendered page."""
    before, after = render(original, tmp_path, f"{name}-before"), render(pdf, tmp_path, name)
    box = ImageChops.difference(before, after).getbbox()
    assert box, "the signature does not show on the page"
    return after.crop(box).convert("L")


def test_the_stamp_reads_upright_on_a_turned_page(signer, client, outbox, live_server, tmp_path):
    """On a page with /Rotate the box is as wide as on any page and its text runs left to right as
    the page is shown: the stamp looks like the one on an unturned page."""
    key, _credential = signer(phone=PHONE)
    sign_in(client, key)
    stamps = {}
    for turn in (0, 90, 180, 270):
        original = sample_pdf(1, rotate=turn)
        upload(client, original)
        signed = sign_placed(client, outbox, PHONE, {"d0-page": "1", "d0-position": "bottom-right",
                                                     "signing_pin": PIN})[0]
        stamp = _stamp(signed, tmp_path, f"turned-{turn}", original)
        assert abs(stamp.width / stamp.height - pades.BOX_WIDTH / pades.BOX_HEIGHT) < 0.15, (turn, stamp.size)
        stamps[turn] = stamp
        # The appearance carries the counter-turn (none on an unturned page).
        reader = pades._reader(signed)
        appearance = reader.root["/AcroForm"]["/Fields"][0].get_object()["/AP"]["/N"].get_object()
        matrix = [float(v) for v in appearance.get("/Matrix", [1, 0, 0, 1, 0, 0])]
        assert matrix == list(pades.UPRIGHT_MATRIX.get(turn, (1, 0, 0, 1, 0, 0)))
    upright = stamps[0]
    for turn in (90, 180, 270):
        turned = stamps[turn].resize(upright.size)
        difference = ImageStat.Stat(ImageChops.difference(upright, turned)).mean[0]
        sideways = stamps[turn].rotate(90, expand=True).resize(upright.size)
        wrong = ImageStat.Stat(ImageChops.difference(upright, sideways)).mean[0]
        assert difference < wrong / 2, (turn, difference, wrong)


def test_the_stamp_prints_a_name_beyond_latin_1_letter_for_letter(signer, client, outbox, live_server, tmp_path):
    """A foreign resident's name (Polish, Czech letters) is drawn in the embedded font, each letter
    where it belongs: poppler reads the stamp back as the name, not as the "þÿ" and garbage the
    standard Helvetica made of it, nor letter-spaced as a wrongly scaled font would be."""
    key, _credential = signer(phone=PHONE, full_name="Łukasz Żółć Dvořák")
    sign_in(client, key)
    original = sample_pdf(1)
    upload(client, original)
    signed = sign_placed(client, outbox, PHONE, {"d0-page": "1", "d0-position": "bottom-right",
                                                 "signing_pin": PIN})[0]
    (tmp_path / "signed.pdf").write_bytes(signed)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "signed.pdf"), "-"], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    assert "Łukasz Żółć Dvořák" in text, text
    assert "þÿ" not in text
    # The box is the same size as ever, and the name fits in it.
    stamp = _stamp(signed, tmp_path, "foreign-name", original)
    assert abs(stamp.width / stamp.height - pades.BOX_WIDTH / pades.BOX_HEIGHT) < 0.15, stamp.size
