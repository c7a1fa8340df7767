"""The translations in locale/: made up to date (`make messages`) or checked (`make lint`).

    python scripts/messages.py update   extract every marked string of the templates, the
                                        Python code and static/realtime/*.js into
                                        locale/<lang>/LC_MESSAGES/{django,djangojs}.po (new
                                        ones untranslated), and compile the .mo files
    python scripts/messages.py check    fail when a marked string has no translation in a
                                        shipped language (or a fuzzy one), when a .po file is
                                        not what `update` would write, or a .mo file not its
                                        .po compiled

Extraction is Django's makemessages (GNU gettext's xgettext), in a copy of the project for
`check`, so that checking changes nothing. The .mo files are committed: the product runs
without gettext installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
DOMAINS = ("django", "djangojs")
# Not the product's strings: others' code, the tests, the docs, the build's outputs.
IGNORE = [
    "node_modules",
    "static/vendor",
    "staticfiles",
    "tests",
    "bench",
    "docs",
    "site",
    "scripts",
    "deploy",
    "locale",
]


def languages() -> list[str]:
    from django.conf import settings

    return [code for code, _ in settings.LANGUAGES if code != settings.LANGUAGE_CODE]


# What makemessages reads (and locale/, which it writes): copied for `check`.
SOURCES = ("manage.py", "config", "realtime", "templates", "static/realtime", "locale")


def extract(root: Path) -> None:
    """makemessages for every shipped language and both domains, in the project at `root`
    (its locale/ written: makemessages writes where it finds one, whatever LOCALE_PATHS
    says, so a check extracts in a copy of the project)."""
    from django.core.management import call_command
    from django.test import override_settings

    os.chdir(root)
    with override_settings(LOCALE_PATHS=[root / "locale"]):
        for domain in DOMAINS:
            call_command(
                "makemessages",
                locale=languages(),
                domain=domain,
                ignore_patterns=IGNORE,
                add_location="never",
                no_obsolete=True,
                no_wrap=True,
                verbosity=0,
            )


def copy_of_project(into: Path) -> Path:
    for part in SOURCES:
        source = ROOT / part
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(source, into / part, ignore=ignore)
        else:
            (into / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / part)
    return into


def compile_mo(po_path: Path) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        mo = Path(tmp) / "out.mo"
        subprocess.run(
            ["msgfmt", "--check-format", "-o", str(mo), str(po_path)], check=True, cwd=ROOT
        )
        return mo.read_bytes()


def without_dates(text: str) -> str:
    return "\n".join(
        line for line in text.splitlines() if not line.startswith('"POT-Creation-Date:')
    )


# A new catalog's header, as makemessages leaves it, is fuzzy: msgfmt would leave it out of
# the .mo, and with it the charset (gettext would read the translations as ASCII).
HEADER = {
    "Project-Id-Version": "safety-violations",
    "Content-Type": "text/plain; charset=UTF-8",
    "Plural-Forms": "nplurals=2; plural=(n != 1);",  # German's and Spanish's
}


def settle_header(po_path: Path) -> None:
    po = polib.pofile(str(po_path), wrapwidth=0)
    if not po.metadata_is_fuzzy:
        return
    po.metadata_is_fuzzy = False
    po.metadata.update(HEADER)
    po.metadata["Language"] = po_path.parent.parent.name
    po.save()


def update() -> int:
    LOCALE.mkdir(exist_ok=True)
    extract(ROOT)
    for po_path in sorted(LOCALE.glob("*/LC_MESSAGES/*.po")):
        settle_header(po_path)
        po_path.with_suffix(".mo").write_bytes(compile_mo(po_path))
    return report(LOCALE)


def report(where: Path) -> int:
    """Prints each untranslated or fuzzy string; the number of them."""
    missing = 0
    for po_path in sorted(where.glob("*/LC_MESSAGES/*.po")):
        po = polib.pofile(str(po_path))
        name = po_path.relative_to(where)
        for entry in po:
            if entry.obsolete:
                continue
            if entry.fuzzy or not entry.translated():
                missing += 1
                why = "fuzzy" if entry.fuzzy else "no translation"
                print(f"locale/{name}: {why}: {entry.msgid!r}", file=sys.stderr)
    return missing


def check() -> int:
    if shutil.which("xgettext") is None:
        print("GNU gettext is missing (apt-get install gettext)", file=sys.stderr)
        return 2
    problems = 0
    with tempfile.TemporaryDirectory() as tmp:
        copy = copy_of_project(Path(tmp))
        extract(copy)
        fresh = copy / "locale"
        problems += report(fresh)
        for po_path in sorted(fresh.glob("*/LC_MESSAGES/*.po")):
            name = po_path.relative_to(fresh)
            committed = LOCALE / name
            if not committed.exists() or without_dates(committed.read_text()) != without_dates(
                po_path.read_text()
            ):
                problems += 1
                print(f"locale/{name} is not up to date: run make messages", file=sys.stderr)
                continue
            mo = committed.with_suffix(".mo")
            if not mo.exists() or mo.read_bytes() != compile_mo(committed):
                problems += 1
                stale = name.with_suffix(".mo")
                print(f"locale/{stale} is stale: run make messages", file=sys.stderr)
    if problems:
        print(f"{problems} translation problem(s)", file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")  # settings without a secret key: nothing runs
    import django

    django.setup()
    command = sys.argv[1] if len(sys.argv) > 1 else "check"
    if command == "update":
        missing = update()
        if missing:
            print(f"{missing} string(s) to translate in locale/*/LC_MESSAGES/*.po", file=sys.stderr)
        return 0
    if command == "check":
        return check()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
