"""Helpers for the signing tests: an integrator with a service token, PDFs, the validators."""

from __future__ import annotations

import subprocess

import requests

from chave.federation import services as federation
from chave.oidc import services as oidc

PIN = "5820"


def verify_signature(public_key, signature: bytes, digest: bytes, algorithm: str = "sha256") -> None:
    """Raise ``InvalidSignature`` unless ``signature`` is the key's signature of the prehashed
    ``digest``: RSA PKCS#1 v1.5 (over its DigestInfo) or ECDSA, as the key is."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    prehashed = Prehashed(getattr(hashes, algorithm.upper())())
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, digest, padding.PKCS1v15(), prehashed)
    else:
        public_key.verify(signature, digest, ec.ECDSA(prehashed))


def make_integrator(name="Plataforma de Documentos"):
    registration = oidc.register_relying_party(
        name=name, entity_nif="600084779", contact_email="dev@docs.example.gov.pt",
        redirect_uris=["https://docs.example.gov.pt/cb"], allowed_attributes=["NomeCompleto"],
        auth_method="client_secret_basic",
    )
    party = federation.decide(registration.relying_party, "approve", by="test", reason="signing integrator")
    return party, registration.client_secret


def service_token(base_url: str, client_id: str, secret: str, scope: str = "csc") -> requests.Response:
    return requests.post(base_url + "/oidc/token", data={"grant_type": "client_credentials", "scope": scope},
                         auth=(client_id, secret), timeout=30)


def sample_pdf(pages: int = 2, padding: int = 0, *, size=(595, 842), rotate: int = 0, crop=None) -> bytes:
    """A small valid PDF, made with pyHanko's writer: ``pages`` pages of ``size`` points (A4
    portrait unless told), each turned by ``rotate`` and shown through ``crop`` (a crop box) if
    given (``padding`` bytes of a stream make it bigger)."""
    import io

    from pyhanko.pdf_utils import generic, writer

    def rectangle(values):
        return generic.ArrayObject([generic.FloatObject(v) for v in values])

    w = writer.PdfFileWriter()
    for n in range(pages):
        content = f"BT /F1 24 Tf 72 {size[1] - 122} Td (Contrato pagina {n + 1}) Tj ET".encode()
        page = writer.PageObject(
            contents=w.add_object(generic.StreamObject(stream_data=content)),
            media_box=rectangle((0, 0, *size)),
            resources=generic.DictionaryObject({"/Font": generic.DictionaryObject({"/F1": generic.DictionaryObject({
                "/Type": generic.NameObject("/Font"), "/Subtype": generic.NameObject("/Type1"),
                "/BaseFont": generic.NameObject("/Helvetica")})})}),
        )
        if rotate:
            page["/Rotate"] = generic.NumberObject(rotate)
        if crop:
            page["/CropBox"] = rectangle(crop)
        w.insert_page(page)
    if padding:
        import os

        w.root["/ChavePadding"] = w.add_object(generic.StreamObject(stream_data=os.urandom(padding)))
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def pdfsig(path) -> str:
    """poppler's verdict on each signature (the certificate's trust is not its business here)."""
    done = subprocess.run(["pdfsig", "-nocert", str(path)], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def qpdf_check(path) -> subprocess.CompletedProcess:
    return subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, timeout=60)


def sign_placed(client, outbox, phone: str, form: dict) -> list[bytes]:
    """From the place page on, as the citizen does: ``form`` (placements and the signing PIN), the
    code sent to ``phone``, then every signed PDF downloaded."""
    import re

    response = client.post("/area/sign/place/", form)
    assert response.status_code == 302 and response["Location"] == "/area/sign/code/", response.content[:2000]
    response = client.post("/area/sign/code/", {"code": outbox.last_code(phone)})
    assert response.status_code == 302 and response["Location"] == "/area/sign/done/"
    links = re.findall(r'href="(/area/sign/download/\d+/)"', client.get("/area/sign/done/").content.decode())
    return [client.get(link).getvalue() for link in links]


def widget(pdf: bytes, index: int = 0) -> tuple[int, list[float]]:
    """The page (1-based) and /Rect (user-space points) of the ``index``-th signature's widget."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf))
    field = reader.embedded_signatures[index].sig_field
    on = field.raw_get("/P").reference
    count = int(reader.root["/Pages"]["/Count"])
    page = next(n + 1 for n in range(count) if reader.find_page_for_modification(n)[0].reference == on)
    return page, [float(v) for v in field["/Rect"]]
