"""The README and the tutorial: short enough to read, and every command in them one the
checkout `make run` made supports (a make target, a manage.py command, a URL the server
serves). tests/test_local_env.py runs the token command as a new terminal would; the docs'
links are checked by `make lint` (mkdocs build --strict)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.management import get_commands
from django.urls import Resolver404, resolve

from realtime.routing import websocket_urlpatterns
from tests.helpers import ROOT

README = ROOT / "README.md"
DOCS_WITH_COMMANDS = [README, ROOT / "docs" / "tutorial.md"]
MAKEFILE = (ROOT / "Makefile").read_text()
TARGETS = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.MULTILINE))
MAKE_VARIABLES = set(re.findall(r"^([A-Z_]+) \?=", MAKEFILE, re.MULTILINE))
DEFAULT_ADDRESS = "{}:{}".format(
    re.search(r"^HOST \?= (\S+)", MAKEFILE, re.MULTILINE)[1],  # type: ignore[index]
    re.search(r"^PORT \?= (\S+)", MAKEFILE, re.MULTILINE)[1],  # type: ignore[index]
)
BUILT_IN_TABLES = {
    "violation_humandetections",
    "violation_lotodetections",
    "violation_ppedetections",
}


def blocks(path: Path, *languages: str) -> list[str]:
    """The fenced code blocks of a Markdown file in these languages."""
    found = re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)
    return [body for language, body in found if language in languages]


def shell_commands(path: Path) -> list[list[str]]:
    """Each command of the file's sh blocks, as words (comments and `&&` chains split)."""
    commands = []
    for block in blocks(path, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|", line):
                words = shlex.split(part, comments=True)
                if words:
                    commands.append(words)
    return commands


def test_the_readme_is_at_most_150_lines() -> None:
    assert len(README.read_text().splitlines()) <= 150


@pytest.mark.parametrize("path", DOCS_WITH_COMMANDS, ids=lambda p: p.name)
def test_every_make_command_is_a_target_of_the_makefile(path: Path) -> None:
    makes = [words for words in shell_commands(path) if words[0] == "make"]
    assert makes, f"{path.name} shows no make command"
    for words in makes:
        assert words[1] in TARGETS, f"{path.name}: make {words[1]} is not a target"
        for variable in (word.partition("=")[0] for word in words[2:] if "=" in word):
            assert variable in MAKE_VARIABLES, f"{path.name}: make does not read {variable}"


@pytest.mark.parametrize("path", DOCS_WITH_COMMANDS, ids=lambda p: p.name)
def test_every_manage_py_command_exists_and_runs_from_the_checkouts_venv(path: Path) -> None:
    commands = get_commands()
    shown = [
        words
        for words in shell_commands(path)
        if "manage.py" in words or any(w.endswith("manage.py") for w in words)
    ]
    for words in shown:
        at = next(i for i, w in enumerate(words) if w.endswith("manage.py"))
        # A new terminal has no virtualenv active: the checkout's python, as make run made it.
        assert words[at - 1].endswith(".venv/bin/python"), f"{path.name}: {' '.join(words)}"
        assert words[at + 1] in commands, f"{path.name}: no manage.py {words[at + 1]}"


@pytest.mark.parametrize("path", DOCS_WITH_COMMANDS, ids=lambda p: p.name)
def test_every_url_is_one_the_server_of_make_run_serves(path: Path) -> None:
    urls = re.findall(r"(?:https?|ws)://[^\s\"'`)<>]+", path.read_text())
    local = [u for u in urls if "127.0.0.1" in u or "localhost" in u]
    assert local
    websocket_routes = {str(p.pattern) for p in websocket_urlpatterns if str(p.pattern)}
    for url in local:
        parts = urlsplit(url)
        if parts.port == 8001:  # make docs
            continue
        assert parts.netloc == DEFAULT_ADDRESS, f"{path.name}: {url} is not make run's address"
        if parts.scheme == "ws":
            assert parts.path.lstrip("/") in websocket_routes, f"{path.name}: {url}"
            continue
        try:
            resolve(parts.path)
        except Resolver404:
            pytest.fail(f"{path.name}: the server has no {parts.path}")


@pytest.mark.parametrize("path", DOCS_WITH_COMMANDS, ids=lambda p: p.name)
def test_inserts_are_dated_now_in_a_built_in_table(path: Path) -> None:
    # A fixed date falls out of the counters' 24 hours and the chart (the README's did).
    inserts = [b for b in blocks(path, "sql") if "INSERT INTO" in b]
    assert inserts
    for insert in inserts:
        assert re.search(r"INSERT INTO (\w+)", insert)[1] in BUILT_IN_TABLES  # type: ignore[index]
        assert "current_date" in insert and "localtime" in insert, insert
        assert not re.search(r"'\d{4}-\d{2}-\d{2}'", insert), insert


def test_files_the_tutorial_copies_are_in_the_checkout() -> None:
    for words in shell_commands(ROOT / "docs" / "tutorial.md"):
        if words[0] == "cp":
            assert (ROOT / words[1]).is_file(), words[1]
