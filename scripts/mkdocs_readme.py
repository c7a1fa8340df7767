"""MkDocs hook: the README is the site's home page, so `mkdocs build --strict` checks its
links and anchors as it checks the docs'. The README links into docs/ as GitHub shows it
(`docs/tutorial.md`); on the site those pages sit at the root (`tutorial.md`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

README = Path(__file__).resolve().parent.parent / "README.md"
# A Markdown link or image target that starts with docs/: ](docs/...) or ]: docs/...
INTO_DOCS = re.compile(r"(\]\(|\]:\s*)docs/")


def on_files(files: Files, config: Any) -> Files:
    home = INTO_DOCS.sub(r"\1", README.read_text(encoding="utf-8"))
    # As README.md: a broken link is reported as the README's; MkDocs makes it the home page.
    files.append(File.generated(config, "README.md", content=home))
    return files
