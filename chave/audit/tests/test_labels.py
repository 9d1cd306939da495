"""Every audit event kind, outcome and channel the code records has a label in both languages.

Read from the code itself: each ``audit.record(...)`` call's kind, ``outcome=`` and ``channel=``
when written as text, a module constant, a conditional of texts or an f-string over a known set.
What only a run can tell (a refusal reason passed in a variable) is checked by the test session
(``_every_audit_event_has_labels`` in chave/conftest.py).
"""

import ast
import importlib
from pathlib import Path

import pytest
from django.utils import translation

from chave.audit import labels
from chave.counter.models import ActionKind
from chave.delivery.models import MessageStatus
from chave.federation.models import RelyingParty

pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[2]

# The f-strings that make a kind, with the values their placeholder takes.
TEMPLATED = {
    "key.{}": ["locked", "blocked"],  # identity: the PIN decision that locked or blocked the key
    "counter.{}": [k.value for k in ActionKind],
    "rp.{}": [s.value for s in RelyingParty.State] + ["reinstated"],
    "{}.consent": ["oidc", "saml"],
    "{}.authorize": ["oidc", "saml"],
}


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)


def _texts(node, module: str) -> list[str] | None:
    """The texts an argument can be, or None when only a run can tell."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _texts(node.body, module), _texts(node.orelse, module)
        return body + orelse if body is not None and orelse is not None else None
    if isinstance(node, ast.Name) and node.id.isupper():  # a module constant: CHANNEL, APP_QR
        value = getattr(importlib.import_module(module), node.id, None)
        return [str(value)] if isinstance(value, str) else None
    if isinstance(node, ast.Attribute) and node.attr.isupper() and isinstance(node.value, ast.Name):
        owner = getattr(importlib.import_module(module), node.value.id, None)
        value = getattr(owner, node.attr, None)
        return [str(value)] if isinstance(value, str) else None
    if isinstance(node, ast.JoinedStr):
        shape = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        return [shape.format(v) for v in TEMPLATED[shape]] if shape in TEMPLATED else None
    return None


def recorded() -> dict[str, set[str]]:
    found = {"kind": set(), "outcome": set(), "channel": set()}
    for path in sorted(ROOT.rglob("*.py")):
        if "tests" in path.parts or "migrations" in path.parts or path.name == "conftest.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "record"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit"):
                continue
            module = _module_of(path)
            for name, value in [("kind", node.args[0] if node.args else None)] + [
                    (k.arg, k.value) for k in node.keywords if k.arg in ("outcome", "channel")]:
                texts = _texts(value, module) if value is not None else None
                assert texts is not None or name != "kind", f"{path}:{node.lineno}: a kind this test cannot read"
                found[name].update(t for t in texts or [] if t)
    return found


def test_the_code_records_many_kinds():
    found = recorded()
    # The scan reads what it should: the kinds of every app, the counter's channel, the app's methods.
    assert {"login", "card.recover", "signing.sign", "counter.unlock", "letter.posted"} <= found["kind"]
    assert {"counter", "app_qr", "citizen_card"} <= found["channel"]
    assert len(found["kind"]) > 60


def test_every_recorded_kind_outcome_and_channel_has_a_label():
    found = recorded()
    found["outcome"] |= {s.value for s in MessageStatus}
    gaps = [gap for kind in found["kind"] for gap in labels.missing(kind, "", "")]
    gaps += [gap for outcome in found["outcome"] for gap in labels.missing("login", outcome, "")]
    gaps += [gap for channel in found["channel"] for gap in labels.missing("login", "", channel)]
    assert gaps == []


@pytest.mark.parametrize("table", ["EVENTS", "OUTCOMES", "CHANNELS"])
def test_every_label_is_translated(table):
    untranslated = []
    for name, label in getattr(labels, table).items():
        with translation.override("pt-pt"):
            portuguese = str(label)
        with translation.override("en"):
            english = str(label)
        if portuguese == english:
            untranslated.append(name)
    assert untranslated == []


def test_a_missing_label_is_named():
    assert labels.missing("card.teleport", "zapped", "pigeon") == [
        "event 'card.teleport'", "outcome 'zapped' (of card.teleport)", "channel 'pigeon' (of card.teleport)"]
    # and the page still says something human, never the raw name
    with translation.override("en"):
        assert labels.event_label("card.teleport") == "Security event"
        assert labels.outcome_label("zapped") == "Not successful"
        assert labels.outcome_label("403") == "Refused"
    # A model's choice stands for its value (an enum member does not hash like its value).
    from chave.signing.models import SigningRequest

    assert all(labels.missing("signing.pin", "ok", via) == [] for via in SigningRequest.Via)
