"""PAdES signatures with pyHanko's interrupted ("remote") signing flow, and validation reports.

:func:`prepare` adds the signature field (visible on a page at a position, or invisible) and
reserves the signature, and returns the hash the citizen's HSM key must sign (that of the CMS
signed attributes) with the state to finish from; :func:`finish` embeds the CMS with that
signature and a signature time-stamp (PAdES baseline B-T); :func:`extend` adds validation data
(B-LT) and a document time-stamp (B-LTA). All three work on the document in place, in a file
opened for reading and writing (or a ``BytesIO``): each increment is appended to it, the
signature written into its reserved place, and the byte range read and hashed once, in
``CHUNK`` pieces — a large PDF is neither held in memory nor copied by Python. :func:`report` validates any signed PDF with pyHanko
against the signing PKI's trust roots. :func:`page_boxes` reads each page's size and rotation,
so that a visible signature box lands where the citizen put it and stays inside the page. No PDF,
CMS or ASN.1 is written by hand here.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils.translation import gettext as _
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.attributes import SigningCertificateV2Provider
from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.dss import async_add_validation_info
from pyhanko_certvalidator import ValidationContext
from pyhanko.stamp import TextStamp, TextStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

from chave import clock, formats

from . import pki
from .stamp_font import DEJAVU_SANS, StampFont

MD = "sha256"
CHUNK = 1024 * 1024  # bytes pyHanko reads and hashes at a time while signing
LEVELS = ("B-T", "B-LT", "B-LTA")
# Page-space size of a visible signature box (points).
BOX_WIDTH, BOX_HEIGHT = 200, 60
# A box put in a corner keeps this far from both edges (points).
CORNER_MARGIN = 40


# Page attributes a page takes from its ancestors in the page tree when it has none of its own.
INHERITED = ("/MediaBox", "/CropBox", "/Rotate")


class PdfError(ValueError):
    """The file is not a PDF pyHanko can sign or read (damaged, encrypted, not a PDF)."""


@dataclass(frozen=True)
class Placement:
    """Where the signature shows: ``page`` (1-based) and the box's lower-left corner and size in
    the page's user space (points; see :class:`PageBox`); ``page`` 0 means an invisible signature."""

    page: int = 0
    x: float = 0
    y: float = 0
    width: float = BOX_WIDTH
    height: float = BOX_HEIGHT


@dataclass(frozen=True)
class PageBox:
    """A page as viewers show it: its crop box (within the media box) in user-space points and its
    ``/Rotate`` (clockwise, 0, 90, 180 or 270). A page image (pdftoppm ``-cropbox``) is this box
    turned by ``rotate``: fractions of the image (from its top-left) map to user space and back."""

    left: float
    bottom: float
    width: float
    height: float
    rotate: int = 0

    @property
    def shown_size(self) -> tuple[float, float]:
        """Width and height in points as the page is shown (turned by ``rotate``)."""
        return (self.height, self.width) if self.rotate in (90, 270) else (self.width, self.height)

    def to_user(self, fx: float, fy: float) -> tuple[float, float]:
        """The user-space point at fractions ``fx`` (from the left) and ``fy`` (from the top) of
        the page as shown."""
        right, top = self.left + self.width, self.bottom + self.height
        return {
            0: (self.left + fx * self.width, top - fy * self.height),
            90: (self.left + fy * self.width, self.bottom + fx * self.height),
            180: (right - fx * self.width, self.bottom + fy * self.height),
            270: (right - fy * self.width, top - fx * self.height),
        }[self.rotate]

    def to_shown(self, x: float, y: float) -> tuple[float, float]:
        """Inverse of :meth:`to_user`: fractions (from the left, from the top) of the page as shown."""
        u, v = (x - self.left) / self.width, (y - self.bottom) / self.height
        return {0: (u, 1 - v), 90: (v, u), 180: (1 - u, v), 270: (1 - v, 1 - u)}[self.rotate]

    def box_at(self, fx: float, fy: float) -> Placement:
        """The signature box (without its page number) centred on fractions ``fx``, ``fy`` of the
        page as shown, moved inside the page where it would stick out; a page smaller than the box
        gets a box of its own size."""
        # The box reads upright as shown: on a turned page its user-space sides are swapped.
        box_width, box_height = (BOX_HEIGHT, BOX_WIDTH) if self.rotate in (90, 270) else (BOX_WIDTH, BOX_HEIGHT)
        width, height = min(box_width, self.width), min(box_height, self.height)
        cx, cy = self.to_user(min(max(fx, 0.0), 1.0), min(max(fy, 0.0), 1.0))
        x = min(max(cx - width / 2, self.left), self.left + self.width - width)
        y = min(max(cy - height / 2, self.bottom), self.bottom + self.height - height)
        return Placement(x=round(x, 2), y=round(y, 2), width=width, height=height)

    def corner(self, name: str) -> Placement:
        """The box in a corner of the page as shown (``bottom-left``, ``top-right``, ...), ``CORNER_MARGIN``
        points from both edges."""
        vertical, horizontal = name.split("-")
        shown_width, shown_height = self.shown_size
        fx = (CORNER_MARGIN + BOX_WIDTH / 2) / shown_width
        fy = (CORNER_MARGIN + BOX_HEIGHT / 2) / shown_height
        return self.box_at(fx if horizontal == "left" else 1 - fx, fy if vertical == "top" else 1 - fy)

    def shown_rect(self, placement: Placement) -> tuple[float, float, float, float]:
        """``placement``'s box as fractions of the page as shown: left, top, width, height."""
        corners = [self.to_shown(x, y) for x in (placement.x, placement.x + placement.width)
                   for y in (placement.y, placement.y + placement.height)]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


# The appearance's /Matrix that turns it against the page's /Rotate (clockwise), so that it reads
# upright where the page is shown turned (PDF 32000-1, 12.5.5: the turned BBox fills the Rect).
UPRIGHT_MATRIX = {90: (0, 1, -1, 0, 0, 0), 180: (-1, 0, 0, -1, 0, 0), 270: (0, -1, 1, 0, 0, 0)}


class _UprightStamp(TextStamp):
    def __init__(self, *, turn: int, **kwargs):
        super().__init__(**kwargs)
        self.turn = turn

    def as_form_xobject(self) -> generic.StreamObject:
        xobject = super().as_form_xobject()
        if self.turn in UPRIGHT_MATRIX:
            xobject["/Matrix"] = generic.ArrayObject(generic.NumberObject(v) for v in UPRIGHT_MATRIX[self.turn])
        return xobject


# Chave's stamp: the citizen's language, the site's blue as a thin frame, a plain sans-serif that
# prints every name (DejaVu Sans embedded: chave/signing/stamp_font.py), no background art.
STAMP_FONT_SIZE = 8
STAMP_FONT = StampFont(DEJAVU_SANS, font_size=STAMP_FONT_SIZE)
STAMP_BLUE = (0.043, 0.325, 0.580)  # #0b5394, the site's accent


def stamp_text() -> str:
    """The stamp's words in the active language; pyHanko fills ``signer`` and ``when``."""
    return _("Digitally signed by\n%(signer)s\non %(when)s\nwith the Digital Mobile Key")


@dataclass(frozen=True)
class UprightStampStyle(TextStampStyle):
    """Chave's signature stamp, laid out for the page as shown and turned against the page's
    ``/Rotate`` (``turn``), so that its text reads upright on a turned page too."""

    turn: int = 0

    @classmethod
    def for_page(cls, turn: int) -> UprightStampStyle:
        return cls(stamp_text=stamp_text(), background=None, border_width=1, border_color=STAMP_BLUE, turn=turn,
                   text_box_style=TextBoxStyle(font=STAMP_FONT, font_size=STAMP_FONT_SIZE,
                                               leading=10, text_color=(0.1, 0.1, 0.1)))

    def create_stamp(self, writer, box: layout.BoxConstraints, text_params: dict) -> TextStamp:
        if self.turn in (90, 270):  # the field's Rect is the box turned: lay the stamp out as shown
            box = layout.BoxConstraints(width=box.height, height=box.width)
        return _UprightStamp(turn=self.turn, writer=writer, style=self, box=box, text_params=text_params)


@dataclass
class Prepared:
    """What signing must keep between the hash and the signature (no secrets), besides the
    document itself (with the reserved, still empty signature), which stays where it was written."""

    document_digest: bytes
    reserved_region_start: int
    reserved_region_end: int
    signed_attrs: bytes  # DER of the CMS signed attributes
    to_sign: bytes  # the digest the HSM signs: SHA-256 of the signed attributes


def _run(coroutine):
    """Run pyHanko's coroutine to completion on a loop of its own. Not ``asyncio.run``: on Python
    3.11 its SIGINT handling takes the repr of the finished task, result included, and the repr of
    a whole PDF or of ASN.1 structures cost more than the signature itself (seconds at 50 MB)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def _asn1(cert) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(pki.der(cert))


@functools.lru_cache(maxsize=256)
def _signing_certificate_v2(certificate_der: bytes) -> bytes:
    """DER of the ESS signing-certificate-v2 attribute (RFC 5035) for the certificate, as pyHanko
    makes it."""
    value = as_signing_certificate_v2(asn1_x509.Certificate.load(certificate_der))
    return simple_cms_attribute("signing_certificate_v2", value).dump()


class _EncodedSigningCertificate(SigningCertificateV2Provider):
    """pyHanko's signing-certificate-v2 attribute, encoded once per certificate and given parsed
    from its DER: asn1crypto takes milliseconds each time to encode the structure it builds around
    the issuer's name, more than the whole rest of a signature's fixed cost (issue 17, goal 6).
    The bytes are the same (tests compare the signed attributes with pyHanko's own)."""

    async def get_attribute(self, dry_run=False) -> cms.CMSAttribute:
        return cms.CMSAttribute.load(_signing_certificate_v2(self.signing_cert.dump()))


class _Signer(signers.ExternalSigner):
    def _signed_attr_providers(self, *args, **kwargs):
        for provider in super()._signed_attr_providers(*args, **kwargs):
            if type(provider) is SigningCertificateV2Provider:
                provider = _EncodedSigningCertificate(provider.signing_cert)
            yield provider


def _external_signer(certificate, signature: bytes | None = None) -> signers.ExternalSigner:
    """pyHanko's signer for the citizen's key in the HSM: RSA (PKCS#1 v1.5) or ECDSA, as the
    certificate's key is; until the HSM has signed, a placeholder of the signature's size."""
    m = pki.material()
    key = certificate.public_key()
    rsa_key = isinstance(key, rsa.RSAPublicKey)
    return _Signer(
        signing_cert=_asn1(certificate),
        cert_registry=SimpleCertificateStore.from_certs([_asn1(c) for c in m.chain]),
        signature_value=signature if signature is not None else bytes(key.key_size // 8 if rsa_key else 80),
        signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa" if rsa_key else "sha256_ecdsa"}),
    )


def _reader(pdf: bytes | BinaryIO) -> PdfFileReader:
    """pyHanko's reader over ``pdf``: the bytes, or a seekable binary file, which it reads where
    needed rather than whole."""
    reader = PdfFileReader(io.BytesIO(pdf) if isinstance(pdf, bytes | bytearray) else pdf, strict=False)
    if reader.encrypted:
        raise PdfError("encrypted")
    return reader


def _rectangle(value) -> tuple[float, float, float, float] | None:
    """A PDF rectangle as (left, bottom, right, top), whatever corners it names; None if unusable."""
    try:
        numbers = [float(v.get_object() if isinstance(v, generic.IndirectObject) else v) for v in value.get_object()]
    except (TypeError, ValueError, AttributeError):
        return None
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        return None
    (x0, y0, x1, y1) = numbers
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _page_box(attributes: dict) -> PageBox:
    media = _rectangle(attributes["/MediaBox"]) if "/MediaBox" in attributes else None
    media = media or (0.0, 0.0, 612.0, 792.0)  # what viewers assume for a page without one (US Letter)
    crop = _rectangle(attributes["/CropBox"]) if "/CropBox" in attributes else None
    if crop is not None:  # viewers show the crop box clipped to the media box
        crop = (max(crop[0], media[0]), max(crop[1], media[1]), min(crop[2], media[2]), min(crop[3], media[3]))
    left, bottom, right, top = crop if crop and crop[0] < crop[2] and crop[1] < crop[3] else media
    if right - left < 1 or top - bottom < 1:
        raise PdfError("empty page")
    try:
        rotate = int(attributes.get("/Rotate", 0)) % 360
    except (TypeError, ValueError):
        rotate = 0
    return PageBox(left, bottom, right - left, top - bottom, rotate if rotate in (0, 90, 180, 270) else 0)


def page_boxes(pdf: bytes | BinaryIO | PdfFileReader) -> list[PageBox]:
    """Every page's :class:`PageBox`, in order (media box, crop box and rotation inherited down the
    page tree as the PDF specification says); ``pdf`` is the bytes, a seekable binary file or a
    reader already open on it. Raises :class:`PdfError`."""
    try:
        reader = pdf if isinstance(pdf, PdfFileReader) else _reader(pdf)
        boxes: list[PageBox] = []
        seen: set = set()
        # Depth first, kids in order; each entry carries the attributes its ancestors pass down.
        stack = [(reader.root.raw_get("/Pages"), {})]
        while stack:
            reference, inherited = stack.pop()
            if isinstance(reference, generic.IndirectObject):
                if reference.reference in seen:
                    raise PdfError("page tree loop")
                seen.add(reference.reference)
            node = reference.get_object()
            attributes = {**inherited, **{k: node[k] for k in INHERITED if k in node}}
            if node.get("/Type") == "/Pages" or "/Kids" in node:
                stack.extend((kid, attributes) for kid in reversed(node["/Kids"]))
            else:
                boxes.append(_page_box(attributes))
    except PdfError:
        raise
    except Exception as e:  # pyHanko raises many kinds for damaged input
        raise PdfError(str(e)) from e
    if not boxes:
        raise PdfError("no pages")
    return boxes


def _field_name(reader: PdfFileReader) -> str:
    taken = {name for name, _value, _ref in fields.enumerate_sig_fields(reader)}
    n = 1
    while f"Chave{n}" in taken:
        n += 1
    return f"Chave{n}"


def prepare(document: BinaryIO, certificate, *, placement: Placement = Placement(),
            signer_name: str = "") -> Prepared:
    """Reserve a PAdES signature for ``certificate``'s key in the PDF ``document`` (a seekable
    binary file opened for reading and writing, e.g. ``open(path, "r+b")``, or a ``BytesIO``): the
    incremental update with the field and the empty signature is appended to it in place. Raises
    :class:`PdfError`."""
    try:
        # In place: pyHanko parses the document from the file (reading what it needs), appends the
        # update at its end, then hashes the byte range reading the file in CHUNK pieces: the
        # document is read once, never copied to a new output nor held whole in memory.
        writer = IncrementalPdfFileWriter(document, strict=False)
        if writer.prev.encrypted:
            raise PdfError("encrypted")
        name = _field_name(writer.prev)
        spec, style = None, None
        if placement.page:
            x, y = float(placement.x), float(placement.y)
            spec = fields.SigFieldSpec(name, on_page=placement.page - 1,
                                       box=(x, y, x + float(placement.width), y + float(placement.height)))
            style = UprightStampStyle.for_page(page_boxes(writer.prev)[placement.page - 1].rotate)
        signer = _external_signer(certificate)
        pdf_signer = signers.PdfSigner(
            signers.PdfSignatureMetadata(field_name=name, md_algorithm=MD, subfilter=fields.SigSeedSubFilter.PADES,
                                         name=signer_name or None),
            signer=signer, new_field_spec=spec, stamp_style=style,
        )
        text = {"when": formats.moment(clock.now())} if style else None

        async def run():
            prep_digest, _tbs, _output = await pdf_signer.async_digest_doc_for_signing(
                writer, bytes_reserved=16384, in_place=True, chunk_size=CHUNK, appearance_text_params=text)
            attrs = await signer.signed_attrs(prep_digest.document_digest, MD, use_pades=True)
            return prep_digest, attrs

        prep_digest, attrs = _run(run())
    except PdfError:
        raise
    except Exception as e:
        raise PdfError(str(e)) from e
    encoded = attrs.dump()
    return Prepared(
        document_digest=prep_digest.document_digest,
        reserved_region_start=prep_digest.reserved_region_start, reserved_region_end=prep_digest.reserved_region_end,
        signed_attrs=encoded, to_sign=hashlib.sha256(encoded).digest(),
    )


def finish(document: BinaryIO, prepared: Prepared, certificate, signature: bytes) -> None:
    """Embed the CMS with the HSM's ``signature`` and a signature time-stamp (PAdES B-T) in
    ``document``, the file :func:`prepare` wrote (opened for reading and writing), in place: only
    the reserved region is written, nothing is read or hashed again."""
    signer = _external_signer(certificate, signature)
    attrs = cms.CMSAttributes.load(prepared.signed_attrs)

    async def run() -> None:
        sig_cms = await signer.async_sign_prescribed_attributes(MD, signed_attrs=attrs, timestamper=pki.timestamper())
        await PdfTBSDocument.async_finish_signing(
            document, prepared_digest=PreparedByteRangeDigest(
                document_digest=prepared.document_digest, reserved_region_start=prepared.reserved_region_start,
                reserved_region_end=prepared.reserved_region_end),
            signature_cms=sig_cms, chunk_size=CHUNK)

    _run(run())


def prepare_file(source: Path, target: Path, certificate, *, placement: Placement = Placement(),
                 signer_name: str = "") -> Prepared:
    """:func:`prepare` on a copy of the PDF at ``source`` written at ``target``; the copy is the
    kernel's (``copy_file_range`` or ``sendfile``), not read into Python."""
    shutil.copyfile(source, target)
    with open(target, "r+b") as document:
        return prepare(document, certificate, placement=placement, signer_name=signer_name)


def finish_file(path: Path, target: Path, prepared: Prepared, certificate, signature: bytes,
                level: str = "B-T") -> None:
    """:func:`finish` (then :func:`extend` to ``level``) the file :func:`prepare_file` wrote at
    ``path``, in place, then rename it ``target``: a file at ``target`` is never half-written."""
    with open(path, "r+b") as document:
        finish(document, prepared, certificate, signature)
        extend(document, level)
    os.replace(path, target)


def validation_context(*, fetch: bool = True) -> ValidationContext:
    m = pki.material()
    return ValidationContext(trust_roots=[_asn1(m.root)], other_certs=[_asn1(m.ca)], allow_fetching=fetch,
                             revocation_mode="soft-fail")


def extend(document: BinaryIO, level: str) -> None:
    """A B-T ``document`` (a file opened for reading and writing) → ``B-LT`` (certificates, OCSP
    responses and CRLs of the signature and its time-stamp in the DSS) or ``B-LTA`` (that, then a
    document time-stamp), each an increment appended in place."""
    if level == "B-T":
        return
    context = validation_context()

    async def run() -> None:
        try:
            document.seek(0)
            signature = PdfFileReader(document).embedded_signatures[-1]
            await async_add_validation_info(signature, context, in_place=True, chunk_size=CHUNK)
            if level == "B-LTA":
                document.seek(0)
                await signers.PdfTimeStamper(pki.timestamper()).async_timestamp_pdf(
                    IncrementalPdfFileWriter(document), MD, validation_context=context, in_place=True,
                    chunk_size=CHUNK)
        finally:  # the context's HTTP session (OCSP, CRLs) is closed in the loop that opened it
            await context.aclose()

    _run(run())


# --- Validation reports ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureReport:
    field: str
    intact: bool
    valid: bool
    trusted: bool
    signer: str
    signer_name: str  # the certificate's common name: the person, as the verdict names them
    signer_serial: str
    signing_time: str
    timestamp: str  # the signature time-stamp's time, empty without one
    timestamp_valid: bool
    certificate_status: str  # good | revoked | unknown (at signing time)
    coverage: str  # entire_file | entire_revision | ...
    changes: str  # none | form_filling | annotations | other
    level: str  # B-B | B-T | B-LT | B-LTA
    summary: str


@dataclass(frozen=True)
class Report:
    signatures: list[SignatureReport]
    document_timestamps: int


def _is_doc_timestamp(signature) -> bool:
    try:
        return signature.sig_object.get("/Type") == "/DocTimeStamp"
    except Exception:  # a damaged signature dictionary
        return False


def _unreadable_signature(signature, error: Exception) -> SignatureReport:
    """The report of a signature pyHanko could not even validate (damaged CMS, byte range...)."""
    return SignatureReport(
        field=str(signature.field_name), intact=False, valid=False, trusted=False, signer="", signer_name="",
        signer_serial="",
        signing_time="", timestamp="", timestamp_valid=False, certificate_status="unknown", coverage="unclear",
        changes="unclear", level="", summary=f"INVALID: {str(error)[:200]}",
    )


def _level(reader, index: int, has_timestamp: bool, doc_timestamps_after: int) -> str:
    if not has_timestamp:
        return "B-B"
    dss = reader.root.get("/DSS")
    if dss is None:
        return "B-T"
    return "B-LTA" if doc_timestamps_after else "B-LT"


def report(pdf: bytes | BinaryIO, *, fetch: bool = True) -> Report:
    """Validate every signature of ``pdf`` (the bytes, or a seekable binary file, which is read
    where needed rather than loaded whole) against the signing PKI's trust roots. Raises
    :class:`PdfError` for a file that is not a readable PDF."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf) if isinstance(pdf, bytes | bytearray) else pdf, strict=False)
        embedded = list(reader.embedded_signatures)
    except Exception as e:
        raise PdfError(str(e)) from e
    context = validation_context(fetch=fetch)

    async def run():
        try:
            return await validate_all()
        finally:  # the context's HTTP session (OCSP, CRLs) is closed in the loop that opened it
            await context.aclose()

    async def validate_all():
        results = []
        doc_ts = 0
        for index, signature in enumerate(embedded):
            try:
                if _is_doc_timestamp(signature):
                    doc_ts += 1
                    await async_validate_pdf_timestamp(signature, validation_context=context)
                    continue
                results.append((index, signature, await async_validate_pdf_signature(
                    signature, signer_validation_context=context, ts_validation_context=context)))
            except Exception as e:  # a damaged signature is reported as not valid, not as a crash
                if not _is_doc_timestamp(signature):
                    results.append((index, signature, e))
        return results, doc_ts

    results, doc_ts = _run(run())
    reports = []
    for index, signature, status in results:
        if isinstance(status, Exception):
            reports.append(_unreadable_signature(signature, status))
            continue
        later_doc_ts = sum(1 for s in embedded[index + 1:] if _is_doc_timestamp(s))
        ts = status.timestamp_validity
        revocation = "unknown"
        if status.trusted:
            revocation = "good"
        elif status.revocation_details is not None:
            revocation = "revoked"
        changes = "none"
        if status.modification_level is not None and status.modification_level.value > 0:
            changes = status.modification_level.name.lower()
        cert = status.signing_cert
        reports.append(SignatureReport(
            field=signature.field_name, intact=bool(status.intact), valid=bool(status.valid),
            trusted=bool(status.trusted), signer=cert.subject.human_friendly if cert else "",
            signer_name=cert.subject.native.get("common_name", "") if cert else "",
            signer_serial=cert.subject.native.get("serial_number", "") if cert else "",
            signing_time=status.signer_reported_dt.isoformat() if status.signer_reported_dt else "",
            timestamp=ts.timestamp.isoformat() if ts else "", timestamp_valid=bool(ts and ts.valid and ts.intact),
            certificate_status=revocation,
            coverage=status.coverage.name.lower() if status.coverage else "unclear", changes=changes,
            level=_level(reader, index, ts is not None, later_doc_ts), summary=status.summary(),
        ))
    return Report(reports, doc_ts)
