"""The checkout's local settings file (`.env`): written by `make run`, read by the settings.

So a command typed in a new terminal (`.venv/bin/python manage.py issue_token admin`)
sees what `make run` saw, without exporting anything. python-dotenv reads and edits it:
quoting and comments as every other tool that reads a `.env` understands them. A variable
set in the environment wins over the file. `REALTIME_ENV_FILE` names another file, or,
empty, none (the tests and `deploy/run.sh`: a deployment is set by its environment).

    python -m config.local_env      # what `make run` runs first
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values, load_dotenv, set_key

ENV_FILE_VARIABLE = "REALTIME_ENV_FILE"
BASE_DIR = Path(__file__).resolve().parent.parent
# What `make run` was given is what a command in another terminal must reach too.
FOLLOWED = ("DATABASE_URL", "REDIS_URL")
HEADER = """\
# Local settings of this checkout, written by `make run` (git-ignored; keep it to yourself).
# The settings read it (config/local_env.py); a variable set in the environment wins.
# Every variable: docs/reference/settings.md. For development only: a deployment sets its
# environment, and deploy/run.sh reads no .env.
DJANGO_DEBUG=1
"""


def env_file(environ: Mapping[str, str] = os.environ, base_dir: Path = BASE_DIR) -> Path | None:
    """The local settings file: `.env` in the checkout, unless REALTIME_ENV_FILE says."""
    named = environ.get(ENV_FILE_VARIABLE)
    if named is None:
        return base_dir / ".env"
    return Path(named).expanduser() if named.strip() else None


def load(environ: Mapping[str, str] = os.environ) -> None:
    """Fill in os.environ from the file; what the environment sets already stays."""
    path = env_file(environ)
    if path is not None and path.is_file():
        load_dotenv(path, override=False)


def write(path: Path, environ: Mapping[str, str]) -> list[str]:
    """The file as `make run` wants it; the names of what it wrote or changed."""
    written = []
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(HEADER)
        written.append("DJANGO_DEBUG")
    current = dotenv_values(path)
    for name in FOLLOWED:
        value = environ.get(name, "")
        if value and current.get(name) != value:
            set_key(path, name, value)
            written.append(name)
    return written


def main() -> None:
    path = env_file()
    if path is None:
        return
    written = write(path, os.environ)
    if written:
        sys.stdout.write(f"Local settings in {path}: {', '.join(written)}\n")


if __name__ == "__main__":
    main()
