"""The alerts benchmark's plant (bench/alerts.py): two sites, ten rules with a contact each
(half e-mail, half json://), and which violation each rule covers, worked out here on its
own so the benchmark checks the product's decisions rather than repeating them.

The violations: the n-th is on camera n % 12 + 1 (cameras 1-5 North, 6-10 South, 11 and
12 in no site), of a kind that turns so that every 36 rows have each kind on each camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = {
    "human": "violation_humandetections",
    "ppe": "violation_ppedetections",
    "loto": "violation_lotodetections",
}
TABLE_KIND = {table: kind for kind, table in KINDS.items()}
SITES = {"North": [1, 2, 3, 4, 5], "South": [6, 7, 8, 9, 10]}


@dataclass(frozen=True)
class RuleSpec:
    name: str
    channel: str  # "email" or "json"
    kinds: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    cameras: list[int] = field(default_factory=list)

    def covers(self, kind: str, camera: int) -> bool:
        """The issue's words: its kind one of `kinds`, its camera in one of `sites` and one
        of `cameras` (each when given)."""
        in_sites = not self.sites or any(camera in SITES[s] for s in self.sites)
        return (
            (not self.kinds or kind in self.kinds)
            and in_sites
            and (not self.cameras or camera in self.cameras)
        )


RULES = {
    rule.name: rule
    for rule in [
        RuleSpec("human-all", "email", kinds=["human"]),
        RuleSpec("ppe-all", "json", kinds=["ppe"]),
        RuleSpec("loto-all", "email", kinds=["loto"]),
        RuleSpec("north", "json", sites=["North"]),
        RuleSpec("south", "email", sites=["South"]),
        RuleSpec("ppe-north", "email", kinds=["ppe"], sites=["North"]),
        RuleSpec("human-south", "json", kinds=["human"], sites=["South"]),
        # Camera 7 is South's: only 1 and 2 are both in North and in the list.
        RuleSpec("north-gates", "json", sites=["North"], cameras=[1, 2, 7]),
        RuleSpec("loto-camera-9", "email", kinds=["loto"], cameras=[9]),
        RuleSpec("no-site-11-12", "json", cameras=[11, 12]),
    ]
}


def violation_of(n: int) -> tuple[str, int]:
    """The n-th violation's kind and camera."""
    kinds = list(KINDS)
    return kinds[(n + n // 12) % 3], n % 12 + 1


def expected_pairs(committed: dict[str, float]) -> set[tuple[str, str]]:
    """(rule, image) of every message the rules call for (`/bench/RUN/N.jpg`)."""
    wanted = set()
    for image in committed:
        kind, camera = violation_of(int(image.rsplit("/", 1)[1].removesuffix(".jpg")))
        wanted |= {(rule.name, image) for rule in RULES.values() if rule.covers(kind, camera)}
    return wanted


def contact_url(rule: RuleSpec, http_port: int) -> str:
    if rule.channel == "email":
        return f"mailto:{rule.name}@plant.test"
    return f"json://127.0.0.1:{http_port}/hook/{rule.name}"


def make_plant(http_port: int, consolidate_seconds: int) -> None:
    """The sites, contacts and rules, each rule in one transaction (as a load writes it)."""
    from django.db import transaction

    from realtime.alerts.models import Contact, Rule
    from realtime.models import Site

    sites = {name: Site.objects.create(name=name, cameras=cams) for name, cams in SITES.items()}
    for spec in RULES.values():
        with transaction.atomic():
            contact = Contact.objects.create(name=spec.name, url=contact_url(spec, http_port))
            rule = Rule.objects.create(
                name=spec.name,
                kinds=spec.kinds,
                cameras=spec.cameras,
                consolidate_seconds=consolidate_seconds,
            )
            rule.notify.set([contact])
            rule.sites.set([sites[s] for s in spec.sites])


def reset(pg: Any) -> None:
    """Nothing of a previous run: no rules, no outbox, no place in the log (the worker
    starts from now), no violations and an empty log."""
    pg.execute(
        "TRUNCATE realtime_notification, realtime_alert_progress, realtime_alert_step,"
        " realtime_alert_rule, realtime_alert_contact, realtime_site,"
        " realtime_event, realtime_listener_state CASCADE"
    )
    pg.execute(f"TRUNCATE {', '.join(KINDS.values())}")
