"""`make lint` fails when a marked string has no translation in a shipped language
(scripts/messages.py check), in a template, the Python code or the page's script; the
catalogs as committed pass. Run on a copy of the project: checking changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PARTS = ("manage.py", "config", "realtime", "templates", "static/realtime", "locale", "scripts")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    for part in PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (copy / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / part)
    return copy


def check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/messages.py", "check"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )


def test_the_committed_catalogs_translate_every_marked_string(project: Path) -> None:
    done = check(project)
    assert done.returncode == 0, done.stderr


def test_a_string_marked_without_a_translation_fails_the_check(project: Path) -> None:
    (project / "templates" / "realtime" / "_new.html").write_text(
        '{% load i18n %}<p>{% translate "A sentence nobody translated yet" %}</p>\n'
    )
    script = project / "static" / "realtime" / "new.js"
    script.write_text('document.title = gettext("Nor this one");\n')
    done = check(project)
    assert done.returncode == 1
    for language in ("de", "es"):
        assert (
            f"locale/{language}/LC_MESSAGES/django.po: no translation:"
            " 'A sentence nobody translated yet'" in done.stderr
        )
        assert f"locale/{language}/LC_MESSAGES/djangojs.po: no translation: 'Nor this one'" in (
            done.stderr
        )
    # Checking wrote nothing: the project's catalogs are as they were.
    assert (project / "locale").exists()
    assert "A sentence nobody" not in (project / "locale/de/LC_MESSAGES/django.po").read_text()


def test_a_stale_compiled_catalog_fails_the_check(project: Path) -> None:
    mo = project / "locale" / "de" / "LC_MESSAGES" / "django.mo"
    mo.write_bytes(mo.read_bytes()[:-16])
    done = check(project)
    assert done.returncode == 1
    assert "locale/de/LC_MESSAGES/django.mo is stale" in done.stderr
