"""``make audit`` where pip-audit's advisory services cannot be reached: the fallback to PyPI's
per-project JSON (scripts/audit-deps.py), against a PyPI JSON API on loopback serving what PyPI
serves. A dependency at its latest release is audited (a fixable advisory fails the run); one at an
older release is listed as not audited, never passed as clean."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.once

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit-deps.py"
PROJECTS = {
    "/pypi/goodlib/json": {"info": {"version": "2.0"}, "vulnerabilities": []},
    "/pypi/badlib/json": {"info": {"version": "1.4"}, "vulnerabilities": [
        {"id": "PYSEC-2026-1", "aliases": ["CVE-2026-0001"], "fixed_in": ["1.5"], "withdrawn": None},
        {"id": "GHSA-xxxx", "aliases": [], "fixed_in": [], "withdrawn": None},
        {"id": "PYSEC-2025-9", "aliases": [], "fixed_in": ["1.5"], "withdrawn": "2026-01-01T00:00:00Z"}]},
    "/pypi/oldlib/json": {"info": {"version": "3.0"}, "vulnerabilities": []},
}


@pytest.fixture
def pypi(monkeypatch):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(PROJECTS[self.path]).encode() if self.path in PROJECTS else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CHAVE_AUDIT_PYPI_URL", f"http://127.0.0.1:{server.server_port}/pypi")
    spec = importlib.util.spec_from_file_location("audit_deps", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    server.shutdown()
    server.server_close()


def test_dependencies_pip_audit_skipped_are_audited_from_the_latest_release_s_advisories(pypi, tmp_path, monkeypatch):
    lock = tmp_path / "requirements.lock"
    lock.write_text("goodlib==2.0 \\\n    --hash=sha256:00\nbadlib==1.4 \\\n    --hash=sha256:00\n"
                    "oldlib==2.9 ; python_version >= '3.11' \\\n    --hash=sha256:00\nnowhere==1.0\n")
    report = {"dependencies": [{"name": n, "skip_reason": "Dependency not found on PyPI"}
                               for n in ("goodlib", "badlib", "oldlib", "nowhere")]}

    def pip_audit(command, **kwargs):
        return type("Done", (), {"stdout": json.dumps(report), "returncode": 1, "stderr": ""})()

    monkeypatch.setattr(pypi.subprocess, "run", pip_audit)  # pip-audit as it answers without its services
    fixable, unfixed, skipped = pypi.audit(lock)
    assert fixable == ["badlib 1.4: PYSEC-2026-1 (fixed in 1.5)"]
    assert unfixed == ["badlib 1.4: GHSA-xxxx (no fixed version yet)"]  # withdrawn ones are not listed
    assert sorted(skipped) == [
        "nowhere 1.0 (no advisory service answered: HTTPError)",
        "oldlib 2.9 (not the latest release, 3.0: only the latest one's advisories are reachable here)"]
    assert pypi.main([str(lock)]) == 1  # a fix is available: the run fails


def test_an_ignored_advisory_is_skipped_by_its_id_or_alias(pypi, tmp_path, monkeypatch):
    lock = tmp_path / "requirements.lock"
    lock.write_text("badlib==1.4\n")
    monkeypatch.setattr(pypi, "ignored", lambda: ["CVE-2026-0001", "GHSA-xxxx"])
    monkeypatch.setattr(pypi.subprocess, "run", lambda command, **kwargs: type("Done", (), {
        "stdout": json.dumps({"dependencies": [{"name": "badlib", "skip_reason": "not found"}]}),
        "returncode": 1, "stderr": ""})())
    assert pypi.audit(lock) == ([], [], [])
