"""PAdES signatures with pyHanko's interrupted ("remote") signing flow, and validation reports.

:func:`prepare` adds the signature field (visible on a page at a position, or invisible) and
reserves the signature, and returns the hash the citizen's HSM key must sign (that of the CMS
signed attributes) with the state to finish from; :func:`finish` embeds the CMS with that
signature and a signature time-stamp (PAdES baseline B-T); :func:`extend` adds validation data
(B-LT) and a document time-stamp (B-LTA). :func:`report` validates any signed PDF with pyHanko
against the signing PKI's trust roots. No PDF, CMS or ASN.1 is written by hand here.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass, field

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.dss import async_add_validation_info
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from . import pki

MD = "sha256"
LEVELS = ("B-T", "B-LT", "B-LTA")
# Page-space size of a visible signature box (points).
BOX_WIDTH, BOX_HEIGHT = 200, 60


class PdfError(ValueError):
    """The file is not a PDF pyHanko can sign or read (damaged, encrypted, not a PDF)."""


@dataclass(frozen=True)
class Placement:
    """Where the signature shows: ``page`` (1-based) and the box's lower-left corner in points
    from the page's lower-left; ``page`` 0 means an invisible signature."""

    page: int = 0
    x: float = 0
    y: float = 0


@dataclass
class Prepared:
    """What signing must keep between the hash and the signature (no secrets)."""

    document: bytes = field(repr=False)  # the PDF with the reserved, still empty signature
    document_digest: bytes
    reserved_region_start: int
    reserved_region_end: int
    signed_attrs: bytes  # DER of the CMS signed attributes
    to_sign: bytes  # the digest the HSM signs: SHA-256 of the signed attributes


def _asn1(cert) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(pki.der(cert))


def _external_signer(certificate, signature: bytes | None = None) -> signers.ExternalSigner:
    m = pki.material()
    return signers.ExternalSigner(
        signing_cert=_asn1(certificate),
        cert_registry=SimpleCertificateStore.from_certs([_asn1(c) for c in m.chain]),
        signature_value=signature if signature is not None else bytes(80),
        signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
    )


def page_count(pdf: bytes) -> int:
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        if reader.encrypted:
            raise PdfError("encrypted")
        return int(reader.root["/Pages"]["/Count"])
    except PdfError:
        raise
    except Exception as e:  # pyHanko raises many kinds for damaged input
        raise PdfError(str(e)) from e


def _field_name(reader: PdfFileReader) -> str:
    taken = {name for name, _value, _ref in fields.enumerate_sig_fields(reader)}
    n = 1
    while f"Chave{n}" in taken:
        n += 1
    return f"Chave{n}"


def prepare(pdf: bytes, certificate, *, placement: Placement = Placement(), signer_name: str = "") -> Prepared:
    """Reserve a PAdES signature in ``pdf`` for ``certificate``'s key. Raises :class:`PdfError`."""
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        if writer.prev.encrypted:
            raise PdfError("encrypted")
        name = _field_name(writer.prev)
        spec = None
        if placement.page:
            x, y = float(placement.x), float(placement.y)
            spec = fields.SigFieldSpec(name, on_page=placement.page - 1,
                                       box=(int(x), int(y), int(x + BOX_WIDTH), int(y + BOX_HEIGHT)))
        signer = _external_signer(certificate)
        pdf_signer = signers.PdfSigner(
            signers.PdfSignatureMetadata(field_name=name, md_algorithm=MD, subfilter=fields.SigSeedSubFilter.PADES,
                                         name=signer_name or None),
            signer=signer, new_field_spec=spec,
        )

        async def run():
            prep_digest, _tbs, output = await pdf_signer.async_digest_doc_for_signing(
                writer, bytes_reserved=16384)
            attrs = await signer.signed_attrs(prep_digest.document_digest, MD, use_pades=True)
            return prep_digest, attrs, output

        prep_digest, attrs, output = asyncio.run(run())
    except PdfError:
        raise
    except Exception as e:
        raise PdfError(str(e)) from e
    encoded = attrs.dump()
    return Prepared(
        document=output.getvalue(), document_digest=prep_digest.document_digest,
        reserved_region_start=prep_digest.reserved_region_start, reserved_region_end=prep_digest.reserved_region_end,
        signed_attrs=encoded, to_sign=hashlib.sha256(encoded).digest(),
    )


def finish(prepared: Prepared, certificate, signature: bytes) -> bytes:
    """Embed the CMS with the HSM's ``signature`` and a signature time-stamp: PAdES B-T."""
    signer = _external_signer(certificate, signature)
    attrs = cms.CMSAttributes.load(prepared.signed_attrs)

    async def run():
        sig_cms = await signer.async_sign_prescribed_attributes(MD, signed_attrs=attrs, timestamper=pki.timestamper())
        output = io.BytesIO(prepared.document)
        await PdfTBSDocument.async_finish_signing(
            output, prepared_digest=PreparedByteRangeDigest(
                document_digest=prepared.document_digest, reserved_region_start=prepared.reserved_region_start,
                reserved_region_end=prepared.reserved_region_end),
            signature_cms=sig_cms)
        return output.getvalue()

    return asyncio.run(run())


def validation_context(*, fetch: bool = True) -> ValidationContext:
    m = pki.material()
    return ValidationContext(trust_roots=[_asn1(m.root)], other_certs=[_asn1(m.ca)], allow_fetching=fetch,
                             revocation_mode="soft-fail")


def extend(pdf: bytes, level: str) -> bytes:
    """B-T → ``B-LT`` (certificates, OCSP responses and CRLs of the signature and its time-stamp in
    the DSS) or ``B-LTA`` (that, then a document time-stamp)."""
    if level == "B-T":
        return pdf
    context = validation_context()

    async def run():
        reader = PdfFileReader(io.BytesIO(pdf))
        signature = reader.embedded_signatures[-1]
        output = await async_add_validation_info(signature, context, in_place=False)
        if level == "B-LTA":
            writer = IncrementalPdfFileWriter(output)
            output = await signers.PdfTimeStamper(pki.timestamper()).async_timestamp_pdf(
                writer, MD, validation_context=context)
        return output.getvalue()

    return asyncio.run(run())


# --- Validation reports ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureReport:
    field: str
    intact: bool
    valid: bool
    trusted: bool
    signer: str
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


def _level(reader, index: int, has_timestamp: bool, doc_timestamps_after: int) -> str:
    if not has_timestamp:
        return "B-B"
    dss = reader.root.get("/DSS")
    if dss is None:
        return "B-T"
    return "B-LTA" if doc_timestamps_after else "B-LT"


def report(pdf: bytes, *, fetch: bool = True) -> Report:
    """Validate every signature of ``pdf`` against the signing PKI's trust roots. Raises
    :class:`PdfError` for a file that is not a readable PDF."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = list(reader.embedded_signatures)
    except Exception as e:
        raise PdfError(str(e)) from e
    context = validation_context(fetch=fetch)

    async def run():
        results = []
        doc_ts = 0
        for index, signature in enumerate(embedded):
            if signature.sig_object.get("/Type") == "/DocTimeStamp":
                doc_ts += 1
                await async_validate_pdf_timestamp(signature, validation_context=context)
                continue
            results.append((index, signature, await async_validate_pdf_signature(
                signature, signer_validation_context=context, ts_validation_context=context)))
        return results, doc_ts

    results, doc_ts = asyncio.run(run())
    reports = []
    for index, signature, status in results:
        later_doc_ts = sum(1 for s in embedded[index + 1:] if s.sig_object.get("/Type") == "/DocTimeStamp")
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
            signer_serial=cert.subject.native.get("serial_number", "") if cert else "",
            signing_time=status.signer_reported_dt.isoformat() if status.signer_reported_dt else "",
            timestamp=ts.timestamp.isoformat() if ts else "", timestamp_valid=bool(ts and ts.valid and ts.intact),
            certificate_status=revocation,
            coverage=status.coverage.name.lower() if status.coverage else "unclear", changes=changes,
            level=_level(reader, index, ts is not None, later_doc_ts), summary=status.summary(),
        ))
    return Report(reports, doc_ts)
