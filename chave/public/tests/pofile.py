"""A small reader of gettext .po files, for the translation tests (no third-party dependency).

It understands what ``makemessages`` writes: translator and flag comments, ``msgctxt``,
``msgid``, ``msgid_plural``, ``msgstr`` / ``msgstr[n]``, continuation lines and obsolete (``#~``)
entries, which it skips, as ``msgfmt`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+"(.*)"\s*$')


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(self.msgstr.values())


def parse(path: Path | str) -> list[Entry]:
    """Every live entry of the file, the header (msgid "") included, in file order."""
    return parse_text(Path(path).read_text(encoding="utf-8"), name=str(path))


def parse_text(text: str, *, name: str = "<po>") -> list[Entry]:
    entries: list[Entry] = []
    current: Entry | None = None
    target: tuple[str, int] | None = None

    def finish():
        nonlocal current, target
        if current is not None:
            entries.append(current)
        current, target = None, None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            continue  # obsolete entry
        if line.startswith("#,"):
            if current is not None and target is not None:
                finish()
            current = current or Entry(line=number)
            current.flags.update(flag.strip() for flag in line[2:].split(",") if flag.strip())
            continue
        if line.startswith("#"):
            if current is not None and target is not None:
                finish()
            continue
        match = _KEYWORD.match(line)
        if match:
            keyword, index, text = match.group(1), match.group(2), _unquote(match.group(3))
            if keyword in ("msgctxt", "msgid") and current is not None and target is not None and target[0] == "msgstr":
                finish()
            current = current or Entry(line=number)
            if keyword == "msgctxt":
                current.msgctxt, target = text, ("msgctxt", 0)
            elif keyword == "msgid":
                current.msgid, target = text, ("msgid", 0)
            elif keyword == "msgid_plural":
                current.msgid_plural, target = text, ("msgid_plural", 0)
            else:
                n = int(index) if index is not None else 0
                current.msgstr[n], target = text, ("msgstr", n)
            continue
        if line.startswith('"') and line.endswith('"') and current is not None and target is not None:
            text = _unquote(line[1:-1])
            kind, n = target
            if kind == "msgstr":
                current.msgstr[n] += text
            else:
                setattr(current, kind, getattr(current, kind) + text)
            continue
        raise ValueError(f"{name}:{number}: cannot read {raw!r}")
    finish()
    return entries


def catalog(entries: list[Entry]) -> dict:
    """What ``msgfmt`` compiles and ``gettext.GNUTranslations`` loads: translated, non-fuzzy entries
    (the header always), keyed like ``GNUTranslations._catalog``."""
    result: dict = {}
    for entry in entries:
        if entry.msgid and (entry.fuzzy or not entry.translated):
            continue
        key = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural is None:
            result[key] = entry.msgstr.get(0, "")
        else:
            for n, text in entry.msgstr.items():
                result[(key, n)] = text
    return result
