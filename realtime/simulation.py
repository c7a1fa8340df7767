"""Realistic demo violations, written with plain SQL as a detector would."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from realtime.violations.kinds import Kind

CAMERAS = range(1, 13)
# Not every kind is as common on the floor (kinds added by a plant: 1).
KIND_WEIGHTS = {"human": 5, "loto": 1, "ppe": 4}


@dataclass(frozen=True)
class SimulatedViolation:
    table: str
    camera_id: int
    at: datetime
    image: str


def simulated_violation(rng: random.Random, now: datetime, kinds: list[Kind]) -> SimulatedViolation:
    kind = rng.choices(kinds, weights=[KIND_WEIGHTS.get(k.slug, 1) for k in kinds])[0]
    camera = rng.choice(CAMERAS)
    frame = rng.randrange(10**6)
    image = f"/media/cam{camera:02d}/{now:%Y%m%d}/{kind.slug}-{now:%H%M%S}-{frame:06d}.jpg"
    return SimulatedViolation(kind.qualified, camera, now, image)


def insert_statement(table: str) -> sql.Composed:
    """An INSERT into `table` (quoted already, as Kind.qualified gives it)."""
    return sql.SQL(
        "INSERT INTO {} (camera_id, violation_date, violation_time, violation_image)"
        " VALUES (%s, %s, %s, %s)"
    ).format(sql.SQL(table))
