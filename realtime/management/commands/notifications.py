"""`manage.py notifications`: the contacts and alert rules as a TOML file (the format is in
docs/how-to/alerts.md).

    notifications load FILE    creates or updates the file's contacts and rules, by name
                               (- reads standard input); a file with any problem is
                               refused as a whole, each problem with its line
    notifications dump         writes the current ones to standard output, in that format

The logic is realtime.alerts.config's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.alerts import config


class Command(BaseCommand):
    help = "The contacts and alert rules as a TOML file: load FILE, or dump."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        loaded = actions.add_parser("load", help="create or update contacts and rules by name")
        loaded.add_argument("file", help="the TOML file; - for standard input")
        actions.add_parser("dump", help="write the contacts and rules to standard output")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "dump":
            self.stdout.write(config.dump(), ending="")
            return
        name = options["file"]
        text = read_text(name)
        try:
            report = config.load(text)
        except config.ConfigError as exc:
            raise CommandError(f"{name} refused, nothing changed:\n{exc}") from exc
        self._say(report)

    def _say(self, report: config.LoadReport) -> None:
        for what in report.created:
            self.stdout.write(f"Created the {what}.")
        for what in report.updated:
            self.stdout.write(f"Updated the {what}.")
        if report.unchanged:
            self.stdout.write(f"Unchanged: {', '.join(report.unchanged)}.")
        if not report.created and not report.updated:
            self.stdout.write("Nothing changed.")
        if report.kept:
            self.stdout.write(
                f"Not in the file, kept (delete them in the admin): {', '.join(report.kept)}."
            )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        return parser


def read_text(name: str) -> str:
    """The file as text (a UTF-8 byte order mark, as some editors write, left out)."""
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {name}: {exc.strerror or exc}.") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CommandError(
            f"{name} refused, nothing changed:\nline {line}: not UTF-8 text (byte "
            f"{exc.start + 1}); save the file as UTF-8"
        ) from exc
