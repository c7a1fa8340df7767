"""Settings for the test run: the machine's PostgreSQL unless DATABASE_URL says otherwise."""

import os

os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-0123456789abcdef")
os.environ["REALTIME_EMBEDDED_LISTENER"] = "0"  # tests start their own listeners
# Never the checkout's .env (make run's): the processes tests start inherit this too.
os.environ["REALTIME_ENV_FILE"] = ""
# In-process tests use the in-memory layer; the e2e tests hand Redis to the servers they start.
# Kept under another name for pytest-xdist's workers, which start after this and inherit the
# environment (tests/conftest.py gives each its own database of this Redis).
TEST_REDIS_URL = (
    os.environ.pop("REDIS_URL", "")
    or os.environ.get("TEST_REDIS_URL", "")
    or "redis://127.0.0.1:6379/15"
)
os.environ["TEST_REDIS_URL"] = TEST_REDIS_URL

from config.settings import *  # noqa: E402

# Tests create users often; the production hasher is slow on purpose.
# (PBKDF2 stays available for users that a Daphne subprocess must log in.)
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
