"""What the docs and docstrings point at exists: every decision they cite has its record in
docs/decisions/, every module they name is where they say.

The dated rounds of docs/performance-history.md keep the names of their day, and a SQL file
once landed is never edited (realtime.sql_files): both are left out of the module check.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import ROOT

DECISIONS = ROOT / "docs" / "decisions"

# Names that look like modules but are not: permissions, checks, settings, scope keys, salts.
NOT_MODULES = re.compile(
    r"realtime\.("
    r"[EW]\d{3}|view_all_sites|manage_sites|manage_notifications|acknowledge\w*|view_\w+"
    r"|notify_queue_limit|pending_bytes|server_send|bus_signing\.v1|bridge|add_\w+|change_\w+"
    r"|delete_\w+|export_history|shelve\w*)\b"
)


def cited_files(*, module_check: bool = False) -> list[Path]:
    files = [
        ROOT / "README.md",
        *ROOT.glob("docs/**/*.md"),
        *ROOT.glob("realtime/**/*.py"),
        *ROOT.glob("config/*.py"),
        *ROOT.glob("bench/*.py"),
        *ROOT.glob("templates/**/*.html"),
    ]
    if not module_check:
        files += ROOT.glob("sql/0*.sql")
    if module_check:
        # Migrations name models ("realtime.contact"), not modules, and never change.
        files = [f for f in files if "migrations" not in f.parts]
    return [f for f in files if f.name != "performance-history.md" or not module_check]


def test_every_decision_cited_has_its_record() -> None:
    records = {int(p.name[:3]) for p in DECISIONS.glob("[0-9][0-9][0-9]-*.md")}
    missing = []
    for path in cited_files():
        text = path.read_text()
        for match in re.finditer(r"[Dd]ecision (\d+)\b", text):
            if int(match.group(1)) not in records:
                missing.append(f"{path.relative_to(ROOT)}: {match.group()}")
        for match in re.finditer(r"docs/decisions/\s*(\d{3}-[\w-]+\.md)", text):
            if not (DECISIONS / match.group(1)).exists():
                missing.append(f"{path.relative_to(ROOT)}: {match.group()}")
    assert records, "no decision records"
    assert not missing


def _exists(dotted: str) -> bool:
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        path = ROOT.joinpath(*parts[:end])
        if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
            # realtime.x.y: x must be a module or a package; what follows may be a name in it.
            return end >= 2
    return False


def test_every_module_named_exists() -> None:
    missing = []
    for path in cited_files(module_check=True):
        text = path.read_text()
        for match in re.finditer(r"\brealtime/[\w/]+\.py\b", text):
            if not (ROOT / match.group()).exists():
                missing.append(f"{path.relative_to(ROOT)}: {match.group()}")
        for match in re.finditer(r"\brealtime(?:\.[a-z_]\w*)+", text):
            if NOT_MODULES.match(match.group()):
                continue
            if not _exists(match.group()):
                missing.append(f"{path.relative_to(ROOT)}: {match.group()}")
    assert not missing
