"""Where a key of a TOML file is written (tomllib gives no positions): the lines a refused
file's message names (realtime.alerts.toml_lines)."""

from __future__ import annotations

import tomllib

import pytest

from realtime.alerts.toml_lines import Positions

TEXT = """\
contacts.c.url = "ntfy://c"
[contacts.a]
url = "mailto:a@plant.example"
[ contacts . "night shift" ]   # spaces and quotes
url = "ntfy://night"
more.url = "ntfy://more"

[[rules]]
name = "first"
notify = [
  "a",
]
[[rules.escalate]]
after_seconds = 1
[[rules.escalate]]
after_seconds = 2

[[rules]]
name = "second"
rules_typo = 1
[[rules.escalate]]
after_seconds = 3
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("contacts", "a"), 2),
        (("contacts", "a", "url"), 3),
        (("contacts", "night shift"), 4),
        (("contacts", "night shift", "url"), 5),
        (("contacts", "c", "url"), 1),
        (("contacts", "night shift", "more", "url"), 6),
        (("rules", 0), 8),
        (("rules", 0, "notify"), 10),
        (("rules", 0, "escalate", 0, "after_seconds"), 14),
        (("rules", 0, "escalate", 1, "after_seconds"), 16),
        (("rules", 1, "name"), 19),
        (("rules", 1, "rules_typo"), 20),
        (("rules", 1, "escalate", 0, "after_seconds"), 22),
        # Not written: the nearest enclosing key.
        (("rules", 1, "cameras"), 18),
        (("rules", 1, "escalate", 0, "notify"), 21),
        (("nowhere",), 1),
    ],
)
def test_each_key_is_found_at_its_line(path, line) -> None:
    assert tomllib.loads(TEXT)
    assert Positions(TEXT).line_of(path) == line


def test_inline_tables_are_found_at_their_key() -> None:
    text = 'a = 1\nrules = [\n  { name = "x", notify = ["b"] },\n]\n'
    assert Positions(text).line_of(("rules", 0, "notify")) == 2


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a = 1\nb = \n", 2, "Invalid value (column 5)"),
        ("a = 1\n[b\n", 2, "Expected ']' at the end of a table declaration (column 3)"),
        ('a = "x\n', 1, "Illegal character '\\n' (column 7)"),
        ("a = 1\nb = [1,\n", 2, "Invalid value (at the end of the file)"),
    ],
)
def test_syntax_errors_name_their_line(text, line, message) -> None:
    with pytest.raises(tomllib.TOMLDecodeError) as error:
        tomllib.loads(text)
    assert Positions(text).syntax_error(error.value) == (line, message)
