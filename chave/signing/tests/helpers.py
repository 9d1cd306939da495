"""Helpers for the signing tests: an integrator with a service token, PDFs, the validators."""

from __future__ import annotations

import subprocess

import requests

from chave.oidc import services as oidc

PIN = "5820"


def make_integrator(name="Plataforma de Documentos"):
    registration = oidc.register_relying_party(
        name=name, entity_nif="600084779", contact_email="dev@docs.example.gov.pt",
        redirect_uris=["https://docs.example.gov.pt/cb"], allowed_attributes=["NomeCompleto"],
        auth_method="client_secret_basic",
    )
    party = oidc.decide(registration.relying_party, "approve", by="test", reason="signing integrator")
    return party, registration.client_secret


def service_token(base_url: str, client_id: str, secret: str, scope: str = "csc") -> requests.Response:
    return requests.post(base_url + "/oidc/token", data={"grant_type": "client_credentials", "scope": scope},
                         auth=(client_id, secret), timeout=30)


def sample_pdf(pages: int = 2, padding: int = 0) -> bytes:
    """A small valid PDF, made with pyHanko's writer (``padding`` bytes of a stream make it bigger)."""
    import io

    from pyhanko.pdf_utils import generic, writer

    w = writer.PdfFileWriter()
    for n in range(pages):
        content = f"BT /F1 24 Tf 72 720 Td (Contrato pagina {n + 1}) Tj ET".encode()
        page = writer.PageObject(
            contents=w.add_object(generic.StreamObject(stream_data=content)),
            media_box=generic.ArrayObject([generic.NumberObject(v) for v in (0, 0, 595, 842)]),
            resources=generic.DictionaryObject({"/Font": generic.DictionaryObject({"/F1": generic.DictionaryObject({
                "/Type": generic.NameObject("/Font"), "/Subtype": generic.NameObject("/Type1"),
                "/BaseFont": generic.NameObject("/Helvetica")})})}),
        )
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
