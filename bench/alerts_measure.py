"""What the alerts benchmark's receivers got (bench/alerts.py), matched to the violations
by their images' paths, and the outbox's own times beside it: the figures of one mode."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psycopg
from alerts_plant import KINDS, RULES, expected_pairs
from run import percentile

TARGET = "p99 <= 2 s (each), nothing lost, nothing twice"
# The footer every message ends with (realtime.alerts.messages): its rule and its id.
FOOTER = re.compile(r"Rule (?P<rule>\S+), message (?P<id>\d+)\.")
COUNT = re.compile(r"^(?P<count>\d+) violations \(")


@dataclass
class Received:
    """One message as a receiver saw it."""

    rule: str
    key: str  # Idempotency-Key or Message-ID
    images: list[str]  # the violations it names, in its order
    count: int  # the violations it is about (named or "…and N more")
    at: float


def images_in(text: str, run: str) -> list[str]:
    return re.findall(rf"/bench/{re.escape(run)}/\d+\.jpg", text)


def parse(rule_text: str, subject: str, body: str, key: str, at: float, run: str) -> Received:
    footer = FOOTER.search(body)
    named = images_in(body, run)
    counted = COUNT.match(subject.removeprefix("Still unacknowledged: "))
    return Received(
        rule=footer["rule"] if footer else rule_text,
        key=key,
        images=named,
        count=int(counted["count"]) if counted else len(named),
        at=at,
    )


def received(smtp: Any, http: Any, run: str) -> list[Received]:
    got = [
        parse("?", m.subject, m.body, str(m.message["Message-ID"]), m.at, run)
        for m in smtp.received()
    ]
    got += [
        parse(
            "?",
            str(p.body.get("title", "")),
            str(p.body.get("message", "")),
            p.headers.get("Idempotency-Key", ""),
            p.at,
            run,
        )
        for p in http.received()
    ]
    return [r for r in got if r.images]  # the warm-up's messages name another run


def outbox_timings(url: str, run: str) -> list[tuple[Any, ...]]:
    """(rule, status, image, decided_at, sent_at) of every outbox row of this run."""
    union = " UNION ALL ".join(
        f"SELECT '{table}' AS table_name, id, violation_image FROM {table}"
        for table in KINDS.values()
    )
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT n.rule_name, n.status, v.violation_image,"
            " extract(epoch FROM n.decided_at)::float8, extract(epoch FROM n.sent_at)::float8"
            f" FROM realtime_notification n JOIN ({union}) v"
            " ON v.table_name = n.table_name AND v.id = n.violation_id"
            " WHERE v.violation_image LIKE %s",
            [f"/bench/{run}/%"],
        ).fetchall()
    return [tuple(row) for row in rows]


def analyse(
    committed: dict[str, float], got: list[Received], url: str, run: str, window: int
) -> dict[str, Any]:
    """The figures of a mode; `window`: its rules' consolidate_seconds (0: none)."""
    wanted = expected_pairs(committed)
    # Every violation a message names (all of them without consolidation, the first 5 with).
    named = Counter((r.rule, image) for r in got for image in r.images)
    counted = Counter[str]()
    for r in got:
        counted[r.rule] += r.count
    if window:  # the rest only by their number ("…and 15 more")
        by_rule = Counter(rule for rule, _ in wanted)
        lost = sum(max(0, n - counted[rule]) for rule, n in by_rule.items())
    else:
        lost = len(wanted - named.keys())
    keys = Counter(r.key for r in got)
    # The window's first violation (the first the message names) to the hand-over.
    latencies = [(r.at - committed[r.images[0]]) * 1000 for r in got]
    outbox = outbox_timings(url, run)
    decided = {(rule, image): at for rule, _, image, at, _ in outbox}
    decide_lag = [(at - committed[image]) * 1000 for (_, image), at in decided.items()]
    # From when the message was due (decided, plus the window) to its hand-over.
    after_due = [
        (r.at - decided[(r.rule, r.images[0])] - window) * 1000
        for r in got
        if (r.rule, r.images[0]) in decided
    ]
    return {
        "scenario": "alerts-consolidate" if window else "alerts",
        "target": TARGET,
        "violations": len(committed),
        "expected_pairs": len(wanted),
        "counted_pairs": sum(counted.values()),
        "messages": len(got),
        "lost": lost,
        "duplicates": sum(n - 1 for n in keys.values() if n > 1),
        "same_violation_twice": sum(n - 1 for n in named.values() if n > 1),
        "unexpected": sum(1 for pair in named if pair not in wanted),
        **percentiles(latencies, "ms"),
        "notes": {
            "consolidate_seconds": window,
            "commit_to_decided": percentiles(decide_lag, "ms"),
            "due_to_handover": percentiles(after_due, "ms"),
            "outbox": dict(Counter(status for _, status, *_ in outbox)),
            "by_channel": dict(Counter(RULES[r.rule].channel for r in got if r.rule in RULES)),
        },
    }


def percentiles(values: list[float], unit: str) -> dict[str, float]:
    found = {f"p{p}_{unit}": round(percentile(values, p), 1) for p in (50, 95, 99)}
    return {**found, f"max_{unit}": round(max(values, default=float("nan")), 1)}


def print_table(rows: list[dict[str, Any]]) -> None:
    print()
    header = (
        f"{'scenario':<20}{'violations':>11}{'pairs exp/got':>15}{'messages':>10}{'lost':>6}"
        f"{'twice':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}  worker CPU"
    )
    print(header)
    for row in rows:
        pairs = f"{row['expected_pairs']}/{row['counted_pairs']}"
        twice = row["duplicates"] + row["same_violation_twice"] + row["unexpected"]
        print(
            f"{row['scenario']:<20}{row['violations']:>11}{pairs:>15}{row['messages']:>10}"
            f"{row['lost']:>6}{twice:>7}{row['p50_ms']:>9}{row['p95_ms']:>9}"
            f"{row['p99_ms']:>9}{row['max_ms']:>9}  {row['notes']['cpu_pct']['worker']}%"
        )
    print(f"target: {TARGET}")
