import random
import sys
import time
from datetime import datetime
from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from realtime.pipeline.database import conninfo_from_django
from realtime.simulation import insert_statement, simulated_violation
from realtime.violations import kinds


class Command(BaseCommand):
    help = (
        "Insert realistic violations into the three tables with plain SQL, as the detectors "
        "do, at RATE rows per second, COUNT rows in all (default: until Ctrl-C)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=1.0, help="rows per second (default 1)")
        parser.add_argument("--count", type=int, default=None, help="stop after this many rows")
        parser.add_argument("--seed", type=int, default=None, help="repeatable rows")

    def handle(self, *args: Any, **options: Any) -> None:
        rate, count = options["rate"], options["count"]
        if not 0 < rate <= 10_000:
            raise CommandError("--rate must be between 0 and 10000 rows per second")
        if count is not None and count < 1:
            raise CommandError("--count must be at least 1")
        rng = random.Random(options["seed"])
        choices = list(kinds.registry())
        if not choices:
            raise CommandError("There are no kinds of violation (see manage.py add_kind).")
        conninfo = conninfo_from_django(connections["default"].settings_dict)
        inserted = 0
        started = time.monotonic()
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                while count is None or inserted < count:
                    violation = simulated_violation(rng, datetime.now(), choices)
                    conn.execute(
                        insert_statement(violation.table),
                        [
                            violation.camera_id,
                            violation.at.date(),
                            violation.at.time(),
                            violation.image,
                        ],
                    )
                    inserted += 1
                    self._progress(inserted, count, started)
                    time.sleep(max(0.0, started + inserted / rate - time.monotonic()))
        except KeyboardInterrupt:
            pass
        finally:
            sys.stderr.write("\n")
        self.stdout.write(f"inserted {inserted} violations")

    def _progress(self, inserted: int, count: int | None, started: float) -> None:
        elapsed = time.monotonic() - started
        total = f"/{count}" if count else ""
        sys.stderr.write(f"\rinserted {inserted}{total} rows in {elapsed:.0f}s")
        sys.stderr.flush()
