"""Signing PDFs in the personal area: a batch of uploaded documents and its steps.

A batch lives in a directory of its own under ``<data dir>/signing/area/<id>`` (the session keeps
only the id): the uploaded PDFs, then each one prepared for signing (pyHanko, :mod:`.pades`),
then signed. ``batch.json`` holds the names, the placements, the level asked for, the prepared
digests and the signing request's process id — never a PIN, a code or a token. Batches older than
``signing_area_keep_seconds`` are removed when a new one starts.

:func:`upload` → :func:`prepare` (placements + signing PIN: the code is sent, naming the documents)
→ :func:`sign` (the code: PAdES B-T, or B-LT / B-LTA) → the signed files.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings

from chave import clock, policy

from . import pades, services
from .models import SigningCredential, SigningRequest

PAGE_DPI = 30
MAX_THUMBNAIL_PAGES = 20


def _root() -> Path:
    return Path(settings.DATA_DIR) / "signing" / "area"


@dataclass
class Document:
    name: str
    pages: int
    page: int = 0  # 0: invisible
    x: float = 0
    y: float = 0
    prepared: dict = field(default_factory=dict)  # hex digests and offsets, see pades.Prepared
    signed: bool = False


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
        (self.directory / "batch.json").write_text(json.dumps(asdict(self)))

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
            old = True
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


def upload(citizen_id: int, files: list[tuple[str, bytes]], level: str) -> Batch:
    """Start a batch with ``files`` (name, content); raises :class:`pades.PdfError` naming the
    file that is not a readable, unencrypted PDF."""
    _clean_old()
    batch = Batch(id=secrets.token_hex(16), citizen_id=citizen_id, created_at=clock.now().timestamp(),
                  level=level if level in pades.LEVELS else "B-T")
    documents = []
    for name, content in files:
        try:
            documents.append(Document(name=Path(name).name[:200] or "documento.pdf", pages=pades.page_count(content)))
        except pades.PdfError as e:
            raise pades.PdfError(Path(name).name) from e
    batch.directory.mkdir(parents=True, mode=0o700)
    for index, (_name, content) in enumerate(files):
        batch.path(index, "original").write_bytes(content)
    batch.documents = documents
    batch.save()
    return batch


def thumbnail(batch: Batch, index: int, page: int) -> bytes | None:
    """A PNG of one page (poppler's pdftoppm), made once."""
    if not (0 <= index < len(batch.documents)) or not (1 <= page <= min(batch.documents[index].pages,
                                                                          MAX_THUMBNAIL_PAGES)):
        return None
    target = batch.directory / f"{index}-page{page}"
    png = batch.directory / f"{index}-page{page}.png"
    if not png.exists():
        subprocess.run(["pdftoppm", "-png", "-singlefile", "-r", str(PAGE_DPI), "-f", str(page), "-l", str(page),
                        str(batch.path(index, "original")), str(target)], check=True, capture_output=True, timeout=60)
    return png.read_bytes()


def prepare(batch: Batch, credential: SigningCredential, placements: list[pades.Placement], *, pin: str,
            ip: str | None) -> services.Started:
    """Reserve each signature, then open the signing request (signing PIN first; the code names
    the documents). Raises :class:`pades.PdfError` for a document pyHanko cannot sign."""
    cert = services.certificate(credential)
    digests = []
    for index, (document, placement) in enumerate(zip(batch.documents, placements, strict=True)):
        prepared = pades.prepare(batch.path(index, "original").read_bytes(), cert, placement=placement,
                                 signer_name=credential.citizen.full_name)
        batch.path(index, "prepared").write_bytes(prepared.document)
        document.page, document.x, document.y = placement.page, placement.x, placement.y
        document.prepared = {
            "document_digest": prepared.document_digest.hex(), "start": prepared.reserved_region_start,
            "end": prepared.reserved_region_end, "signed_attrs": prepared.signed_attrs.hex(),
            "to_sign": prepared.to_sign.hex(),
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
    cert = services.certificate(credential)
    for index, (document, signature) in enumerate(zip(batch.documents, signed.signatures, strict=True)):
        p = document.prepared
        prepared = pades.Prepared(
            document=batch.path(index, "prepared").read_bytes(), document_digest=bytes.fromhex(p["document_digest"]),
            reserved_region_start=p["start"], reserved_region_end=p["end"],
            signed_attrs=bytes.fromhex(p["signed_attrs"]), to_sign=bytes.fromhex(p["to_sign"]))
        output = pades.extend(pades.finish(prepared, cert, signature), batch.level)
        batch.path(index, "signed").write_bytes(output)
        document.signed = True
    batch.save()
    return result
