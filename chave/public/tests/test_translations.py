"""The Portuguese translation is complete, compiled, consistent and active.

- every msgid of the .po is translated and none is fuzzy;
- every translatable string in the code is in the .po (so nothing shows in English in pt-PT);
- the placeholders of each translation are those of its msgid;
- the compiled .mo holds exactly what the .po says (it was compiled after the last edit).
"""

from __future__ import annotations

import gettext
import os
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import translation

from .pofile import catalog, parse

pytestmark = pytest.mark.once  # the same on any database: SQLite pass only


CHAVE = Path(__file__).resolve().parents[2]
MESSAGES = CHAVE / "locale" / "pt_PT" / "LC_MESSAGES"
PO = MESSAGES / "django.po"
MO = MESSAGES / "django.mo"
FIX = "run `make messages`, translate in chave/locale/pt_PT/LC_MESSAGES/django.po, and compile"
PLACEHOLDER = re.compile(r"%(?:\([^)]+\))?[-#0 +]*\d*(?:\.\d+)?[sdifrx%]")


def _entries():
    return [e for e in parse(PO) if e.msgid]


def _name(entry) -> str:
    return f"line {entry.line}: {entry.msgid[:70]!r}"


def test_every_message_is_translated_and_none_is_fuzzy():
    entries = _entries()
    assert len(entries) > 100
    untranslated = [_name(e) for e in entries if not e.translated]
    fuzzy = [_name(e) for e in entries if e.fuzzy]
    assert not untranslated, f"untranslated ({FIX}):\n" + "\n".join(untranslated)
    assert not fuzzy, f"fuzzy ({FIX}):\n" + "\n".join(fuzzy)
    header = parse(PO)[0]
    assert not header.fuzzy and "Language: pt_PT" in header.msgstr[0]
    assert "plural=(n != 1)" in header.msgstr[0]


def test_translations_keep_the_placeholders_of_the_original():
    wrong = []
    for entry in _entries():
        originals = [entry.msgid] + ([entry.msgid_plural] if entry.msgid_plural else [])
        expected = sorted(set(PLACEHOLDER.findall(" ".join(originals))))
        for text in entry.msgstr.values():
            if sorted(set(PLACEHOLDER.findall(text))) != expected:
                wrong.append(_name(entry))
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


def test_the_compiled_catalogue_is_up_to_date_with_the_po():
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)._catalog
    expected = catalog(parse(PO))
    compiled = {k: v for k, v in compiled.items() if k != ""}
    expected = {k: v for k, v in expected.items() if k != ""}
    missing = sorted(str(k)[:70] for k in expected.keys() - compiled.keys())
    stale = sorted(str(k)[:70] for k in expected.keys() & compiled.keys() if expected[k] != compiled[k])
    extra = sorted(str(k)[:70] for k in compiled.keys() - expected.keys())
    assert not (missing or stale or extra), (
        f"django.mo is out of date: run `chave compilemessages -l pt_PT`\n"
        f"missing: {missing}\nchanged: {stale}\nonly in .mo: {extra}"
    )


@pytest.mark.skipif(not shutil.which("xgettext"), reason="needs GNU gettext (make system-deps installs it)")
def test_every_translatable_string_of_the_code_is_in_the_po(tmp_path):
    """Extract the strings of a copy of the code with makemessages and compare with the .po."""
    source = tmp_path / "chave"
    shutil.copytree(
        CHAVE, source,
        ignore=shutil.ignore_patterns("locale", "__pycache__", "tests", "conftest.py", "static", "migrations"),
    )
    cwd = os.getcwd()
    os.chdir(source)
    try:
        with override_settings(LOCALE_PATHS=[tmp_path / "locale"]):
            call_command("makemessages", locale=["pt_PT"], no_location=True, verbosity=0)
    finally:
        os.chdir(cwd)
    extracted = parse(tmp_path / "locale" / "pt_PT" / "LC_MESSAGES" / "django.po")
    in_code = {(e.msgctxt, e.msgid) for e in extracted if e.msgid}
    assert len(in_code) > 100 and (None, "Questions and answers") in in_code  # the extraction worked
    in_po = {(e.msgctxt, e.msgid) for e in _entries()}
    missing = sorted(msgid[:70] for _, msgid in in_code - in_po)
    assert not missing, f"strings in the code but not in the .po ({FIX}):\n" + "\n".join(missing)


def test_portuguese_is_active_for_the_code_too():
    """Strings from Python code (forms, validation, messages) come out in Portuguese."""
    from chave.delivery.messages import notice_message
    from chave.identity.validation import parse_mobile

    from django.core.exceptions import ValidationError

    with translation.override("pt-pt"), pytest.raises(ValidationError) as refused:
        parse_mobile("12")
    assert "telemóvel" in " ".join(refused.value.messages)
    text = notice_message("pin_changed", language="pt-pt")
    assert text.body.startswith("Chave: o PIN da sua Chave Móvel Digital foi alterado.")


@pytest.mark.django_db
def test_a_portuguese_browser_gets_the_login_page_in_portuguese():
    page = Client().get("/login/", HTTP_ACCEPT_LANGUAGE="pt-PT,pt;q=0.8").content.decode()
    assert '<html lang="pt-PT">' in page
    assert "Número de telemóvel ou e-mail" in page
    assert "Mobile number or e-mail" not in page
