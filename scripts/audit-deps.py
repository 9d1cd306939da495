#!/usr/bin/env python3
"""The dependency vulnerability check of CI: ``audit-deps.py LOCK...`` (``make audit``).

Runs pip-audit (from the tools virtualenv, ``.tools``) on each hashed lock file, without
installing anything (``--disable-pip``), against the Python Packaging Advisory Database as PyPI
serves it. Every known vulnerability is listed; the check fails (exit 1) when one has a fixed
version, since then the fix is a ``make lock`` away. One without a fix is reported and does not
fail the run: there is nothing to upgrade to (read it, and decide). A vulnerability judged not to
apply can be named in ``scripts/audit-ignore.txt`` (its id, then why), which pip-audit then skips.

A dependency pip-audit could not look up (the advisory service unreachable, as on a machine that
reaches only a PyPI mirror without its per-release JSON API) is listed as not audited: a warning,
or a failure with ``CHAVE_AUDIT_STRICT=1`` (set it where CI reaches PyPI itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT = ROOT / ".tools" / "bin" / "pip-audit"
IGNORE = ROOT / "scripts" / "audit-ignore.txt"


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
    for dependency in report.get("dependencies", []):
        if dependency.get("skip_reason"):
            skipped.append(dependency["name"])
        for vuln in dependency.get("vulns", []):
            line = f"{dependency['name']} {dependency['version']}: {vuln['id']}"
            if vuln.get("fix_versions"):
                fixable.append(f"{line} (fixed in {', '.join(vuln['fix_versions'])})")
            else:
                unfixed.append(f"{line} (no fixed version yet)")
    return fixable, unfixed, skipped


def main(locks: list[str]) -> int:
    failed = fix_available = False
    strict = os.environ.get("CHAVE_AUDIT_STRICT", "") not in ("", "0")
    for name in locks:
        fixable, unfixed, skipped = audit(ROOT / name)
        if skipped:
            print(f"{name}: {'ERROR' if strict else 'WARNING'}: {len(skipped)} dependencies could not be audited "
                  f"(the advisory service did not answer for them): {', '.join(sorted(skipped))}")
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
