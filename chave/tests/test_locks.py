"""The lock files agree with pyproject.toml: each names every dependency its extras declare (what
``make install``, ``make install-test`` and ``make install-bench`` check before installing), so a
dependency added to pyproject.toml without ``make lock`` fails CI, not a newcomer's ``make bench``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("lock, extras", [("requirements.lock", []), ("requirements-test.lock", ["test"]),
                                          ("requirements-bench.lock", ["test", "bench"])])
def test_the_lock_file_has_every_declared_dependency(lock, extras):
    done = subprocess.run([sys.executable, "scripts/check-lock.py", lock, *extras], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
