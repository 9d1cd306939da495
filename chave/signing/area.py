"""Signing PDFs in the personal area: a batch of uploaded documents and its steps.

A batch lives in a directory of its own under ``<data dir>/signing/area/<id>`` (the session keeps
only the id): the uploaded PDFs, then each one prepared for signing (pyHanko, :mod:`.pades`),
then signed. ``batch.json`` holds the names, each page's size and rotation, the placements, the
level asked for, the prepared digests and the signing request's process id — never a PIN, a code
or a token. Batches older than ``signing_area_keep_seconds`` are removed when a new one starts.

:func:`upload` → :func:`arrange` / :func:`place_at` (a corner of a page, or where the citizen clicked
on a page's image) → :func:`prepare` (placements + signing PIN: the code is sent, naming the documents)
→ :func:`sign` (the code: PAdES B-T, or B-LT / B-LTA) → the signed files.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import asdict, astuple, dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from chave import clock, policy

from . import pades, services
from .models import SigningCredential, SigningRequest

THUMBNAILS_PER_PAGE = 20
# Page images by the length of their longer side in pixels (pdftoppm -scale-to): small thumbnails,
# and the larger image the citizen clicks on (twice its shown size, sharp on phones). Memory and
# files stay small whatever the page's physical size (an A0 drawing renders no larger than A4).
IMAGE_PIXELS = {"thumbnail": 160, "view": 880}
# The clickable page image is shown within this many CSS pixels (it fits a 360-pixel phone); its
# width and height attributes come from the page's size, so a click maps back to points.
VIEW_WIDTH, VIEW_HEIGHT = 280, 400
CORNERS = ("bottom-left", "bottom-right", "top-left", "top-right")
POINT = "point"  # the box centred where the citizen clicked on the page image
MM_PER_POINT = 25.4 / 72


def _root() -> Path:
    return Path(settings.DATA_DIR) / "signing" / "area"


@dataclass
class Document:
    name: str
    pages: int
    page: int = 0  # 0: invisible
    x: float = 0  # the prepared box's lower-left corner (user-space points)
    y: float = 0
    prepared: dict = field(default_factory=dict)  # hex digests and offsets, see pades.Prepared
    signed: bool = False
    boxes: list = field(default_factory=list)  # per page: left, bottom, width, height, rotate (pades.PageBox)
    position: str = "bottom-right"  # one of CORNERS, or POINT
    point: list | None = None  # POINT's centre: fractions of the page as shown, from the left and the top

    def box(self, page: int) -> pades.PageBox:
        return pades.PageBox(*self.boxes[page - 1])

    def placement(self) -> pades.Placement:
        """Where the signature goes: the chosen corner or point of the chosen page, inside it."""
        if not self.page:
            return pades.Placement()
        box = self.box(self.page)
        if self.position == POINT and self.point:
            where = box.box_at(*self.point)
        else:
            where = box.corner(self.position if self.position in CORNERS else "bottom-right")
        return replace(where, page=self.page)


@dataclass(frozen=True)
class Shown:
    """A visible placement as the place page shows it: the box over the page image (CSS
    percentages, as text with a dot whatever the language) and its distance from the page's left
    and bottom edges in millimetres."""

    page: int
    left: str
    top: str
    width: str
    height: str
    left_mm: int
    bottom_mm: int


def shown(document: Document) -> Shown | None:
    """``document``'s visible placement as shown, or None for an invisible signature."""
    placement = document.placement()
    if not placement.page:
        return None
    box = document.box(placement.page)
    left, top, width, height = box.shown_rect(placement)
    shown_width, shown_height = box.shown_size
    return Shown(page=placement.page, left=f"{left * 100:.2f}", top=f"{top * 100:.2f}", width=f"{width * 100:.2f}",
                 height=f"{height * 100:.2f}", left_mm=round(left * shown_width * MM_PER_POINT),
                 bottom_mm=round((1 - top - height) * shown_height * MM_PER_POINT))


def view_size(document: Document, page: int) -> tuple[int, int]:
    """The clickable image's width and height in CSS pixels, in the page's proportions."""
    width, height = document.box(page).shown_size
    scale = min(VIEW_WIDTH / width, VIEW_HEIGHT / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass
class Batch:
    id: str
    citizen_id: int
    created_at: float
    level: str = "B-T"
    documents: list[Document] = field(default_factory=list)
    process_id: str = ""

    @property
    def directory(self) -> Path:
        return _root() / self.id

    def save(self) -> None:
        """Written whole under a name of its own, then renamed over ``batch.json``: a request that
        loads the batch meanwhile (the page's images, a second click) reads the old one or the new
        one, never half a file (which it would take for no batch at all)."""
        draft = self.directory / f"batch.json.{secrets.token_hex(4)}"
        draft.write_text(json.dumps(asdict(self)))
        os.replace(draft, self.directory / "batch.json")

    def path(self, index: int, kind: str) -> Path:
        return self.directory / f"{index}.{kind}.pdf"


def _clean_old() -> None:
    root = _root()
    if not root.exists():
        return
    cutoff = clock.now().timestamp() - policy.get("signing_area_keep_seconds")
    for directory in root.iterdir():
        try:
            data = json.loads((directory / "batch.json").read_text())
            old = data["created_at"] < cutoff
        except (OSError, ValueError, KeyError):
            # No readable batch (an upload still copying its files, or left broken): judged by
            # when the folder last changed, never removed under a citizen who is using it.
            try:
                old = directory.stat().st_mtime < cutoff
            except OSError:
                continue
        if old:
            shutil.rmtree(directory, ignore_errors=True)


def load(batch_id, citizen_id: int) -> Batch | None:
    """The citizen's batch, or None (unknown, someone else's, or removed)."""
    if not isinstance(batch_id, str) or not batch_id.isalnum():
        return None
    try:
        data = json.loads((_root() / batch_id / "batch.json").read_text())
    except (OSError, ValueError):
        return None
    if data.get("citizen_id") != citizen_id:
        return None
    data["documents"] = [Document(**d) for d in data["documents"]]
    return Batch(**data)


def upload(citizen_id: int, files: list[tuple[str, BinaryIO]], level: str) -> Batch:
    """Start a batch with ``files`` (name, a seekable binary file: read where needed and copied in
    chunks, never loaded whole); raises :class:`pades.PdfError` naming the file that is not a
    readable, unencrypted PDF."""
    _clean_old()
    batch = Batch(id=secrets.token_hex(16), citizen_id=citizen_id, created_at=clock.now().timestamp(),
                  level=level if level in pades.LEVELS else "B-T")
    documents = []
    for name, content in files:
        try:
            content.seek(0)
            boxes = pades.page_boxes(content)
        except pades.PdfError as e:
            raise pades.PdfError(Path(name).name) from e
        documents.append(Document(name=Path(name).name[:200] or "documento.pdf", pages=len(boxes), page=len(boxes),
                                  boxes=[list(astuple(b)) for b in boxes]))
    batch.directory.mkdir(parents=True, mode=0o700)
    for index, (_name, content) in enumerate(files):
        content.seek(0)
        with open(batch.path(index, "original"), "wb") as original:
            shutil.copyfileobj(content, original, pades.CHUNK)
    batch.documents = documents
    batch.save()
    return batch


def page_image(batch: Batch, index: int, page: int, kind: str = "thumbnail") -> bytes | None:
    """A PNG of any page of a document (poppler's pdftoppm, the crop box as viewers show it, turned
    by the page's rotation), ``kind`` "thumbnail" or "view" (see IMAGE_PIXELS), made once; None for
    a document or page that does not exist or cannot be drawn."""
    if not (0 <= index < len(batch.documents)) or not (1 <= page <= batch.documents[index].pages):
        return None
    png = batch.directory / f"{index}-page{page}-{kind}.png"
    if not png.exists():
        # Rendered under a name of its own, then renamed: a second request never reads half a file.
        target = batch.directory / f"{index}-page{page}-{kind}.{secrets.token_hex(4)}"
        try:
            subprocess.run(["pdftoppm", "-png", "-singlefile", "-cropbox", "-scale-to", str(IMAGE_PIXELS[kind]),
                            "-f", str(page), "-l", str(page), str(batch.path(index, "original")), str(target)],
                           check=True, capture_output=True, timeout=60)
            os.replace(f"{target}.png", png)
        except (subprocess.SubprocessError, OSError):  # a page poppler cannot draw has no image
            return None
    return png.read_bytes()


def arrange(batch: Batch, index: int, *, page: int, position: str) -> None:
    """Put document ``index``'s signature on ``page`` (0: invisible) at ``position`` (a corner, or
    POINT: the point chosen last); the caller saves the batch."""
    document = batch.documents[index]
    document.page = page
    document.position = position if position in CORNERS or (position == POINT and document.point) else "bottom-right"


def place_at(batch: Batch, index: int, *, page: int, fx: float, fy: float) -> None:
    """Centre document ``index``'s signature on fractions ``fx`` (from the left) and ``fy`` (from
    the top) of ``page`` as shown; the box is kept inside the page. The caller saves the batch."""
    document = batch.documents[index]
    document.page, document.position, document.point = page, POINT, [fx, fy]


def prepare(batch: Batch, credential: SigningCredential, *, pin: str, ip: str | None) -> services.Started:
    """Reserve each signature where the documents' placements say, then open the signing request
    (signing PIN first; the code names the documents). Raises :class:`pades.PdfError` for a
    document pyHanko cannot sign."""
    cert = services.certificate(credential)
    digests = []
    for index, document in enumerate(batch.documents):
        placement = document.placement()
        prepared = pades.prepare_file(batch.path(index, "original"), batch.path(index, "prepared"), cert,
                                      placement=placement, signer_name=credential.citizen.full_name)
        document.page, document.x, document.y = placement.page, placement.x, placement.y
        document.prepared = {
            "document_digest": prepared.document_digest.hex(), "start": prepared.reserved_region_start,
            "end": prepared.reserved_region_end, "signed_attrs": prepared.signed_attrs.hex(),
            "to_sign": prepared.to_sign.hex(), "certificate": credential.serial_number,
        }
        digests.append(prepared.to_sign)
    hashes = [base64.b64encode(d).decode() for d in digests]
    started = services.start_request(credential, via=SigningRequest.Via.AREA, documents=[d.name for d in batch.documents],
                                     hashes=hashes, pin=pin, ip=ip)
    if started.ok:
        batch.process_id = started.request.process_id
    batch.save()
    return started


def sign(batch: Batch, credential: SigningCredential, code: str, *, ip: str | None) -> services.Authorised:
    """Check the code, sign every prepared document in the HSM and finish it (B-T, then the
    level asked for). Returns the authorisation's outcome; the files are there when it is ok."""
    request = services.find_request(batch.process_id, via=SigningRequest.Via.AREA)
    if request is None or request.credential_id != credential.pk:
        return services.Authorised(False, "not_pending")
    result = services.authorise(request, code=code, ip=ip)
    if not result.ok:
        return result
    signed = services.sign_hashes(credential, result.sad, request.hashes, ip=ip)
    if not signed.ok:
        return services.Authorised(False, signed.reason)
    for index, (document, signature) in enumerate(zip(batch.documents, signed.signatures, strict=True)):
        p = document.prepared
        # The certificate the signed attributes name: the one current when the document was
        # prepared, though a renewal may have re-issued it since (the same key).
        cert = services.certificate_by_serial(credential, p.get("certificate", "")) or services.certificate(credential)
        prepared = pades.Prepared(
            document_digest=bytes.fromhex(p["document_digest"]), reserved_region_start=p["start"],
            reserved_region_end=p["end"], signed_attrs=bytes.fromhex(p["signed_attrs"]),
            to_sign=bytes.fromhex(p["to_sign"]))
        pades.finish_file(batch.path(index, "prepared"), batch.path(index, "signed"), prepared, cert, signature,
                          batch.level)
        document.signed = True
    batch.save()
    return result
