"""The contacts and rules file's format (docs/how-to/alerts.md): read and checked as a
whole, every problem with its line (realtime.alerts.toml_lines), with the admin's checks
(realtime.alerts.validators); the rules as specs that compare equal when the rules are.
Written by realtime.alerts.config.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from realtime.alerts import validators
from realtime.alerts.models import Contact, Rule
from realtime.alerts.toml_lines import Path, Positions
from realtime.models import Site
from realtime.violations import kinds

TOP_KEYS = ("contacts", "rules")
CONTACT_KEYS = ("url",)
RULE_KEYS = (
    "name",
    "kinds",
    "sites",
    "cameras",
    "notify",
    "consolidate_seconds",
    "cooldown_seconds",
    "when_unwatched",
    "escalate",
)
STEP_KEYS = ("after_seconds", "notify")
# Lists where "none" means "every": an empty one is refused rather than read as either.
COVERING = {"kinds": "kind", "sites": "site", "cameras": "camera"}


class ConfigError(Exception):
    """A file refused: each problem as (line, message); str() has them all, line by line."""

    def __init__(self, problems: Iterable[tuple[int, str]]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(f"line {line}: {message}" for line, message in self.problems))


@dataclass(frozen=True)
class StepSpec:
    after_seconds: int
    notify: tuple[str, ...]


@dataclass(frozen=True)
class RuleSpec:
    """A rule as the file writes it, its lists sorted: equal specs are equal rules."""

    name: str
    kinds: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    cameras: tuple[int, ...] = ()
    notify: tuple[str, ...] = ()
    consolidate_seconds: int = 0
    cooldown_seconds: int = 0
    when_unwatched: str = ""
    escalate: tuple[StepSpec, ...] = ()

    @classmethod
    def of(cls, rule: Rule) -> RuleSpec:
        """Of a rule with its sites, notify and steps' notify prefetched."""
        return cls(
            name=rule.name,
            kinds=_sorted(rule.kinds),
            sites=_sorted(site.name for site in rule.sites.all()),
            cameras=_sorted(rule.cameras),
            notify=_sorted(contact.name for contact in rule.notify.all()),
            consolidate_seconds=rule.consolidate_seconds,
            cooldown_seconds=rule.cooldown_seconds,
            when_unwatched=rule.when_unwatched,
            escalate=tuple(
                StepSpec(step.after_seconds, _sorted(c.name for c in step.notify.all()))
                for step in rule.steps.all()
            ),
        )

    @property
    def contacts(self) -> set[str]:
        """Every contact the rule names, in notify or a step's."""
        return set(self.notify).union(*(step.notify for step in self.escalate))

    def as_toml(self) -> dict[str, Any]:
        table: dict[str, Any] = {"name": self.name}
        for key in COVERING:
            if getattr(self, key):
                table[key] = list(getattr(self, key))
        table["notify"] = list(self.notify)
        table["consolidate_seconds"] = self.consolidate_seconds
        table["cooldown_seconds"] = self.cooldown_seconds
        table["when_unwatched"] = self.when_unwatched
        if self.escalate:
            table["escalate"] = [
                {"after_seconds": step.after_seconds, "notify": list(step.notify)}
                for step in self.escalate
            ]
        return table


@dataclass
class Config:
    contacts: dict[str, str] = field(default_factory=dict)  # name: url
    rules: list[RuleSpec] = field(default_factory=list)


def read(text: str) -> Config:
    """The file checked, as specs (ConfigError with every problem found). In a transaction:
    the sites and contacts it may name are locked until its end, so that none named goes
    before it is written."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([Positions(text).syntax_error(error)]) from None
    reader = _Reader(text)
    reader.unknown_keys((), document, TOP_KEYS, "the file")
    config = Config(contacts=reader.contacts(document.get("contacts", {})))
    config.rules = reader.rules(document.get("rules", []), set(config.contacts))
    if reader.problems:
        raise ConfigError(reader.problems)
    return config


class _Reader:
    def __init__(self, text: str) -> None:
        self.positions = Positions(text)
        self.problems: list[tuple[int, str]] = []
        # FOR NO KEY UPDATE: a concurrent delete waits; a rule's reference to one does not.
        self.sites = set(Site.objects.select_for_update(no_key=True).values_list("name", flat=True))
        self.known_contacts = set(
            Contact.objects.select_for_update().values_list("name", flat=True)
        )

    def refuse(self, path: Path, message: str) -> None:
        self.problems.append((self.positions.line_of(path), message))

    def check(self, path: Path, check: Callable[[Any], None], value: Any, where: str) -> bool:
        try:
            check(value)
        except ValidationError as error:
            for message in validators.messages(error):
                self.refuse(path, f"{message} {where}")
            return False
        return True

    def unknown_keys(
        self, path: Path, table: dict[str, Any], keys: tuple[str, ...], owner: str
    ) -> None:
        for key in table:
            if key not in keys:
                close = difflib.get_close_matches(key, keys, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.refuse(
                    (*path, key),
                    f"unknown key '{key}' in {owner} ({hint}an unknown key is refused, not "
                    f"ignored, in case it is a typo; the keys: {', '.join(keys)})",
                )

    def contacts(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            self.refuse(("contacts",), "contacts are tables, like [contacts.safety-team]")
            return {}
        found: dict[str, str] = {}
        for name, table in value.items():
            path, owner = ("contacts", name), f"contact '{name}'"
            self.check(path, validators.check_name, name, f"of {owner}")
            found[name] = ""
            if not isinstance(table, dict):
                self.refuse(path, f"{owner} is a table with a url, like [contacts.{name}]")
                continue
            self.unknown_keys(path, table, CONTACT_KEYS, owner)
            if "url" not in table:
                self.refuse(path, f"{owner} has no url")
                continue
            url = table["url"]
            self.check((*path, "url"), validators.check_contact_url, url, f"in url of {owner}")
            found[name] = url if isinstance(url, str) else ""
        return found

    def rules(self, value: Any, file_contacts: set[str]) -> list[RuleSpec]:
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            self.refuse(("rules",), "rules are tables, each under [[rules]]")
            return []
        contacts = file_contacts | self.known_contacts
        found: list[RuleSpec] = []
        seen: set[str] = set()
        for index, table in enumerate(value):
            spec = self.rule(("rules", index), table, index, contacts)
            if spec is None:
                continue
            if spec.name in seen:
                self.refuse(("rules", index, "name"), f"a second rule '{spec.name}'")
            seen.add(spec.name)
            found.append(spec)
        return found

    def rule(
        self, path: Path, table: dict[str, Any], index: int, contacts: set[str]
    ) -> RuleSpec | None:
        name = table.get("name")
        owner = f"rule '{name}'" if isinstance(name, str) else f"rule {index + 1}"
        self.unknown_keys(path, table, RULE_KEYS, owner)
        if "name" not in table:
            self.refuse(path, f"{owner} has no name")
        elif not self.check((*path, "name"), validators.check_name, name, f"in name of {owner}"):
            name = None
        values: dict[str, Any] = {}
        kinds_hint = f" (the kinds: {', '.join(sorted(kinds.registry().by_slug))})"
        if "kinds" in table and self.check(
            (*path, "kinds"),
            validators.check_kinds,
            table["kinds"],
            f"in kinds of {owner}" + kinds_hint,
        ):
            values["kinds"] = table["kinds"]
        for key, check in (
            ("cameras", validators.check_cameras),
            ("consolidate_seconds", validators.check_seconds),
            ("cooldown_seconds", validators.check_seconds),
            ("when_unwatched", validators.check_when_unwatched),
        ):
            if key in table and self.check((*path, key), check, table[key], f"in {key} of {owner}"):
                values[key] = table[key]
        if "sites" in table:
            values["sites"] = self.references((*path, "sites"), table["sites"], owner, self.sites)
        values["notify"] = self.references(
            (*path, "notify"), table.get("notify", []), owner, contacts
        )
        for key, noun in COVERING.items():
            if key in table and table[key] == []:
                self.refuse(
                    (*path, key),
                    f"{key} of {owner} is empty: leave {key} out for every {noun}",
                )
        steps = self.steps((*path, "escalate"), table.get("escalate", []), owner, contacts)
        if not isinstance(name, str):
            return None
        return RuleSpec(
            name=name,
            kinds=_sorted(values.get("kinds", ())),
            sites=_sorted(values.get("sites", ())),
            cameras=_sorted(values.get("cameras", ())),
            notify=_sorted(values["notify"]),
            consolidate_seconds=values.get("consolidate_seconds", 0),
            cooldown_seconds=values.get("cooldown_seconds", 0),
            when_unwatched=values.get("when_unwatched", ""),
            escalate=tuple(sorted(steps, key=lambda step: step.after_seconds)),
        )

    def references(self, path: Path, names: Any, owner: str, known: set[str]) -> list[str]:
        """Names of sites or contacts, each one that exists (the others refused)."""
        key = str(path[-1])
        noun = "site" if key == "sites" else "contact"
        try:
            names = validators.check_names(names)
        except ValidationError as error:
            for message in validators.messages(error):
                self.refuse(path, f"{message} in {key} of {owner}")
            return []
        for name in names:
            if name not in known:
                self.refuse(path, f"unknown {noun} '{name}' in {key} of {owner}")
        return [name for name in names if name in known]

    def steps(self, path: Path, value: Any, owner: str, contacts: set[str]) -> list[StepSpec]:
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            self.refuse(path, f"escalate of {owner}: tables, each under [[rules.escalate]]")
            return []
        found = []
        for number, table in enumerate(value):
            at, step = (*path, number), f"escalation step {number + 1} of {owner}"
            self.unknown_keys(at, table, STEP_KEYS, step)
            seconds = table.get("after_seconds")
            if "after_seconds" not in table:
                self.refuse(at, f"{step} has no after_seconds")
            else:
                self.check(
                    (*at, "after_seconds"),
                    validators.check_seconds,
                    seconds,
                    f"in after_seconds of {step}",
                )
            notify = self.references((*at, "notify"), table.get("notify", []), step, contacts)
            if not table.get("notify"):
                self.refuse(at, f"{step} notifies nobody: give it a notify list")
            if isinstance(seconds, int):
                found.append(StepSpec(seconds, _sorted(notify)))
        return found


def _sorted(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(sorted(set(values)))
