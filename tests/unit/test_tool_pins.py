"""The checks run the same tools, same versions, from `make lint` and from pre-commit:
ruff as requirements-dev.txt pins it, Biome as package.json and package-lock.json pin it."""

from __future__ import annotations

import json
import re

from tests.helpers import ROOT

HOOKS = (ROOT / ".pre-commit-config.yaml").read_text()


def hook_rev(repo: str) -> str:
    found = re.search(rf"- repo: https://github.com/{repo}\n\s+rev: v(\S+)", HOOKS)
    assert found is not None, f"{repo} is not a hook repository of .pre-commit-config.yaml"
    return found[1]


def test_the_ruff_hooks_are_the_ruff_of_requirements_dev() -> None:
    pin = re.search(r"^ruff==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.MULTILINE)
    assert pin is not None
    assert hook_rev("astral-sh/ruff-pre-commit") == pin[1]


def test_the_biome_hook_is_the_biome_npm_ci_installs() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["@biomejs/biome"]
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    assert locked["node_modules/@biomejs/biome"]["version"] == pinned
    assert hook_rev("biomejs/pre-commit") == pinned
