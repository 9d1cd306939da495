#!/usr/bin/env python3
"""The dependency vulnerability check of CI: ``audit-deps.py LOCK...`` (``make audit``).

Runs pip-audit (from the tools virtualenv, ``.tools``) on each hashed lock file, without
installing anything (``--disable-pip``), against the Python Packaging Advisory Database as PyPI
serves it. Every known vulnerability is listed; the check fails (exit 1) when one has a fixed
version, since then the fix is a ``make lock`` away. One without a fix is reported and does not
fail the run: there is nothing to upgrade to (read it, and decide). A vulnerability judged not to
apply can be named in ``scripts/audit-ignore.txt`` (its id, then why), which pip-audit then skips.

A dependency pip-audit could not look up (its advisory services unreachable: pip-audit asks PyPI's
per-release JSON API, ``/pypi/NAME/VERSION/json``, or OSV at api.osv.dev) is looked up once more in
PyPI's per-project JSON (``/pypi/NAME/json``), which some mirrors do serve: its ``vulnerabilities``
are those of the project's latest release (PyPI fills them from the same Python Packaging
Advisory Database, through OSV), so a dependency locked at the latest release is audited that way
(fixable ones fail the run as above). One locked at an older release cannot be: it is listed as
not audited, with the latest release named: a warning, or a failure with ``CHAVE_AUDIT_STRICT=1``
(set it where CI reaches PyPI or OSV itself). ``CHAVE_AUDIT_PYPI_URL`` (default
``https://pypi.org/pypi``) names the JSON API.

On the development machines of this project (a PyPI mirror with the per-project JSON only, no
route to OSV), every dependency at its latest release is audited and the rest are listed; ``make
lock UPGRADE=1`` brings more of them under the check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT = ROOT / ".tools" / "bin" / "pip-audit"
IGNORE = ROOT / "scripts" / "audit-ignore.txt"
PYPI_JSON = os.environ.get("CHAVE_AUDIT_PYPI_URL", "https://pypi.org/pypi").rstrip("/")


def ignored() -> list[str]:
    if not IGNORE.exists():
        return []
    return [line.split()[0] for line in IGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]


def audit(lock: Path) -> tuple[list[str], list[str], list[str]]:
    command = [str(PIP_AUDIT), "--requirement", str(lock), "--disable-pip", "--require-hashes",
               "--format", "json", "--progress-spinner", "off"]
    for vuln in ignored():
        command += ["--ignore-vuln", vuln]
    done = subprocess.run(command, capture_output=True, text=True)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise SystemExit(f"pip-audit could not audit {lock} (exit {done.returncode}):\n{done.stderr.strip()}")
    fixable, unfixed, skipped = [], [], []
    versions = locked_versions(lock)
    for dependency in report.get("dependencies", []):
        vulns = dependency.get("vulns", [])
        if dependency.get("skip_reason"):
            name = dependency["name"]
            found = latest_release_vulns(name, dependency.get("version") or versions.get(name.lower(), ""))
            if isinstance(found, str):
                skipped.append(f"{name} {versions.get(name.lower(), '?')} ({found})")
                continue
            vulns = [v for v in found if v["id"] not in ignored() and not set(v.get("aliases", [])) & set(ignored())]
            dependency = {**dependency, "version": versions.get(name.lower(), "?")}
        for vuln in vulns:
            line = f"{dependency['name']} {dependency['version']}: {vuln['id']}"
            if vuln.get("fix_versions"):
                fixable.append(f"{line} (fixed in {', '.join(vuln['fix_versions'])})")
            else:
                unfixed.append(f"{line} (no fixed version yet)")
    return fixable, unfixed, skipped


def locked_versions(lock: Path) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line of a lock file (names lower-cased)."""
    pins = {}
    for line in lock.read_text().splitlines():
        head = line.split(";")[0].split("\\")[0].strip()
        if "==" in head and not head.startswith(("#", "-")):
            name, _, version = head.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def latest_release_vulns(name: str, version: str) -> list[dict] | str:
    """The advisories of ``name`` ``version`` from PyPI's per-project JSON when ``version`` is the
    latest release (``[{id, aliases, fix_versions}]``), or why it cannot say (a sentence)."""
    try:
        with urllib.request.urlopen(f"{PYPI_JSON}/{name}/json", timeout=30) as answer:  # noqa: S310 - a fixed https API
            project = json.load(answer)
    except (OSError, ValueError) as exc:
        return f"no advisory service answered: {exc.__class__.__name__}"
    latest = (project.get("info") or {}).get("version")
    if latest != version:
        return f"not the latest release, {latest}: only the latest one's advisories are reachable here"
    if not isinstance(project.get("vulnerabilities"), list):
        return "the project's JSON has no advisory data"
    return [{"id": v.get("id", "?"), "aliases": v.get("aliases") or [], "fix_versions": v.get("fixed_in") or []}
            for v in project["vulnerabilities"] if not v.get("withdrawn")]


def main(locks: list[str]) -> int:
    failed = fix_available = False
    strict = os.environ.get("CHAVE_AUDIT_STRICT", "") not in ("", "0")
    for name in locks:
        fixable, unfixed, skipped = audit(ROOT / name)
        if skipped:
            print(f"{name}: {'ERROR' if strict else 'WARNING'}: {len(skipped)} dependencies could not be audited:")
            for line in sorted(skipped):
                print(f"  {line}")
            failed = failed or strict
        for line in unfixed:
            print(f"{name}: known vulnerability without a fix: {line}")
        for line in fixable:
            print(f"{name}: VULNERABLE, fix available: {line}")
        if fixable:
            failed = fix_available = True
        elif not unfixed and not skipped:
            print(f"{name}: no known vulnerabilities")
    if fix_available:
        print("Upgrade: raise the lower bound in pyproject.toml if needed, then `make lock`.", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["requirements-test.lock"]))
