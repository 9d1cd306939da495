"""Bad input never gets a 500: every URL of the project, swept with malformed input.

The project's rule: malformed numbers, overlong fields, wrong types and replays get a clear 4xx,
never a 500. One test per URL pattern (``get_resolver()``, through the includes; Django's own
``admin/`` and ``i18n/`` aside). Each path converter gets a plausible value (the citizen's id, a
portal's client_id, …) and bad ones in turn: a non-existent id, numbers too big for the database
(2**31, 2**63, 40 and 5,000 digits), 5,000 characters, ``%00``, unicode, bytes that are not UTF-8,
``..``, CR LF. Who sends:

- anyone (no session);
- outside the counter, a citizen signed in with the key through the real pages (number and PIN,
  the code sent by SMS, delivered as the worker does), with signing active on the signing pages,
  and already at the step a page needs (documents uploaded, placed, signed; a PIN or contact
  change waiting for its code): :data:`CITIZEN_STEPS`;
- on the login's steps, someone half-way through it (PIN accepted, at the channel or code step);
- at the counter, a member of staff of each role, signed in at ``/counter/login`` (password and
  TOTP code);
- on the signing APIs and userinfo, an integrator with a service token (``client_credentials``);
  on the SCMD SOAP service, an SCMD integrator with its HTTP Basic credentials, which also sends
  SOAP envelopes of every operation with junk values (:func:`sweep_soap`).

What they send: GETs with junk query strings (overlong, repeated, not UTF-8, ``%00``, bad numbers
and dates, 2,000 fields); POSTed forms with every field junk (overlong, malformed numbers, NUL,
nesting), lists where one value is expected, no fields, bytes that are not UTF-8, a bogus charset,
broken multipart, 5,000 fields, junk files; each form the page shows, filled as the page fills it
and sent twice (a replay), then with one field at a time wrong, missing or sent twice; JSON bodies
of the wrong types (arrays, nulls, nested objects, 5,000-digit and overflowing numbers, strings for
numbers, deep nesting, NUL, not UTF-8) and with the wrong Content-Type; for the APIs, a plausible
body from their OpenAPI documents with one field at a time wrong or missing; PUT, PATCH, DELETE,
HEAD; junk cookies and headers; and a pass with CSRF checks enforced (403, not 500).

Field names come from the forms on the page, from the view's module (its forms' fields, the names it
reads from ``request.GET``/``POST``/the body) and, for the APIs, from their OpenAPI documents.
Visitors a page turns away (sign in first, not this role) and methods a view refuses (405) get a
few requests rather than the whole set; of the staff roles a page admits, the first gets the bodies,
every one the queries (roles differ at the door and in what pages show).

Every answer must be below 500 (an exception while streaming a response counts as one). Failures
are collected and reported together, grouped by cause: the path, the visitor, the method, the input,
the status and the traceback of the exception behind it.
"""

from __future__ import annotations

import base64
import collections
import copy
import dataclasses
import functools
import hashlib
import inspect
import itertools
import json
import logging
import re
import traceback
import uuid
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes, urlencode

import pytest
from django import forms as django_forms
from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.encoding import repercent_broken_unicode

from chave.signing.tests.helpers import sample_pdf
from chave.delivery.messages import code_in

pytestmark = pytest.mark.django_db

PHONE = "+351912345678"
EMAIL = "maria@example.pt"
PIN = "4719"
SIGNING_PIN = "5820"
ROLES = ("clerk", "supervisor", "rp-admin", "auditor", "mailroom")
EXCLUDED = ("admin/", "i18n/")  # Django's own
OPENAPI_DIR = Path(__file__).resolve().parents[1] / "signing" / "openapi"
APP_OPENAPI = Path(__file__).resolve().parents[1] / "app" / "openapi.json"

LONG = "x" * 5000
LONG_DIGITS = "9" * 5000


# --- The URLs -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Route:
    name: str  # namespace:name
    parts: tuple  # the chain of patterns from the root
    callback: object

    @property
    def prefix(self) -> str:
        return "/" + "".join(_literal(p) for p in self.parts)

    def __str__(self) -> str:
        return self.name


def _literal(pattern) -> str:
    """The pattern's text without its parameters (enough to tell which area a URL is in)."""
    text = str(pattern)
    return re.split(r"[<(^$]", text.lstrip("^"), maxsplit=1)[0]


def _walk(patterns, parts=(), namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = ":".join(filter(None, (namespace, p.namespace)))
            yield from _walk(p.url_patterns, parts + (p.pattern,), ns)
        elif isinstance(p, URLPattern):
            name = ":".join(filter(None, (namespace, p.name or p.lookup_str)))
            yield Route(name, parts + (p.pattern,), p.callback)


def _routes() -> list[Route]:
    routes, seen = [], set()
    for route in _walk(get_resolver().url_patterns):
        if route.prefix.lstrip("/").startswith(EXCLUDED):
            continue
        assert route.name not in seen, f"two URL patterns share the name {route.name}"
        seen.add(route.name)
        routes.append(route)
    return routes


ROUTES = _routes()

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")
_GROUP = re.compile(r"\(\?P<(?P<parameter>\w+)>(?P<regex>(?:[^()\\]|\\.|\[[^\]]*\])+)\)")


def _segments(pattern):
    """The pattern as text with ``{name}`` holes, and each hole's kind and regex."""
    text = str(pattern)
    holes = {}
    if isinstance(pattern, RoutePattern):
        for m in _PARAM.finditer(text):
            converter = pattern.converters[m["parameter"]]
            holes[m["parameter"]] = (type(converter).__name__, converter.regex)
        return _PARAM.sub(lambda m: "{" + m["parameter"] + "}", text), holes
    if isinstance(pattern, RegexPattern):
        for m in _GROUP.finditer(text):
            holes[m["parameter"]] = ("regex", m["regex"])
        text = _GROUP.sub(lambda m: "{" + m["parameter"] + "}", text).lstrip("^").rstrip("$")
        return re.sub(r"\\(.)", r"\1", text), holes
    return text, holes


BAD_INTS = ["999999999", "0", "00000000001", str(2**31), str(2**63), "9" * 40, LONG_DIGITS]
BAD_STRINGS = ["does-not-exist", LONG, "%00", "%C3%A7%C3%A3o-%F0%9F%94%91", "..", "%ff%fe", "%2e%2e%2f%2e%2e%2fetc",
               "a%0d%0aSet-Cookie:x=1", "%C2%B2%C2%B3"]  # the last: superscript digits, which str.isdigit() accepts
BAD_UUIDS = ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"]


def _bad_values(kind: str) -> list[str]:
    if kind == "IntConverter":
        return BAD_INTS
    if kind == "UUIDConverter":
        return BAD_UUIDS + [str(uuid.UUID(int=7))]
    return BAD_STRINGS + ["A" * 5000 + "==", "MEMwQTA/MD0wOzAJBgUrDgMCGgUABBQ=", "%%%"]


def _django_path_info(path: str) -> str:
    """What Django sees as ``path_info`` for ``path`` sent by the test client."""
    return repercent_broken_unicode(unquote_to_bytes(path.split("?")[0])).decode()


def _not_another_page(path: str, route: Route) -> bool:
    """``path`` is ``route``'s, or no page's (a value its converter refuses: 404 is the answer)."""
    try:
        match = resolve(_django_path_info(path))
    except Resolver404:
        return True
    return match.func is route.callback


def concrete_paths(route: Route, plausible: dict) -> list[tuple[str, bool]]:
    """``(path, is_plausible)``: all parameters plausible, then each parameter bad in turn."""
    template, holes = "", {}
    for pattern in route.parts:
        text, found = _segments(pattern)
        template += text
        holes.update(found)
    good = {name: str(plausible.get(name, {"IntConverter": 1, "UUIDConverter": uuid.UUID(int=1)}.get(kind, "x")))
            for name, (kind, _regex) in holes.items()}
    out = [("/" + template.format(**good), True)]
    for name, (kind, _regex) in holes.items():
        for value in _bad_values(kind):
            path = "/" + template.format(**{**good, name: value})
            if path not in (p for p, _ in out) and _not_another_page(path, route):
                out.append((path, False))
    return out


# --- Field names ------------------------------------------------------------------------------

_READS = re.compile(r"""(?:GET|POST|body|data|params|payload|query|args|FILES|COOKIES)\s*(?:\.get(?:list)?\(|\[)\s*"""
                    r"""["']([A-Za-z_][\w.\-]*)["']""")
_FIELD_CALL = re.compile(r"""field\(\s*body\s*,\s*((?:["'][\w\-]+["']\s*,?\s*)+)""")
_PREFIX = re.compile(r"""prefix\s*=\s*["']([\w\-]+)["']""")
GENERIC_NAMES = ("next", "id", "pk", "page", "q", "lang", "language", "state", "code", "client_id", "redirect_uri",
                 "day", "token", "pin", "identifier", "channel", "csrfmiddlewaretoken")


@functools.cache
def _module_names(module_name: str) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """Names a view module reads (GET/POST/body keys, its forms' fields, with their prefixes), the
    names of its forms' file fields, and whether it reads request bodies itself (not as a form)."""
    import importlib

    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    names = set(_READS.findall(source))
    for group in _FIELD_CALL.findall(source):
        names.update(re.findall(r"""["']([\w\-]+)["']""", group))
    prefixes = set(_PREFIX.findall(source))
    files = set()
    for obj in list(vars(module).values()):
        if inspect.isclass(obj) and issubclass(obj, django_forms.BaseForm) and obj.__module__.startswith("chave"):
            for field_name, field in obj.base_fields.items():
                variants = {field_name} | {f"{p}-{field_name}" for p in prefixes}
                names |= variants
                if isinstance(field, django_forms.FileField):
                    files |= variants
    reads_body = bool(re.search(r"request\.(body|read\(|stream)|copy_body\(|json\.loads\(|@endpoint|api\.endpoint",
                                source))
    return tuple(sorted(names)), tuple(sorted(files)), reads_body


def _view_module(callback) -> str:
    inner = inspect.unwrap(callback)
    return getattr(inner, "__module__", None) or callback.__module__


@functools.cache
def _openapi() -> dict[str, dict]:
    """``path → JSON schema of the request body`` from the project's OpenAPI documents."""
    found = {}
    for document, base in ((OPENAPI_DIR / "csc.json", "/csc/v2"), (OPENAPI_DIR / "signing.json", "/api/signing"),
                           (APP_OPENAPI, "/app/api")):
        spec = json.loads(document.read_text())
        for path, operations in spec["paths"].items():
            for operation in operations.values():
                content = operation.get("requestBody", {}).get("content", {})
                schema = content.get("application/json", {}).get("schema")
                if schema and "$ref" in schema:  # the app's document names its schemas
                    schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                if schema:
                    found[base + path] = schema
    return found


# --- Junk ---------------------------------------------------------------------------------------

# One value for every field at once: overlong, malformed numbers and dates, control characters.
FORM_VALUES = [LONG, LONG_DIGITS, "-1", "1e400", "²³", "١٢٣٤", "9" * 25, "2024-02-30", "\x00", "🔑" * 100, " ",
               "../../etc/passwd", "[" * 5000]
QUERY_VALUES = ["-1", "9" * 25, "2024-02-30", "²³", "\x00"]
QUERY_JUNK = ["%ff%fe", "%c3%28", "%00", "%"]
JSON_VALUES = [[], None, {"a": {"b": [1, {"c": None}]}}, True, -1, 1.5, LONG, "²³", 10**30, "a\x00b"]
JSON_RAW = [  # whole bodies, as bytes
    b"[]", b"null", b'"a string"', b"1e999999", b"9" * 5000, b'{"a": 1', b"[" * 100_000, b'{"a":' * 50_000,
    b'{"a":' * 700 + b"1" + b"}" * 700, b"\xff\xfe{\x00}\x00", b"\xff\xfe\xfd", b'{"a": NaN, "b": Infinity}', b"",
    b'{"\\u0000": "\\u0000"}',
]


def _huge_number_body(names) -> bytes:
    return ("{" + ", ".join(f'{json.dumps(n)}: {"9" * 5000}' for n in names) + "}").encode()


def _float_overflow_body(names) -> bytes:
    return ("{" + ", ".join(f'{json.dumps(n)}: 1e999999' for n in names) + "}").encode()


B64 = base64.b64encode(hashlib.sha256(b"contrato").digest()).decode()
PLAUSIBLE_FIELDS = {
    "userID": PHONE, "userId": PHONE, "PIN": SIGNING_PIN, "pin": SIGNING_PIN, "OTP": "123456", "code": "123456",
    "numSignatures": 1, "hashes": [B64], "hash": [B64], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
    "signAlgo": "1.2.840.113549.1.1.11", "hashAlgorithm": "sha256", "certificates": "chain", "lang": "en",
    "documents": [{"name": "contrato.pdf", "hash": B64}], "processId": str(uuid.UUID(int=3)),
    "description": "contrato.pdf", "SAD": "x" * 40,
}


def _plausible_from_schema(name, schema, world):
    if name in ("credentialID",):
        return world.get("credential_id", "x")
    if name in PLAUSIBLE_FIELDS:
        return PLAUSIBLE_FIELDS[name]
    return {"string": "x", "integer": 1, "boolean": True, "array": [], "object": {}}.get(schema.get("type"), "x")


def _wrong_values(schema) -> list:
    kind = schema.get("type")
    values = [None, [], {}, {"nested": {"deeper": [1, 2]}}, "", LONG, LONG_DIGITS, "²³", "-1", "a\x00b", ["\x00"],
              -1, 10**30, 1.5, True, [None], [[B64]], [{"a": 1}], [LONG] * 101]
    if kind == "array" and schema.get("items", {}).get("type") == "object":
        values += [[{}], [{"name": [], "hash": {}}], [{"name": LONG, "hash": LONG}], [{"name": "a", "hash": "%%%"}],
                   [{"name": "a\x00b.pdf", "hash": B64}]]
    return values


# --- The sweep ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Failure:
    actor: str
    method: str
    path: str
    what: str
    status: int | str
    trace: str


def _short(value, limit=120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"…({len(text)} chars)"


class Sweep:
    def __init__(self):
        self.failures: list[Failure] = []
        self.count = 0
        self.statuses: collections.Counter = collections.Counter()

    def send(self, actor: str, client: Client, method: str, path: str, what: str, *, data=b"",
             content_type="application/octet-stream", query: str | None = None, form=None, **extra):
        self.count += 1
        if query is not None:
            extra["QUERY_STRING"] = query
        if form is not None:  # encoded by the client (multipart, with files)
            response = client.post(path, form, **extra)
        else:
            response = client.generic(method, path, data, content_type, **extra)
        status, trace = response.status_code, ""
        self.statuses[(actor, status)] += 1
        try:
            if getattr(response, "streaming", False):
                b"".join(response.streaming_content)
        except Exception as e:  # noqa: BLE001 - an error while streaming is a server error too
            status, trace = "error while streaming", "".join(traceback.format_exception(e))
        if status == "error while streaming" or status >= 500:
            exc_info = getattr(response, "exc_info", None)
            if exc_info and not trace:
                trace = "".join(traceback.format_exception(*exc_info))
            if not trace:
                trace = response.content[:600].decode(errors="replace") if not response.streaming else ""
            self.failures.append(Failure(actor, method, path, what, status, trace))
        return response

    def report(self) -> str:
        """The failures, the same traceback (the same bug) shown once with every input that met it."""
        groups: dict[str, list[Failure]] = {}
        for f in self.failures:
            last = f.trace.strip().splitlines()[-1] if f.trace.strip() else str(f.status)
            where = re.findall(r'File "([^"]+)", line (\d+)', f.trace)
            key = f"{last} @ {where[-1] if where else ''}"
            groups.setdefault(key, []).append(f)
        out = [f"{len(self.failures)} of {self.count} requests answered 500 or failed ({len(groups)} distinct causes):"]
        for key, failures in groups.items():
            out.append("=" * 100)
            out.append(f"{len(failures)}× {key}")
            for f in failures[:6]:
                path = f.path if len(f.path) < 160 else f.path[:150] + f"…({len(f.path)} chars)"
                out.append(f"  [{f.actor}] {f.method} {path}  input: {f.what}  →  {f.status}")
            if len(failures) > 6:
                out.append(f"  … and {len(failures) - 6} more")
            out.append(failures[0].trace)
        return "\n".join(out)


@dataclasses.dataclass
class PageForm:
    """A form as the page fills it: where it goes, how, and its fields' values (file fields apart)."""

    action: str
    method: str
    fields: list[tuple[str, str]]
    files: list[str]


class _FormParser(HTMLParser):
    def __init__(self, page_path: str):
        super().__init__(convert_charrefs=True)
        self.page_path, self.forms, self._form, self._select, self._textarea = page_path, [], None, None, None

    def _choose(self, name: str, value: str, *, chosen: bool):
        """One value for ``name``: the chosen one (checked, selected), else the first offered."""
        if chosen or all(n != name for n, _v in self._form.fields):
            self._form.fields = [(n, v) for n, v in self._form.fields if n != name]
            self._form.fields.append((name, value))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            action = (a.get("action") or self.page_path).split("?")[0].split("#")[0]
            self._form = PageForm(action, (a.get("method") or "get").lower(), [], [])
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "option" and self._select:
            self._choose(self._select, a.get("value") or "", chosen="selected" in a)
        elif not a.get("name") or a["name"] == "csrfmiddlewaretoken":
            return
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind == "file":
                self._form.files.append(a["name"])
            elif kind == "radio":
                self._choose(a["name"], a.get("value") or "on", chosen="checked" in a)
            elif kind == "checkbox":
                if "checked" in a:
                    self._form.fields.append((a["name"], a.get("value") or "on"))
            elif kind not in ("submit", "image", "reset", "button"):
                self._form.fields.append((a["name"], a.get("value") or ""))
        elif tag == "select":
            self._select = a["name"]
        elif tag == "textarea":
            self._textarea = a["name"]
            self._form.fields.append((self._textarea, ""))
        elif tag == "button" and a.get("value") is not None:  # the first named button: which step
            self._choose(a["name"], a["value"], chosen=False)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea and self._form is not None:
            name, value = self._form.fields[-1]
            self._form.fields[-1] = (name, value + data.strip())


def page_forms(response, page_path: str) -> list[PageForm]:
    if getattr(response, "streaming", False) or not response.get("Content-Type", "").startswith("text/html"):
        return []
    parser = _FormParser(page_path)
    parser.feed(response.content.decode(errors="replace"))
    return [f for f in parser.forms if "/i18n/" not in f.action]


def forms_for(send, path: str, page, shown: list[PageForm]) -> list[PageForm]:
    """The forms that send to ``path``: on its own page, else, for a view that only takes POSTs, on
    the pages above it (the counter's citizen page holds the unlock form, …)."""
    found = [f for f in shown if f.action == path]
    if not found and path in FORM_PAGES:
        found = [f for f in page_forms(send("GET", FORM_PAGES[path], "the page with its form"), FORM_PAGES[path])
                 if f.action == path]
    parent = path
    while not found and page.status_code == 405 and parent.rstrip("/").count("/") > 1:  # a POST-only view
        parent = parent.rstrip("/").rsplit("/", 1)[0] + "/"
        above = send("GET", parent, "the page above (for its forms)")
        found = [f for f in page_forms(above, parent) if f.action == path]
    return found


FORM_PAGES = {"/area/code/resend/": "/area/pin/confirm/"}  # where a form is, when not on a page above
FIELD_JUNK = [LONG, "9" * 25, "²³", "\x00", "-1"]


def _submit(send, path: str, form: PageForm, fields: list[tuple[str, str]], what: str):
    if form.method == "get":
        send("GET", path, what, query=urlencode(fields))
    elif form.files:  # multipart, a small PDF in each file field
        data: dict[str, list] = {}
        for name, value in fields:
            data.setdefault(name, []).append(value)
        for name in form.files:
            data[name] = SimpleUploadedFile("contrato.pdf", sample_pdf(1), content_type="application/pdf")
        send("POST", path, what, form=data)
    else:
        send("POST", path, what, data=urlencode(fields), content_type="application/x-www-form-urlencoded")


def sweep_forms(send, path: str, forms: list[PageForm]):
    """Each form as the page fills it (sent twice: a replay), then one field at a time wrong,
    missing, or sent twice."""
    for form in forms:
        for _ in range(2):
            _submit(send, path, form, form.fields, "the form as the page fills it")
        for name in dict(form.fields):
            others = [(n, v) for n, v in form.fields if n != name]
            for value in FIELD_JUNK:
                _submit(send, path, form, [*others, (name, value)], f"the form with {name} = {_short(value)}")
            _submit(send, path, form, others, f"the form without {name}")
            _submit(send, path, form, [*others, (name, "1"), (name, "2")], f"the form with {name} twice")


def _refused(response) -> bool:
    """The visitor is turned away before any input is read: 401/403, or sent to sign in."""
    if response.status_code in (401, 403):
        return True
    location = response.get("Location", "") if response.status_code in (301, 302, 303) else ""
    return bool(re.match(r"^/(counter/login|login/|area/enter/)", location))


def probe(client: Client, path: str) -> bool:
    """Whether ``path`` lets this visitor in (then the whole sweep is worth sending)."""
    response = client.get(path)
    if response.status_code == 405:
        response = client.post(path, b"", content_type="application/x-www-form-urlencoded")
    return not _refused(response)


def sweep_refused(send, path: str):
    """The few requests worth sending where the visitor is turned away (or the path is wrong)."""
    send("GET", path, "overlong, repeated and non-UTF-8 query",
         query=f"next={LONG}&next=%ff%fe&day=2024-02-30&q=%00&page=" + "9" * 25)
    send("POST", path, "every field overlong", data=urlencode({n: LONG for n in GENERIC_NAMES}),
         content_type="application/x-www-form-urlencoded")
    send("POST", path, "JSON with wrong types", data=json.dumps({n: [None, {}] for n in GENERIC_NAMES}),
         content_type="application/json")
    send("DELETE", path, "DELETE")


def sweep_path(send, route: Route, path: str, world: dict, *, posts: bool = True):
    """Every kind of bad input to ``path``. A method the view refuses outright (405) gets a couple
    of requests rather than the whole set; JSON bodies go in full to views that read the body.
    Without ``posts``, the bodies are the few of :func:`sweep_refused` (queries still in full)."""
    page = send("GET", path, "no query")
    shown = page_forms(page, path)
    seen_names = {name for form in shown for name, _value in form.fields}
    file_names = {name for form in shown for name in form.files}
    module_names, module_files, reads_body = _module_names(_view_module(route.callback))
    schema = _openapi().get(path, {})
    properties = schema.get("properties", {})
    names = sorted(seen_names | set(module_names) | set(properties) | set(GENERIC_NAMES))
    file_names = sorted(file_names | set(module_files))
    form_names = [n for n in names if n not in file_names]
    form_ct = "application/x-www-form-urlencoded"
    takes_get = page.status_code != 405
    takes_post = send("POST", path, "empty form", data=b"", content_type=form_ct).status_code != 405 and posts

    # GET with junk query strings.
    send("GET", path, "every name overlong, twice", query="&".join(f"{quote(n)}={LONG}&{quote(n)}=1" for n in names))
    send("GET", path, "every name not UTF-8 or %00", query="&".join(
        f"{quote(n)}={junk}" for n in names for junk in QUERY_JUNK))
    if takes_get:
        for value in QUERY_VALUES:
            send("GET", path, f"every name = {_short(value)}", query=urlencode({n: value for n in names}))
        send("GET", path, "2,000 query fields", query="&".join(f"f{i}=1" for i in range(2000)))

    # POSTed forms.
    for value in FORM_VALUES if takes_post else FORM_VALUES[:1]:
        send("POST", path, f"every field = {_short(value)}", data=urlencode({n: value for n in form_names}),
             content_type=form_ct)
    if takes_post:
        send("POST", path, "every field twice (a list)",
             data=urlencode([(n, v) for n in form_names for v in ("1", "2")]), content_type=form_ct)
        send("POST", path, "every field not UTF-8 (%ff%fe)", data="&".join(f"{quote(n)}=%ff%fe" for n in form_names),
             content_type=form_ct)
        send("POST", path, "raw bytes not UTF-8", data=b"\xff\xfe\xfd=\xc3\x28&pin=\xff", content_type=form_ct)
        send("POST", path, "form with charset=bogus", data=urlencode({n: "1" for n in form_names}),
             content_type=form_ct + "; charset=bogus-charset")
        send("POST", path, "multipart without a boundary", data=b"--x\r\n", content_type="multipart/form-data")
        send("POST", path, "multipart, broken body", data=b"--b\r\nContent-Disposition: form-data\r\n\r\n\xff",
             content_type="multipart/form-data; boundary=b")
        send("POST", path, "5,000 form fields", data="&".join(f"f{i}=1" for i in range(5000)), content_type=form_ct)
        for _ in range(2):
            send("POST", path, "the same form twice (a replay)", data=urlencode({n: "123456" for n in form_names}),
                 content_type=form_ct)
    if takes_post and file_names:
        for label, content, filename in (("empty file", b"", "a.pdf"), ("junk", b"%PDF-1.7\n\xff\xfe junk", "a.pdf"),
                                         ("not a PDF", b"GIF89a" + b"\x00" * 100, "../../etc/passwd"),
                                         ("overlong name", b"%PDF-1.4\n%%EOF", "x" * 5000 + ".pdf")):
            upload = {n: SimpleUploadedFile(filename, content, content_type="application/pdf") for n in file_names}
            upload.update({n: LONG for n in form_names[:20]})
            send("POST", path, f"upload: {label}", form=upload)
        send("POST", path, "upload: a file field given as text", form={n: "not a file" for n in file_names})

    # JSON of the wrong types, and the wrong Content-Type.
    json_names = sorted(properties) or names
    whole = takes_post and (reads_body or bool(properties))
    for value in JSON_VALUES if whole else JSON_VALUES[:1]:
        send("POST", path, f"JSON: every field = {_short(value)}", data=json.dumps({n: value for n in json_names}),
             content_type="application/json")
    for raw in JSON_RAW if whole else JSON_RAW[:1]:
        send("POST", path, f"JSON body {_short(raw, 60)}", data=raw, content_type="application/json")
    if whole:
        send("POST", path, "JSON: every field a 5,000-digit number", data=_huge_number_body(json_names),
             content_type="application/json")
        send("POST", path, "JSON: every field 1e999999", data=_float_overflow_body(json_names),
             content_type="application/json")
        send("POST", path, "JSON sent as text/plain", data=json.dumps({n: "1" for n in json_names}),
             content_type="text/plain")
        send("POST", path, "no Content-Type", data=b"a=1", content_type="")
    if takes_post:
        send("POST", path, "form sent as application/json", data=urlencode({n: "1" for n in form_names}),
             content_type="application/json")
    if takes_post and properties:  # an API: a plausible body, one field wrong (or missing) at a time
        good = {n: _plausible_from_schema(n, s, world) for n, s in properties.items()}
        send("POST", path, "JSON: plausible body", data=json.dumps(good), content_type="application/json")
        for name, field_schema in properties.items():
            for value in _wrong_values(field_schema):
                send("POST", path, f"JSON: plausible but {name} = {_short(value)}",
                     data=json.dumps({**good, name: value}), content_type="application/json")
            rest = dict(good)
            rest.pop(name)
            send("POST", path, f"JSON: plausible without {name}", data=json.dumps(rest),
                 content_type="application/json")

    if path == SCMD_SERVICE and takes_post:
        sweep_soap(send, path, world)
    if path == SAML_SSO:
        sweep_saml(send, path, world)
    if path == SAML_SLO:
        sweep_saml_logout(send, path, world)
    if posts:
        sweep_forms(send, path, forms_for(send, path, page, shown))
    else:
        sweep_refused(send, path)
    # Other methods.
    send("PUT", path, "PUT with a JSON body", data=b'{"a": []}', content_type="application/json")
    send("PATCH", path, "PATCH with a form body", data="a=1", content_type=form_ct)
    send("DELETE", path, "DELETE")
    send("HEAD", path, "HEAD with overlong query", query=f"next={LONG}")
    # DPoP (RFC 9449): junk proofs with a DPoP-scheme token, GET and POST.
    for label, proof in (("not a JWT", "%ff" * 10), ("two proofs", "a.b.c, d.e.f"), ("overlong", LONG),
                         ("header not JSON", "eyJ9.e30.c2ln"),
                         ("jwk not a key", "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIn19.e30.c2ln")):
        send("GET", path, f"DPoP proof {label}", HTTP_AUTHORIZATION="DPoP " + "x" * 40, HTTP_DPOP=proof)
        send("POST", path, f"DPoP proof {label} on a form", data="grant_type=refresh_token&refresh_token=x",
             content_type=form_ct, HTTP_DPOP=proof)
    # Last, as it may end the session (a junk session cookie gets a new, empty session).
    send("GET", path, "junk cookies and headers", HTTP_COOKIE=f"{settings.LANGUAGE_COOKIE_NAME}={LONG}; "
         f"{settings.SESSION_COOKIE_NAME}=%ff%fe; {settings.CSRF_COOKIE_NAME}={LONG}",
         HTTP_ACCEPT_LANGUAGE="xx-ÿÿ;q=abc, " + "a" * 500, HTTP_X_FORWARDED_FOR="not-an-ip, 999.1.1.1",
         HTTP_AUTHORIZATION="Bearer " + "%ff" * 10, HTTP_HOST="testserver", HTTP_REFERER="http://%ff/" + LONG)


SCMD_SERVICE = "/scmd/SCMDService.svc"
SAML_SSO = "/saml/sso"


def sweep_saml(send, path: str, world: dict):
    """SAML requests of the registered pysaml2 portal gone wrong (:mod:`chave.saml.tests.bad_requests`):
    unsigned, tampered, wrapped, DTDs and entities, a deflate bomb, bad base64 and DEFLATE, overlong
    RelayState, by both bindings; a signed one sent twice (the replay is answered to the ACS)."""
    from chave.saml.tests.bad_requests import b64, hostile, signed_xml

    portal = world["saml_portal"]
    form_ct = "application/x-www-form-urlencoded"
    for what, method, params in hostile(portal):
        if method == "post":
            send("POST", path, f"SAML: {what}", data=urlencode(params, doseq=True), content_type=form_ct)
        else:
            send("GET", path, f"SAML: {what} (Redirect binding)", query=urlencode(params, doseq=True))
    _, xml = signed_xml(portal)
    for attempt in ("signed", "signed, replayed"):
        send("POST", path, f"SAML: {attempt}", data=urlencode({"SAMLRequest": b64(xml)}), content_type=form_ct)


SAML_SLO = "/saml/slo"


def sweep_saml_logout(send, path: str, world: dict):
    """LogoutRequests of the registered pysaml2 portal gone wrong, by both bindings: unsigned,
    tampered, an overlong ID, another Destination; a signed one by HTTP-POST sent twice (the
    replay gets a page), and its reference continued twice and with the other kind's reference."""
    from urllib.parse import urlsplit

    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.saml import NameID
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    from chave.saml import idp as saml_idp
    from chave.saml.tests.bad_requests import b64

    client = world["saml_portal"].client
    form_ct = "application/x-www-form-urlencoded"
    name_id = NameID(text="sweep")

    def signed(destination=None, **kwargs):
        _id, xml = client.create_logout_request(destination or saml_idp.slo_url(), saml_idp.entity_id(),
                                                name_id=name_id, sign=True, sign_alg=SIG_RSA_SHA256,
                                                digest_alg=DIGEST_SHA256, **kwargs)
        return str(xml)

    good = signed()
    cases = [("signed", good), ("signed, replayed", good), ("unsigned", str(client.create_logout_request(
        saml_idp.slo_url(), saml_idp.entity_id(), name_id=name_id, sign=False)[1])),
        ("tampered", good.replace("sweep", "other")), ("ID of 300 characters", signed(message_id="_" + "a" * 299)),
        ("another Destination", signed("https://elsewhere.example/slo"))]
    for what, xml in cases:
        response = send("POST", path, f"SAML logout: {what}", data=urlencode({"SAMLRequest": b64(xml),
                                                                                "RelayState": "fim"}),
                        content_type=form_ct)
        if response.status_code == 303:
            send("GET", response["Location"], f"SAML logout: {what}, continued")
            send("GET", response["Location"], f"SAML logout: {what}, continued twice")
    _id, unsigned = client.create_logout_request(saml_idp.slo_url(), saml_idp.entity_id(), name_id=name_id, sign=False)
    info = client.apply_binding(BINDING_HTTP_REDIRECT, str(unsigned), saml_idp.slo_url(), relay_state="fim",
                                sign=True, sigalg=SIG_RSA_SHA256)
    query = urlsplit(dict(info["headers"])["Location"]).query
    send("GET", path, "SAML logout: signed (Redirect binding)", query=query)
    send("GET", path, "SAML logout: signature of another query (Redirect binding)",
         query=query.replace("RelayState=fim", "RelayState=outro"))
    send("POST", path, "SAML logout: a LogoutResponse alone", data=urlencode({"SAMLResponse": "%%%"}),
         content_type=form_ct)
    send("GET", f"/saml/slo/continue/{world['reference']}", "SAML logout: a sign-in request's reference")
    send("GET", f"/saml/continue/{world['logout_reference']}", "SAML sign-in: a logout request's reference")


def _soap(operation: str, inner: str) -> bytes:
    from chave.scmd import soap

    return (f'<s:Envelope xmlns:s="{soap.SOAP_ENV}" xmlns:a="{soap.DC}"><s:Body>'
            f'<{operation} xmlns="{soap.TNS}">{inner}</{operation}></s:Body></s:Envelope>').encode()


def sweep_soap(send, path: str, world: dict):
    """SOAP envelopes of every SCMD operation with junk values (what the WSDL's types allow, and
    what they do not): the integrator's own ApplicationId and another's, fields that are not
    base64, do not decrypt, decrypt to junk (overlong, not a number, NUL), hashes empty, short,
    overlong or of another algorithm, 101 documents, nil and missing elements, unknown and
    replayed process ids; and broken XML, DTDs and entities, SOAP 1.2."""
    import base64 as b64
    import html

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import padding

    from chave.scmd import encryption

    public = x509.load_pem_x509_certificate(encryption.certificate_pem()).public_key()

    def enc(text: str) -> str:
        return b64.b64encode(public.encrypt(text.encode("utf-8", "surrogatepass")[:300], padding.PKCS1v15())).decode()

    app = b64.b64encode(world["scmd_app"]).decode()
    good_hash = b64.b64encode(bytes.fromhex("3031300d060960864801650304020105000420") + b"\x01" * 32).decode()
    fields = ["", "%%%", "A" * 5000, b64.b64encode(b"junk").decode(), enc(PHONE), enc(SIGNING_PIN), enc("9" * 40),
              enc(LONG[:200]), enc("\x00\x01"), enc("123456"), enc("+351 " + "9" * 30)]
    hashes = ["", "AA==", good_hash, good_hash[:-8] + "AAAAAAA=", b64.b64encode(b"\x00" * 200).decode(),
              b64.b64encode(bytes.fromhex("3021300906052b0e03021a05000414") + b"\x00" * 20).decode()]
    apps = [app, "", b64.b64encode(b"other").decode()]
    processes = ["", "0" * 32, "x" * 5000, "../../etc", "'; DROP TABLE x; --"]
    nil = '<a:Pin xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true"/>'
    bodies = []
    for value in fields:
        v = html.escape(value)
        bodies += [
            ("GetCertificate", f"<applicationId>{app}</applicationId><userId>{v}</userId>"),
            ("GetCertificateWithPin", f"<applicationId>{app}</applicationId><userId>{html.escape(enc(PHONE))}</userId>"
                                      f"<pin>{v}</pin>"),
            ("SCMDSign", f"<request><a:ApplicationId>{app}</a:ApplicationId><a:DocName>{v[:300]}</a:DocName>"
                         f"<a:Hash>{good_hash}</a:Hash><a:Pin>{v}</a:Pin><a:UserId>{v}</a:UserId></request>"),
            ("ValidateOtp", f"<code>{v}</code><processId>{processes[1]}</processId><applicationId>{app}</applicationId>"),
            ("ForceSMS", f"<processId>{processes[1]}</processId><citizenId>{v}</citizenId><applicationId>{app}"
                         f"</applicationId>"),
        ]
    for h in hashes:
        bodies += [
            ("SCMDSign", f"<request><a:ApplicationId>{app}</a:ApplicationId><a:Hash>{h}</a:Hash>"
                         f"<a:Pin>{enc(SIGNING_PIN)}</a:Pin><a:UserId>{enc(PHONE)}</a:UserId></request>"),
            ("SCMDMultipleSign", f"<request><a:ApplicationId>{app}</a:ApplicationId><a:Pin>{enc(SIGNING_PIN)}</a:Pin>"
                                 f"<a:UserId>{enc(PHONE)}</a:UserId></request><documents>"
                                 + f"<a:HashStructure><a:Hash>{h}</a:Hash><a:Name>{LONG[:500]}</a:Name>"
                                   f"<a:id>{LONG[:500]}</a:id></a:HashStructure>" * 2 + "</documents>"),
        ]
    item = f"<a:HashStructure><a:Hash>{good_hash}</a:Hash><a:Name>a</a:Name><a:id>1</a:id></a:HashStructure>"
    request = f"<request><a:ApplicationId>{app}</a:ApplicationId><a:Pin>{enc(SIGNING_PIN)}</a:Pin><a:UserId>" \
              f"{enc(PHONE)}</a:UserId></request>"
    bodies += [("SCMDMultipleSign", request + "<documents>" + item * 101 + "</documents>"),
               ("SCMDMultipleSign", request + "<documents/>"),
               ("SCMDMultipleSign", request + '<documents xmlns:i="http://www.w3.org/2001/XMLSchema-instance" '
                                              'i:nil="true"/>'),
               ("SCMDMultipleSign", request),
               ("SCMDSign", f"<request><a:ApplicationId>{app}</a:ApplicationId><a:Hash>{good_hash}</a:Hash>{nil}"
                            f"<a:UserId>{enc(PHONE)}</a:UserId></request>"),
               ("SCMDSign", '<request xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true"/>'),
               ("SCMDSign", ""), ("GetCertificate", ""), ("ValidateOtp", ""), ("ForceSMS", "")]
    for other in apps[1:]:
        bodies += [("GetCertificate", f"<applicationId>{other}</applicationId><userId>{enc(PHONE)}</userId>"),
                   ("ValidateOtp", f"<code>{enc('123456')}</code><processId>1</processId>"
                                   f"<applicationId>{other}</applicationId>")]
    for process in processes:
        bodies += [("ValidateOtp", f"<code>{enc('123456')}</code><processId>{html.escape(process)}</processId>"
                                   f"<applicationId>{app}</applicationId>"),
                   ("ForceSMS", f"<processId>{html.escape(process)}</processId><citizenId>{enc(PHONE)}</citizenId>"
                                f"<applicationId>{app}</applicationId>")]
    for operation, inner in bodies:
        send("POST", path, f"SOAP {operation}: {_short(inner, 80)}", data=_soap(operation, inner),
             content_type="text/xml; charset=utf-8", HTTP_SOAPACTION=f'"http://Ama.Authentication.Service/SCMDService/'
                                                                     f'{operation}"')
    # A real process, then its code replayed and another process's code.
    started = send("POST", path, "SOAP SCMDSign: a real request", data=_soap("SCMDSign", (
        f"<request><a:ApplicationId>{app}</a:ApplicationId><a:Hash>{good_hash}</a:Hash>"
        f"<a:Pin>{enc(SIGNING_PIN)}</a:Pin><a:UserId>{enc(PHONE)}</a:UserId></request>")),
        content_type="text/xml; charset=utf-8")
    process = re.search(rb"ProcessId>([0-9a-f]{32})<", started.content)
    for _ in range(2):
        send("POST", path, "SOAP ValidateOtp: a real process, a junk code, twice", data=_soap("ValidateOtp", (
            f"<code>{enc('000000')}</code><processId>{process.group(1).decode() if process else ''}</processId>"
            f"<applicationId>{app}</applicationId>")), content_type="text/xml; charset=utf-8")
    for raw in (b"", b"<", b"\xff\xfe\x00<", b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>',
                b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>',
                _soap("GetCertificate", "<applicationId>" + "A" * 600_000 + "</applicationId>"),
                b"<a>" * 5000, _soap("Nope", "")):
        send("POST", path, f"SOAP raw {_short(raw.decode('latin-1'), 60)}", data=raw,
             content_type="text/xml; charset=utf-8")


# --- Who sends -------------------------------------------------------------------------------------

class CheapArgon2(Argon2PasswordHasher):
    """Staff passwords: still Argon2id, with the cheap parameters the tests use for PINs (the cost
    is measured by ``bench/``); a sweep of the staff sign-in page hashes once per junk POST."""

    time_cost, memory_cost, parallelism = 1, 64, 1


@pytest.fixture(autouse=True)
def _cheap_staff_passwords(settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.CheapArgon2"]


@pytest.fixture(autouse=True)
def _quiet_refusals():
    """Thousands of 4xx warnings (404, 405, CSRF) would bury the report; errors are still logged."""
    loggers = [logging.getLogger(name) for name in ("django.request", "django.security")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    yield
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


_ADDRESSES = itertools.cycle([f"127.0.0.{n}" for n in range(2, 255)])


def _client(**kwargs) -> Client:
    """A browser in English; each visitor at an address of its own (in the operators' network, as
    the test client's 127.0.0.1 is), so that one visitor's junk does not use up another's throttles."""
    client = Client(raise_request_exception=False, REMOTE_ADDR=next(_ADDRESSES), **kwargs)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def _deliver_queued() -> None:
    """What the delivery worker does with each queued message (here, in the test's transaction)."""
    from chave.delivery.models import OutboundMessage
    from chave.delivery.services import send_message

    queued = OutboundMessage.objects.filter(status="queued").order_by("created_at")
    for message_id in queued.values_list("pk", flat=True):
        send_message(str(message_id))


def _last_code(to: str) -> str:
    from chave.delivery.models import DevOutboxMessage

    for message in DevOutboxMessage.objects.filter(to=to).order_by("-sent_at", "-id"):
        if found := code_in(message.body):  # a code message
            return found
    raise AssertionError(f"no code was sent to {to}")


def _citizen_client() -> Client:
    """Signed in with the key through the real pages: number and PIN, SMS, the code it brought."""
    client = _client()
    response = client.get("/area/enter/key/", {"next": "/area/"})
    assert response.status_code == 302, response
    response = client.post("/login/", {"identifier": PHONE, "pin": PIN})
    assert response.status_code == 302, response.content[:2000]
    if response["Location"].endswith("/login/channel/"):
        response = client.post("/login/channel/", {"channel": "sms"})
    _deliver_queued()
    response = client.post("/login/code/", {"code": _last_code(PHONE)})
    assert response.status_code == 302 and response["Location"] == "/area/", response
    return client


def _signing_in_client(*, step: str) -> Client:
    """Someone half-way through the key's login: the PIN accepted, at the channel or code step."""
    client = _client()
    response = client.post("/login/", {"identifier": PHONE, "pin": PIN})
    assert response.status_code == 302 and response["Location"].endswith("/login/channel/"), response
    if step == "code":
        response = client.post("/login/channel/", {"channel": "sms"})
        assert response.status_code == 302 and response["Location"].endswith("/login/code/"), response
    return client


def _staff_client(role: str, clock) -> Client:
    """A new member of staff of ``role``, signed in at /counter/login (password + TOTP code)."""
    import pyotp

    from chave.counter import services

    counter = "Loja do Cidadão Laranjeiras" if role in ("clerk", "supervisor") else ""
    made = services.create_staff(username=role.replace("-", ""), name=f"Staff {role}", role=role, counter=counter)
    client = _client()
    code = pyotp.parse_uri(made.provisioning_uri).at(clock.now())
    response = client.post("/counter/login", {"username": made.staff.user.username, "password": made.password,
                                              "code": code})
    assert response.status_code == 302, response.content.decode()[:2000]
    return client


def _integrator_client(party, secret) -> Client:
    """An integrator's service token (client_credentials, scope csc), sent on every request."""
    client = _client()
    basic = base64.b64encode(f"{party.client_id}:{secret}".encode()).decode()
    issued = client.post("/oidc/token", {"grant_type": "client_credentials", "scope": "csc"},
                         HTTP_AUTHORIZATION=f"Basic {basic}")
    assert issued.status_code == 200, issued.content
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {issued.json()['access_token']}"
    return client


@pytest.fixture
def world(signing_pki, make_citizen, clock):
    """What plausible path values point at: the citizen, a portal (also a signing integrator), an
    event of the citizen's history."""
    from chave.audit.models import AuditEvent
    from chave.federation import services as federation
    from chave.oidc import services as oidc

    key = make_citizen(phone=PHONE, email=EMAIL, pin=PIN)
    registration = oidc.register_relying_party(
        name="Plataforma de Documentos", entity_nif="600084779", contact_email="dev@docs.example.gov.pt",
        redirect_uris=["https://docs.example.gov.pt/cb"], allowed_attributes=["NomeCompleto"],
        auth_method="client_secret_basic",
    )
    party = federation.decide(registration.relying_party, "approve", by="test", reason="an integrator")
    event = AuditEvent.objects.filter(citizen=key.citizen).order_by("id").first()
    # A SAML portal (pysaml2), and a request of it waiting for the browser (``/saml/continue/<reference>``).
    import tempfile

    from chave.saml import idp as saml_idp
    from chave.saml import services as saml
    from chave.saml.tests.conftest import register as register_saml
    from chave.saml.tests.sp import pysaml2_portal

    saml_portal = pysaml2_portal(Path(tempfile.mkdtemp(prefix="chave-sweep-")), saml_idp.metadata())
    saml_sp = register_saml(saml_portal.metadata_xml)
    reference = saml.remember(saml_sp, saml.ParsedRequest(request_id="id-sweep", acs=saml_portal.acs,
                                                          relay_state=None, levels=[3]))
    # And a LogoutRequest of it that came by HTTP-POST (``/saml/slo/continue/<logout_reference>``).
    from saml2.saml import NameID

    _logout_id, logout = saml_portal.client.create_logout_request(saml_idp.slo_url(), saml_idp.entity_id(),
                                                                  name_id=NameID(text="sweep"), sign=False)
    logout_reference = saml.remember_logout(saml_sp, logout, "fim")
    return {
        "saml_portal": saml_portal, "reference": reference, "logout_reference": logout_reference,
        "key": key, "party": party, "secret": registration.client_secret, "credential_id": "x",
        "pk": key.citizen.pk, "event_id": event.pk if event else 1, "client_id": party.client_id,
        "kind": "mobile", "index": 0, "page": 1, "token": "x" * 32, "action_id": 1, "batch_id": 1,
        "letter_id": uuid.UUID(int=5), "encoded": base64.b64encode(b"\x30\x03\x02\x01\x00").decode(),
    }


SIGNING = ("/area/sign/", "/csc/", "/api/signing/", "/validate/", "/scmd/")


def _activate_signing(world) -> None:
    """Signing active for the citizen (a key in the HSM and a certificate): for the signing pages."""
    from chave.signing import services as signing

    world["credential_id"] = signing.activate_signing(world["key"], SIGNING_PIN, by="test").credential.credential_id


def _upload(client):
    response = client.post("/area/sign/upload/", {"level": "B-T", "documents": [
        SimpleUploadedFile("contrato.pdf", sample_pdf(2), "application/pdf")]})
    assert response.status_code == 302 and response["Location"] == "/area/sign/place/", response


def _place(client):
    response = client.post("/area/sign/place/", {"signing_pin": SIGNING_PIN, "d0-page": "1",
                                                 "d0-position": "bottom-right"})
    assert response.status_code == 302 and response["Location"] == "/area/sign/code/", response.content[:2000]


def _sign(client):
    _deliver_queued()
    response = client.post("/area/sign/code/", {"code": _last_code(PHONE)})
    assert response.status_code == 302 and response["Location"] == "/area/sign/done/", response.content[:2000]


def _pin_change(client):
    response = client.post("/area/pin/", {"pin": PIN})
    assert response.status_code == 302 and response["Location"] == "/area/pin/confirm/", response.content[:2000]


def _contact_change(client):
    response = client.post("/area/contact/email/", {"value": "nova.maria@example.pt"})
    assert response.status_code == 302 and response["Location"] == "/area/contact/confirm/", response.content[:2000]


# Where the citizen must be for a page to read its input: a step begun (documents uploaded and
# placed, a PIN or contact change waiting for its code), or done (documents signed).
CITIZEN_STEPS = {
    "signing:place": [_upload], "signing:page_image": [_upload], "signing:page_view": [_upload],
    "signing:code": [_upload, _place], "signing:resend": [_upload, _place],
    "signing:done": [_upload, _place, _sign], "signing:download": [_upload, _place, _sign],
    "portal:pin_confirm": [_pin_change], "portal:resend": [_pin_change], "portal:contact_confirm": [_contact_change],
}


class SignedClient(Client):
    """A paired device of the Chave app: every request it sends is signed with the device's key over
    exactly what is sent (``chave/app/signatures.py``), whatever the junk, so the app API's views
    read the input instead of refusing an unsigned call."""

    def __init__(self, device, **defaults):
        super().__init__(raise_request_exception=False, **defaults)
        self.device = device

    def generic(self, method, path, data="", content_type="application/octet-stream", secure=False, **extra):
        body = data.encode() if isinstance(data, str) else bytes(data or b"")
        split = path.split("?", 1)
        query = extra.get("QUERY_STRING", split[1] if len(split) > 1 else "")
        headers = self.device.headers(method, split[0], body)
        if query:  # the signature covers the query as sent
            from chave.testing.device import b64url

            text = "\n".join(["chave-app-v1", method.upper(), split[0], query, headers["Chave-Device"],
                              headers["Chave-Timestamp"], headers["Chave-Nonce"],
                              b64url(hashlib.sha256(body).digest())]).encode()
            headers["Chave-Signature"] = self.device.sign(text)
        for name, value in headers.items():
            extra.setdefault("HTTP_" + name.upper().replace("-", "_"), value)
        return super().generic(method, path, data, content_type, secure=secure, **extra)


def _device_client(world) -> Client:
    """A device paired with the citizen's key through the app's services (pairing code, the SMS
    code), and an approval of the key waiting for it (``request_id``)."""
    from chave.app import services as app
    from chave.testing.device import Device, DjangoTransport

    device = Device(DjangoTransport(_client()))
    device.pair(app.start_pairing(world["key"], assurance_level=3, ip=None).code, name="Sweep")
    _deliver_queued()
    device.confirm(_last_code(PHONE))
    waiting = app.request_approval(world["key"], login_transaction="sweep", portal="Portal")
    world["request_id"] = waiting.request.pk
    client = SignedClient(device, REMOTE_ADDR=next(_ADDRESSES))
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def _actors(route: Route, world, clock) -> list[tuple[str, Client]]:
    """Who sweeps ``route``: anyone; a citizen outside the counter, each staff role at the counter;
    someone half-way through the login on its steps; an integrator on the signing APIs and userinfo."""
    path = route.prefix
    actors = [("anonymous", _client())]
    if path.startswith("/counter/"):
        actors += [(f"staff:{role}", _staff_client(role, clock)) for role in ROLES]
    else:
        citizen = _citizen_client()
        for step in CITIZEN_STEPS.get(route.name, []):
            step(citizen)
        actors.append(("citizen", citizen))
    if path.startswith("/login/"):
        actors += [(f"signing-in:{step}", _signing_in_client(step=step)) for step in ("channel", "code")]
    if path.startswith(("/csc/", "/api/signing/")) and path in _openapi() or path.startswith("/oidc/userinfo"):
        actors.append(("integrator", _integrator_client(world["party"], world["secret"])))
    if path.startswith("/scmd/"):
        actors.append(("scmd-integrator", _scmd_client(world)))
    if "device_client" in world:
        actors.append(("device", world["device_client"]))
    return actors


def _scmd_client(world) -> Client:
    """An SCMD integrator's HTTP Basic credentials, sent on every request."""
    from chave.scmd import services as scmd

    made = scmd.add_integrator("Plataforma de Documentos (SOAP)", by="test")
    world["scmd_app"] = made.integrator.application_id.encode()
    client = _client()
    basic = base64.b64encode(f"{made.integrator.username}:{made.password}".encode()).decode()
    client.defaults["HTTP_AUTHORIZATION"] = f"Basic {basic}"
    return client


# --- The test --------------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_bad_input_gets_a_4xx_never_a_500(route, world, clock):
    sweep = Sweep()
    if route.prefix.startswith(SIGNING):
        _activate_signing(world)
    if route.prefix.startswith("/app/api/"):
        world["device_client"] = _device_client(world)
    paths = concrete_paths(route, world)
    plausible_path = paths[0][0]
    # Everyone signs in first: the sweep of a sign-in page may well use up its throttle.
    staff_swept = False
    for actor, client in _actors(route, world, clock):
        send = functools.partial(sweep.send, actor, client)
        if probe(client, plausible_path):
            # Roles differ at the door (the guard) and in what pages show: every role admitted gets
            # the queries, the first one the bodies too.
            posts = not (actor.startswith("staff:") and staff_swept)
            staff_swept = staff_swept or actor.startswith("staff:")
            for path, plausible in paths:
                if plausible:
                    cookies = copy.deepcopy(client.cookies)
                    sweep_path(send, route, path, world, posts=posts)
                    client.cookies = cookies  # still signed in for the paths that follow
                else:  # a path value that is wrong: the view must still answer 4xx
                    send("GET", path, "no query")
                    sweep_refused(send, path)
        else:  # turned away before any input is read (not signed in, not this role)
            sweep_refused(send, plausible_path)
            for path, _plausible in paths[1:]:
                send("GET", path, "no query")
        # CSRF enforced: a form without a token, or with a junk one, is refused with 403, not a 500.
        strict = _client(enforce_csrf_checks=True)
        strict.cookies.update(client.cookies)
        strict.defaults.update(client.defaults)  # the same address and token
        sweep.send(f"{actor}+csrf", strict, "POST", plausible_path, "no CSRF token", data="a=1",
                   content_type="application/x-www-form-urlencoded")
        strict.cookies[settings.CSRF_COOKIE_NAME] = "%ff" + LONG
        sweep.send(f"{actor}+csrf", strict, "POST", plausible_path, "junk CSRF cookie and token",
                   data=urlencode({"csrfmiddlewaretoken": "\x00" + LONG}),
                   content_type="application/x-www-form-urlencoded", HTTP_X_CSRFTOKEN="ÿ" * 64)
    print(f"{route.name}: {sweep.count} requests", dict(sorted(sweep.statuses.items())))
    assert not sweep.failures, sweep.report()
