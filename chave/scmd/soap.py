"""SOAP 1.1 for the SCMD service: the published WSDL, reading a request, writing an answer.

Why lxml and the WSDL's own schemas rather than a SOAP framework: the contract here is fixed by
someone else (AMA's ``SCMDService.wsdl``), and integrators' clients were generated from it. A
framework such as spyne generates its WSDL from Python classes; making it emit the published
names, namespaces, ``nillable``/``minOccurs`` and WCF's serialisation schema exactly would mean
fighting it, and a drift would break clients silently. Here the published WSDL is the single
source: it is served as published (only ``soap:address`` changed), and every request body is
validated against the XML Schemas inside it (libxml2 through lxml, a maintained C library that
Chave's other XML users share), so what is accepted is exactly what the WSDL describes. zeep is
used only as the integrators' client in the tests, built from the WSDL Chave serves.

Parsing is hardened: no DTD is loaded, no entity resolved, no network access, no huge trees; a
document carrying a DOCTYPE at all is refused, as is anything over ``scmd_max_envelope_bytes``
(checked before reading, by the view).
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
TNS = "http://Ama.Authentication.Service/"
DC = "http://schemas.datacontract.org/2004/07/Ama.Structures.CCMovelSignature"
SERIALIZATION = "http://schemas.microsoft.com/2003/10/Serialization/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XS = "http://www.w3.org/2001/XMLSchema"
WSDL_PATH = Path(__file__).resolve().parent / "wsdl" / "SCMDService.wsdl"
OPERATIONS = ("GetCertificate", "GetCertificateWithPin", "SCMDSign", "SCMDMultipleSign", "ValidateOtp", "ForceSMS")
ACTION_PREFIX = TNS + "SCMDService/"
CONTENT_TYPE = "text/xml; charset=utf-8"
_DOCTYPE = re.compile(rb"<!\s*DOCTYPE|<\x00!\x00D\x00O\x00C\x00T\x00Y\x00P\x00E|\x00<\x00!\x00D\x00O\x00C\x00T\x00Y\x00P\x00E",
                      re.IGNORECASE)


class Fault(Exception):
    """A message that is not a valid SCMD request (or cannot be answered with a status):
    answered with a SOAP 1.1 Fault. ``code`` is ``Client``, ``VersionMismatch`` or
    ``MustUnderstand`` (the sender's fault) or ``Server``; ``status`` may carry a machine-readable
    :class:`Status` in the fault's ``detail``."""

    def __init__(self, message: str, *, code: str = "Client", http_status: int = 400, status: Status | None = None):
        super().__init__(message)
        self.message, self.code, self.http_status, self.status = message, code, http_status, status


@dataclass(frozen=True)
class Status:
    """``SignStatus``: a result code (as text, as the WSDL types it) and its message; ``field``
    and ``field_value`` name the parameter at fault."""

    code: int
    message: str
    field: str | None = None
    field_value: str | None = None
    process_id: str | None = None


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_pis=True, collect_ids=False)


def parse_xml(data: bytes) -> etree._Element:
    """The root element of ``data``; :class:`Fault` for what is not well-formed XML or carries a
    document type declaration (entities, external subsets: none are ever read)."""
    if _DOCTYPE.search(data):  # before parsing: the parser would only say "not well-formed"
        raise Fault("Document type declarations (DTDs and entities) are not accepted.")
    try:
        tree = etree.fromstring(data, _parser()).getroottree()
    except (etree.XMLSyntaxError, ValueError) as e:
        raise Fault(f"The message is not well-formed XML: {_first_line(e)}") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise Fault("Document type declarations (DTDs and entities) are not accepted.")
    return tree.getroot()


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:300] if str(error) else error.__class__.__name__


@functools.cache
def _wsdl() -> etree._Element:
    return etree.parse(str(WSDL_PATH), _parser()).getroot()


def wsdl_document(address: str) -> bytes:
    """The published WSDL with ``address`` as the service's ``soap:address`` (the one change)."""
    root = copy.deepcopy(_wsdl())
    for node in root.iter(etree.Comment):
        if node.getparent() is not None:
            node.getparent().remove(node)
    location = root.find(f"{{{WSDL}}}service/{{{WSDL}}}port/{{{WSDL_SOAP}}}address")
    location.set("location", address)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


class _SchemaResolver(etree.Resolver):
    def __init__(self, schemas: dict[str, bytes]):
        super().__init__()
        self.schemas = schemas

    def resolve(self, url, pubid, context):
        if url.startswith("scmd-schema:"):
            return self.resolve_string(self.schemas[url.removeprefix("scmd-schema:")], context)
        return None  # nothing else is ever fetched (the parsers also refuse the network)


@functools.cache
def schema() -> etree.XMLSchema:
    """The XML Schema of the WSDL's types (its three inline schemas, each imported by namespace)."""
    inline = {s.get("targetNamespace"): etree.tostring(s) for s in _wsdl().iterfind(f"{{{WSDL}}}types/{{{XS}}}schema")}
    order = [SERIALIZATION, DC, TNS]  # what each imports comes first
    wrapper = (f'<xs:schema xmlns:xs="{XS}" targetNamespace="urn:chave:scmd">'
               + "".join(f'<xs:import namespace="{ns}" schemaLocation="scmd-schema:{i}"/>' for i, ns in enumerate(order))
               + "</xs:schema>")
    parser = _parser()
    parser.resolvers.add(_SchemaResolver({str(i): inline[ns] for i, ns in enumerate(order)}))
    return etree.XMLSchema(etree.fromstring(wrapper.encode(), parser))


def read_request(body: bytes, soap_action: str | None) -> tuple[str, etree._Element]:
    """The operation and its (schema-valid) element from a SOAP 1.1 request; :class:`Fault` else."""
    root = parse_xml(body)
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise Fault("SOAP 1.2 is not served here: the binding is SOAP 1.1 (BasicHttpBinding).", code="VersionMismatch")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise Fault("The message is not a SOAP 1.1 envelope.")
    children = [c for c in root if isinstance(c.tag, str)]
    headers = [c for c in children if c.tag == f"{{{SOAP_ENV}}}Header"]
    bodies = [c for c in children if c.tag == f"{{{SOAP_ENV}}}Body"]
    if len(bodies) != 1 or len(headers) > 1 or len(children) != len(bodies) + len(headers):
        raise Fault("The envelope must hold one Body (and at most one Header before it).")
    for header in headers[0] if headers else ():
        if isinstance(header.tag, str) and header.get(f"{{{SOAP_ENV}}}mustUnderstand") in ("1", "true"):
            raise Fault(f"The header {etree.QName(header).localname} is not understood here.", code="MustUnderstand")
    content = [c for c in bodies[0] if isinstance(c.tag, str)]
    if len(content) != 1:
        raise Fault("The Body must hold exactly one operation element.")
    element = content[0]
    name = etree.QName(element)
    if name.namespace != TNS or name.localname not in OPERATIONS:
        raise Fault(f"Unknown operation {name.localname!r} (namespace {name.namespace!r}).")
    action = (soap_action or "").strip().strip('"')
    if action and action != ACTION_PREFIX + name.localname:
        raise Fault(f"The SOAPAction {action!r} does not name the operation {name.localname}.")
    document = etree.ElementTree(copy.deepcopy(element))
    if not schema().validate(document):
        error = schema().error_log.last_error
        raise Fault(f"The {name.localname} request does not match the WSDL: {error.message if error else 'invalid'}")
    return name.localname, element


# --- Reading values ---------------------------------------------------------------------------


def child(element: etree._Element | None, name: str, namespace: str = DC) -> etree._Element | None:
    if element is None:
        return None
    return element.find(f"{{{namespace}}}{name}")


def is_nil(element: etree._Element | None) -> bool:
    return element is None or element.get(f"{{{XSI}}}nil") in ("true", "1")


def text(element: etree._Element | None, name: str, namespace: str = DC) -> str | None:
    """The text of ``name`` under ``element``; None when absent or nil ('' when empty)."""
    node = child(element, name, namespace)
    return None if is_nil(node) else (node.text or "")


def binary(element: etree._Element | None, name: str, namespace: str = DC) -> bytes | None:
    """A ``base64Binary`` value (schema-valid, so it decodes); None when absent or nil."""
    import base64

    value = text(element, name, namespace)
    return None if value is None else base64.b64decode("".join(value.split()))


# --- Writing answers -------------------------------------------------------------------------


def _envelope(content: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"s": SOAP_ENV})
    etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(content)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def _value(parent: etree._Element, name: str, value, namespace: str = DC) -> etree._Element:
    node = etree.SubElement(parent, f"{{{namespace}}}{name}")
    if value is None:
        node.set(f"{{{XSI}}}nil", "true")
    else:
        node.text = value
    return node


def _status(parent: etree._Element, name: str, status: Status, namespace: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{namespace}}}{name}", nsmap={"a": DC, "i": XSI})
    for field, value in (("Code", str(status.code)), ("Field", status.field), ("FieldValue", status.field_value),
                         ("Message", status.message), ("ProcessId", status.process_id)):
        _value(node, field, value)
    return node


def status_answer(operation: str, status: Status) -> bytes:
    """``<Operation>Response`` carrying ``<Operation>Result``: a ``SignStatus``."""
    response = etree.Element(f"{{{TNS}}}{operation}Response", nsmap={None: TNS})
    _status(response, f"{operation}Result", status, TNS)
    return _envelope(response)


def certificate_answer(pem: str | None) -> bytes:
    response = etree.Element(f"{{{TNS}}}GetCertificateResponse", nsmap={None: TNS, "i": XSI})
    _value(response, "GetCertificateResult", pem, TNS)
    return _envelope(response)


def sign_response_answer(status: Status, *, signature: bytes | None = None, certificate: str | None = None,
                         documents: list[tuple[bytes, str, str]] | None = None) -> bytes:
    """``ValidateOtpResponse``: a ``SignResponse`` (``documents``: signature, name, id of each)."""
    import base64

    response = etree.Element(f"{{{TNS}}}ValidateOtpResponse", nsmap={None: TNS})
    result = etree.SubElement(response, f"{{{TNS}}}ValidateOtpResult", nsmap={"a": DC, "i": XSI})
    array = etree.SubElement(result, f"{{{DC}}}ArrayOfHashStructure")
    if documents is None:
        array.set(f"{{{XSI}}}nil", "true")
    else:
        for signed, name, identifier in documents:
            item = etree.SubElement(array, f"{{{DC}}}HashStructure")
            _value(item, "Hash", base64.b64encode(signed).decode())
            _value(item, "Name", name)
            _value(item, "id", identifier)
    _value(result, "Signature", base64.b64encode(signature).decode() if signature is not None else None)
    _status(result, "Status", status, DC)
    _value(result, "certificate", certificate)
    return _envelope(response)


def fault_answer(fault: Fault) -> bytes:
    """A SOAP 1.1 Fault; its ``detail`` carries a ``SignStatus`` when the fault has one."""
    body = etree.Element(f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(body, "faultcode").text = f"s:{fault.code}"
    etree.SubElement(body, "faultstring").text = fault.message
    if fault.status is not None:
        _status(etree.SubElement(body, "detail"), "SignStatus", fault.status, DC)
    return _envelope(body)
