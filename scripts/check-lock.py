#!/usr/bin/env python3
"""Is the lock file up to date with pyproject.toml? ``check-lock.py LOCK [EXTRA ...]``

Every requirement of the project (and of the named extras) must be pinned in LOCK by a version it
accepts. Another engineer adding a dependency to pyproject.toml without running ``make lock`` gets
this message instead of an ImportError halfway through the tests. Exit 1 when the lock is stale.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a bare virtualenv: pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def pins(lock: Path) -> dict[str, str]:
    found = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    lock, extras = Path(argv[0]), argv[1:]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project.get("dependencies", []))
    for extra in extras:
        wanted += project.get("optional-dependencies", {}).get(extra, [])
    if not lock.exists():
        print(f"{lock} does not exist: run `make lock`", file=sys.stderr)
        return 1
    pinned = pins(lock)
    stale = []
    for text in wanted:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            stale.append(f"{requirement} is not in it")
        elif not requirement.specifier.contains(version, prereleases=True):
            stale.append(f"{requirement} does not accept its pin {requirement.name}=={version}")
    if stale:
        print(f"{lock} is out of date with pyproject.toml:\n  " + "\n  ".join(stale)
              + "\nRegenerate it with `make lock` (and commit the lock files).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
