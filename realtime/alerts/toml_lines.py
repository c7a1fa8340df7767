"""Where a key of a TOML text is written. tomllib gives values, not positions, and a message
about a file should name its line: each table header and `key =` line is read here with the
path of keys it opens or sets, the n-th `[[rules]]` as ("rules", n), its n-th
`[[rules.escalate]]` as ("rules", n, "escalate", m).

A best effort for hand-written files: a key inside an inline table or a multi-line value
is found at the line of the enclosing key.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any, TypeAlias

Path: TypeAlias = tuple[str | int, ...]

_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_PART}(?:[ \t]*\.[ \t]*{_PART})*"
HEADER = re.compile(rf"[ \t]*(\[\[?)[ \t]*({_DOTTED})[ \t]*\]\]?[ \t]*(?:#.*)?")
ASSIGNMENT = re.compile(rf"[ \t]*({_DOTTED})[ \t]*=")
SYNTAX_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
SYNTAX_AT_END = re.compile(r"\s*\(at end of document\)$")


class Positions:
    def __init__(self, text: str) -> None:
        self.keys: list[tuple[int, Path]] = []
        self.last_line = max(1, len(text.splitlines()))
        section: Path = ()
        arrays: dict[Path, int] = {}  # each array of tables, as a concrete path: its last index
        for number, line in enumerate(text.splitlines(), 1):
            header = HEADER.fullmatch(line)
            logical = _path_or_none(header.group(2)) if header is not None else None
            if header is not None and logical:
                if header.group(1) == "[[":
                    array = _concrete(logical[:-1], arrays) + logical[-1:]
                    arrays[array] = arrays.get(array, -1) + 1
                    section = (*array, arrays[array])
                else:
                    section = _concrete(logical, arrays)
                self.keys.append((number, section))
                continue
            assignment = ASSIGNMENT.match(line)
            key = _path_or_none(assignment.group(1)) if assignment is not None else None
            if key:
                self.keys.append((number, section + key))

    def line_of(self, path: Path) -> int:
        """The first line that writes `path` (or a key under it); else that of the nearest
        enclosing key; else 1."""
        for length in range(len(path), 0, -1):
            for number, written in self.keys:
                if written[:length] == path[:length]:
                    return number
        return 1

    def syntax_error(self, error: tomllib.TOMLDecodeError) -> tuple[int, str]:
        """tomllib's message, "... (at line 3, column 5)", as its line and the rest."""
        message = str(error)
        found = SYNTAX_POSITION.search(message)
        if found is not None:
            return int(found.group(1)), f"{message[: found.start()]} (column {found.group(2)})"
        end = SYNTAX_AT_END.search(message)
        if end is not None:
            return self.last_line, f"{message[: end.start()]} (at the end of the file)"
        return 1, message


def key_path(dotted: str) -> Path:
    """A dotted key as written (`contacts."night shift".url`) as its parts, unquoted."""
    table: Any = tomllib.loads(f"{dotted} = 0")
    parts: list[str | int] = []
    while isinstance(table, dict):
        ((name, table),) = table.items()
        parts.append(name)
    return tuple(parts)


def _path_or_none(dotted: str) -> Path | None:
    try:
        return key_path(dotted)
    except tomllib.TOMLDecodeError:  # a quoted key with a bad escape: the parser says where
        return None


def _concrete(logical: Path, arrays: dict[Path, int]) -> Path:
    """("rules", "escalate") as ("rules", 2, "escalate") while the third [[rules]] is open."""
    concrete: Path = ()
    for part in logical:
        concrete = (*concrete, part)
        if concrete in arrays:
            concrete = (*concrete, arrays[concrete])
    return concrete
