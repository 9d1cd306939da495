"""Settings for the test suite: the product's settings with CHAVE_ENV=test.

Only cheaper Argon2 parameters differ (PIN hashing is measured by ``bench/``, not by tests);
everything else is what runs in development and production.
"""

import os

os.environ.setdefault("CHAVE_ENV", "test")
os.environ.setdefault("CHAVE_ARGON2_MEMORY_KIB", "8192")
os.environ.setdefault("CHAVE_ARGON2_TIME_COST", "2")

from chave.settings import *  # noqa: E402,F401,F403

# One test database file per test session (process), so two sessions run at once from one checkout
# (CI's passes, a developer's second run) never share, and wipe, each other's file.
# Django removes the file at the end; its WAL companions, and all of it after a crash, go at exit.
if "TEST" in DATABASES["default"]:  # noqa: F405 - the embedded SQLite default
    import atexit
    import contextlib

    _test_database = str(DATA_DIR / f"test-chave-{os.getpid()}.sqlite3")  # noqa: F405
    DATABASES["default"]["TEST"]["NAME"] = _test_database  # noqa: F405

    @atexit.register
    def _remove_test_database():
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(_test_database + suffix)
