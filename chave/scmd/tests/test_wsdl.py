"""The WSDL Chave serves is the published one (amagovpt/doc-CMD-assinatura, wsdl/SCMDService.wsdl)
but for the service address: the same name and target namespace, schemas (every element and type,
with its type, minOccurs, maxOccurs and nillable), messages, port type (operations and WS-Addressing
actions) and binding (SOAP actions).

``published_wsdl_structure.json`` is that structure, read from the published WSDL."""

from __future__ import annotations

import json
from pathlib import Path

from lxml import etree

from chave.scmd import soap

W, XS, S = soap.WSDL, soap.XS, soap.WSDL_SOAP
ADDRESSING = "http://www.w3.org/2006/05/addressing/wsdl"
EXPECTED = json.loads((Path(__file__).parent / "published_wsdl_structure.json").read_text())


def structure(data: bytes) -> dict:
    root = soap.parse_xml(data)
    schemas = {}
    for schema in root.iterfind(f"{{{W}}}types/{{{XS}}}schema"):
        items = {}
        for node in schema:
            if isinstance(node.tag, str):
                fields = [[e.get("name"), e.get("type"), e.get("minOccurs", "1"), e.get("maxOccurs", "1"),
                           e.get("nillable", "false")] for e in node.iter(f"{{{XS}}}element") if e is not node]
                items[f"{etree.QName(node).localname}:{node.get('name') or node.get('namespace')}"] = [
                    node.get("type"), *fields]
        schemas[schema.get("targetNamespace")] = items
    return {
        "name": root.get("name"), "targetNamespace": root.get("targetNamespace"), "schemas": schemas,
        "messages": {m.get("name"): [[p.get("name"), p.get("element")] for p in m]
                     for m in root.iterfind(f"{{{W}}}message")},
        "portType": {o.get("name"): [[etree.QName(c).localname, c.get("message"), c.get(f"{{{ADDRESSING}}}Action")]
                                     for c in o] for pt in root.iterfind(f"{{{W}}}portType") for o in pt},
        "binding": {o.get("name"): o.find(f"{{{S}}}operation").get("soapAction")
                    for b in root.iterfind(f"{{{W}}}binding") for o in b.iterfind(f"{{{W}}}operation")},
    }


def test_the_served_wsdl_has_the_published_structure_and_only_the_address_changed(client, settings):
    settings.CHAVE_PUBLIC_URL = "https://chave.example.gov.pt"
    served = client.get("/scmd/SCMDService.svc?wsdl").content
    assert structure(served) == EXPECTED
    root = soap.parse_xml(served)
    assert root.get("targetNamespace") == "http://Ama.Authentication.Service/"
    assert sorted(EXPECTED["binding"]) == sorted(soap.OPERATIONS)
    assert all(action == soap.ACTION_PREFIX + name for name, action in EXPECTED["binding"].items())
    ports = root.findall(f"{{{W}}}service/{{{W}}}port")
    assert [(p.get("name"), p.get("binding")) for p in ports] == [("BasicHttpBinding_SCMDService",
                                                                   "tns:BasicHttpBinding_SCMDService")]
    assert ports[0].find(f"{{{S}}}address").get("location") == "https://chave.example.gov.pt/scmd/SCMDService.svc"
    # The policy still says what the binding is: HTTP Basic over HTTPS.
    assert b"BasicAuthentication" in served and b"HttpsToken" in served


def test_every_answer_chave_writes_is_valid_against_the_wsdl():
    """The answers' elements, as written, pass the WSDL's own schemas (so strict clients read them)."""
    statuses = [soap.Status(200, "ok", process_id="p"), soap.Status(800, "bad", field="Hash", field_value=None)]
    answers = [soap.status_answer(op, s) for op in ("SCMDSign", "SCMDMultipleSign", "GetCertificateWithPin", "ForceSMS")
               for s in statuses]
    answers += [soap.certificate_answer("-----BEGIN CERTIFICATE-----"), soap.certificate_answer(None),
                soap.sign_response_answer(statuses[0], signature=b"s", certificate="c"),
                soap.sign_response_answer(statuses[0], certificate="c", documents=[(b"s", "a.pdf", "1")]),
                soap.sign_response_answer(statuses[1])]
    for answer in answers:
        body = soap.parse_xml(answer).find(f"{{{soap.SOAP_ENV}}}Body")[0]
        assert soap.schema().validate(etree.ElementTree(body)), soap.schema().error_log
    fault = soap.parse_xml(soap.fault_answer(soap.Fault("x", status=statuses[1])))
    detail = fault.find(f".//detail/{{{soap.DC}}}SignStatus")
    assert soap.schema().validate(etree.ElementTree(detail)), soap.schema().error_log
