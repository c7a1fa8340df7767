"""Contacts and rules as a TOML file (`manage.py notifications load FILE` and `dump`; the
format is in docs/how-to/alerts.md, read and checked by realtime.alerts.rules_file).

A load reads and checks the whole file first (the admin's checks too), and refuses it with
every problem and its line; only a file without any is written, in one transaction:
contacts and rules are created or updated by name, a rule becomes what the file says (a
key left out is its default), and its escalation steps are replaced by the file's when
they differ. Nothing that is not in the file is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import tomli_w
from django.db import connection, transaction

from realtime.alerts.models import Contact, EscalationStep, Rule
from realtime.alerts.rules_file import ConfigError, RuleSpec, read
from realtime.models import Site

__all__ = ["ConfigError", "LoadReport", "RuleSpec", "dump", "load"]

# One load at a time (pg_advisory_xact_lock's key): two creating the same new name would
# otherwise meet at the unique index.
LOAD_LOCK = 0x616C657274  # "alert"


@dataclass
class LoadReport:
    """What a load did, as "contact NAME" and "rule NAME"; `kept`: in the tables, not in the
    file (a load deletes nothing)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def load(text: str) -> LoadReport:
    """Check the whole file, then write it in one transaction (ConfigError: nothing written)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOAD_LOCK])
        config = read(text)
        report = LoadReport()
        contacts = _save_contacts(config.contacts, report)
        _save_rules(config.rules, contacts, report)
    named = set(config.contacts).union(*(spec.contacts for spec in config.rules))
    report.kept[:0] = [f"contact {name}" for name in sorted(set(contacts) - named)]
    return report


def dump() -> str:
    """The contacts and rules in the file's format: loading it changes nothing."""
    document: dict[str, Any] = {}
    contacts = {contact.name: {"url": contact.url} for contact in Contact.objects.order_by("name")}
    if contacts:
        document["contacts"] = contacts
    rules = [RuleSpec.of(rule).as_toml() for rule in _rules().order_by("name")]
    if rules:
        document["rules"] = rules
    return tomli_w.dumps(document)


def _rules() -> Any:
    return Rule.objects.prefetch_related("sites", "notify", "steps__notify")


def _save_contacts(contacts: dict[str, str], report: LoadReport) -> dict[str, Contact]:
    existing = {c.name: c for c in Contact.objects.all()}  # locked by read()
    for name, url in contacts.items():
        contact = existing.get(name)
        if contact is None:
            existing[name] = Contact.objects.create(name=name, url=url)
            report.created.append(f"contact {name}")
        elif contact.url != url:
            contact.url = url
            contact.save(update_fields=["url"])
            report.updated.append(f"contact {name}")
        else:
            report.unchanged.append(f"contact {name}")
    return existing


def _save_rules(specs: list[RuleSpec], contacts: dict[str, Contact], report: LoadReport) -> None:
    existing = {rule.name: rule for rule in _rules().select_for_update()}
    sites = {site.name: site for site in Site.objects.all()}  # locked by read()
    for spec in specs:
        rule = existing.get(spec.name)
        before = RuleSpec.of(rule) if rule is not None else None
        if rule is None:
            rule = Rule(name=spec.name)
            report.created.append(f"rule {spec.name}")
        elif before == spec:
            report.unchanged.append(f"rule {spec.name}")
            continue
        else:
            report.updated.append(f"rule {spec.name}")
        _write_rule(
            rule,
            spec,
            contacts,
            sites,
            steps_changed=before is None or before.escalate != spec.escalate,
        )
    names = {spec.name for spec in specs}
    report.kept += [f"rule {name}" for name in sorted(set(existing) - names)]


def _write_rule(
    rule: Rule,
    spec: RuleSpec,
    contacts: dict[str, Contact],
    sites: dict[str, Site],
    *,
    steps_changed: bool,
) -> None:
    rule.kinds = list(spec.kinds)
    rule.cameras = list(spec.cameras)
    rule.consolidate_seconds = spec.consolidate_seconds
    rule.cooldown_seconds = spec.cooldown_seconds
    rule.when_unwatched = spec.when_unwatched
    rule.save()
    rule.sites.set([sites[name] for name in spec.sites])
    rule.notify.set([contacts[name] for name in spec.notify])
    if not steps_changed:
        return  # the steps keep their ids
    rule.steps.all().delete()
    for step_spec in spec.escalate:
        step = EscalationStep.objects.create(rule=rule, after_seconds=step_spec.after_seconds)
        step.notify.set([contacts[name] for name in step_spec.notify])
