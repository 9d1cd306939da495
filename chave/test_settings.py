"""Settings for the test suite: the product's settings with CHAVE_ENV=test.

Only cheaper Argon2 parameters differ (PIN hashing is measured by ``bench/``, not by tests);
everything else is what runs in development and production.
"""

import os

os.environ.setdefault("CHAVE_ENV", "test")
os.environ.setdefault("CHAVE_ARGON2_MEMORY_KIB", "8192")
os.environ.setdefault("CHAVE_ARGON2_TIME_COST", "2")

from chave.settings import *  # noqa: E402,F401,F403
