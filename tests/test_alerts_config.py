"""Contacts and alert rules as configuration (#25): `manage.py notifications load FILE`
creates or updates them by name, `dump` writes them back in the same format, and a file
with any problem is refused with its line and changes nothing; the admin, for holders of
`realtime.manage_notifications` only, refuses what the file does."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from realtime.alerts import config, validators
from realtime.alerts.models import Contact, EscalationStep, Rule
from realtime.models import Site
from tests.helpers import run_manage

pytestmark = pytest.mark.django_db

# The issue's example, as written there.
EXAMPLE = """\
[contacts.safety-team]
url = "mailto:safety@plant.example"            # e-mail through Django's e-mail settings
[contacts.supervisor]
url = "json://127.0.0.1:9000/hook"             # any Apprise URL: msteams://, slack://, ...

[[rules]]
name = "ppe-north"
kinds = ["ppe"]             # optional: every kind when absent
sites = ["North"]           # optional: every site when absent
cameras = [3, 4]            # optional
notify = ["safety-team"]
consolidate_seconds = 30    # one message per rule per window (default 0: one per violation)
cooldown_seconds = 0        # per camera: no new message for it within this time (default 0)
[[rules.escalate]]
after_seconds = 600         # unacknowledged (and not shelved) this long after the violation
notify = ["supervisor"]
"""


@pytest.fixture
def north() -> Site:
    return Site.objects.create(name="North", cameras=[1, 2, 3, 4])


def tables() -> dict[str, Any]:
    """Everything the alert tables hold, to compare before and after."""
    return {
        "contacts": sorted(Contact.objects.values_list("name", "url")),
        "rules": [config.RuleSpec.of(rule) for rule in config._rules().order_by("name")],
        "steps": sorted(EscalationStep.objects.values_list("id", "rule_id", "after_seconds")),
    }


def notifications(*args: str) -> str:
    out = io.StringIO()
    call_command("notifications", *args, stdout=out)
    return out.getvalue()


def test_the_issues_example_loads(north) -> None:
    report = config.load(EXAMPLE)
    assert report.created == ["contact safety-team", "contact supervisor", "rule ppe-north"]
    rule = Rule.objects.get(name="ppe-north")
    assert rule.kinds == ["ppe"]
    assert list(rule.sites.all()) == [north]
    assert rule.cameras == [3, 4]
    assert [c.name for c in rule.notify.all()] == ["safety-team"]
    assert (rule.consolidate_seconds, rule.cooldown_seconds, rule.when_unwatched) == (30, 0, "")
    (step,) = rule.steps.all()
    assert step.after_seconds == 600
    assert [c.name for c in step.notify.all()] == ["supervisor"]
    assert Contact.objects.get(name="supervisor").url == "json://127.0.0.1:9000/hook"


def test_a_load_is_an_upsert_by_name(north) -> None:
    config.load(EXAMPLE)
    again = config.load(EXAMPLE)
    assert again.created == again.updated == []
    ids = {rule.name: rule.pk for rule in Rule.objects.all()}
    changed = EXAMPLE.replace("consolidate_seconds = 30", "consolidate_seconds = 60").replace(
        "after_seconds = 600", "after_seconds = 300"
    )
    report = config.load(changed + '\n[contacts.night]\nurl = "ntfy://night-shift"\n')
    assert report.created == ["contact night"]
    assert report.updated == ["rule ppe-north"]
    assert {rule.name: rule.pk for rule in Rule.objects.all()} == ids
    assert Rule.objects.get().consolidate_seconds == 60
    assert list(EscalationStep.objects.values_list("after_seconds", flat=True)) == [300]
    assert Contact.objects.count() == 3
    # A key left out is its default again; what the file does not name is kept.
    report = config.load('[[rules]]\nname = "ppe-north"\nnotify = ["night"]\n')
    rule = Rule.objects.get()
    assert (rule.kinds, rule.cameras, list(rule.sites.all())) == ([], [], [])
    assert (rule.consolidate_seconds, list(rule.steps.all())) == (0, [])
    assert report.kept == ["contact safety-team", "contact supervisor"]  # not "night"


def test_dump_round_trips(north) -> None:
    Site.objects.create(name="South", cameras=[7])
    config.load(
        EXAMPLE
        + """
[contacts."night shift"]
url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"

[[rules]]
name = "anything-anywhere"
notify = []
when_unwatched = "escalate-now"
[[rules.escalate]]
after_seconds = 60
notify = ["night shift", "supervisor"]
[[rules.escalate]]
after_seconds = 0
notify = ["safety-team"]
"""
    )
    before = tables()
    dumped = config.dump()
    assert dumped.index('name = "anything-anywhere"') < dumped.index('name = "ppe-north"')
    report = config.load(dumped)
    assert report.created == report.updated == []
    assert tables() == before
    assert config.dump() == dumped
    assert notifications("dump") == dumped


def refused(text: str) -> str:
    """The message of a refused file, having checked that nothing changed."""
    before = tables()
    with pytest.raises(config.ConfigError) as refusal:
        config.load(text)
    assert tables() == before
    return str(refusal.value)


BAD_FILES = {
    "unknown contact": (
        EXAMPLE.replace('notify = ["safety-team"]', 'notify = ["safety-team", "x"]'),
        11,
        "unknown contact 'x' in notify of rule 'ppe-north'",
    ),
    "bad url": (
        EXAMPLE.replace("json://127.0.0.1:9000/hook", "jsn://127.0.0.1/hook"),
        4,
        "not a URL Apprise accepts",
    ),
    "bad address": (
        EXAMPLE.replace("mailto:safety@plant.example", "mailto:safety"),
        2,
        "'safety' is not an e-mail address in url of contact 'safety-team'",
    ),
    "negative time": (
        EXAMPLE.replace("after_seconds = 600", "after_seconds = -1"),
        15,
        "negative time -1 in after_seconds of escalation step 1 of rule 'ppe-north'",
    ),
    "unknown kind": (
        EXAMPLE.replace('kinds = ["ppe"]', 'kinds = ["ppe", "fire"]'),
        8,
        "unknown kind 'fire' in kinds of rule 'ppe-north' (the kinds: human, loto, ppe)",
    ),
    "unknown site": (
        EXAMPLE.replace('sites = ["North"]', 'sites = ["Nord"]'),
        9,
        "unknown site 'Nord' in sites of rule 'ppe-north'",
    ),
    "unknown key": (
        EXAMPLE.replace("cooldown_seconds = 0", "cooldown = 0"),
        13,
        "unknown key 'cooldown' in rule 'ppe-north' (did you mean 'cooldown_seconds'? an "
        "unknown key is refused, not ignored, in case it is a typo",
    ),
    "syntax error": (
        EXAMPLE.replace('name = "ppe-north"', "name = ppe-north"),
        7,
        "Invalid value (column 8)",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_file_is_refused_with_its_line_and_changes_nothing(north, case) -> None:
    config.load(EXAMPLE.replace("safety@plant", "before@plant"))
    text, line, message = BAD_FILES[case]
    said = refused(text)
    assert f"line {line}: " in said, said
    assert message in said, said
    assert said.startswith(f"line {line}: "), said


def test_every_problem_is_told_and_each_has_its_line(north) -> None:
    text = """\
[contacts.a]
url = "mailto:a@plant.example"
colour = "red"

[[rules]]
name = "first"
notify = ["a"]

[[rules]]
name = "second"
kinds = []
consolidate_seconds = "30"
when_unwatched = "now"
[[rules.escalate]]
notify = ["b"]
[[rules.escalate]]
after_seconds = 5
notify = ["a"]
bogus = 1

[[rules]]
name = "first"
"""
    lines = [line.split(":")[0] for line in refused(text).splitlines()]
    assert lines == [
        "line 3",  # colour
        "line 11",  # kinds = []
        "line 12",  # "30"
        "line 13",  # now
        "line 14",  # no after_seconds
        "line 15",  # unknown contact b
        "line 19",  # bogus
        "line 22",  # a second rule 'first'
    ]


def test_names_are_found_however_the_file_writes_them(north) -> None:
    text = """\
contacts."night shift".url = "mailto:night@plant.example"
[contacts.'day']
url = "ntfy://day"

[[ rules ]]
name = "x"
escalate = [{ after_seconds = 1, notify = ["nobody"] }]
"""
    said = refused(text)
    assert said == "line 7: unknown contact 'nobody' in notify of escalation step 1 of rule 'x'"
    fine = text.replace('"nobody"', '"night shift", "day"')
    assert config.load(fine).created == ["contact night shift", "contact day", "rule x"]


def test_contacts_in_the_database_may_be_named(north) -> None:
    Contact.objects.create(name="gate", url="ntfy://gate")
    config.load('[[rules]]\nname = "r"\nnotify = ["gate"]\n')
    assert [c.name for c in Rule.objects.get().notify.all()] == ["gate"]


def test_apprise_says_why_without_the_secret_and_logs_nothing(caplog) -> None:
    said = refused('[contacts.t]\nurl = "tgram://secret-token/chat"\n')
    assert said.startswith("line 2: not a URL Apprise accepts (Unparseable Telegram URL)"), said
    assert "secret-token" not in said
    assert not [r for r in caplog.records if r.name.startswith("apprise")]
    for url in ("mailto://user:pw@gmail.example", "mailtos://user:pw@gmail.example"):
        said = refused(f'[contacts.t]\nurl = "{url}"\n')
        assert "an e-mail contact is mailto:ADDRESS" in said


# The command, in this process (its output) and as a process (its exit status).


def test_the_command_loads_a_file_and_says_what_it_did(north, tmp_path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(EXAMPLE)
    said = notifications("load", str(path))
    assert said.splitlines() == [
        "Created the contact safety-team.",
        "Created the contact supervisor.",
        "Created the rule ppe-north.",
    ]
    path.write_text(EXAMPLE.replace("cameras = [3, 4]", "cameras = [3]"))
    said = notifications("load", str(path))
    assert said.splitlines() == [
        "Updated the rule ppe-north.",
        "Unchanged: contact safety-team, contact supervisor.",
    ]
    path.write_text('[contacts.supervisor]\nurl = "ntfy://sup"\n')
    assert notifications("load", str(path)).splitlines() == [
        "Updated the contact supervisor.",
        "Not in the file, kept (delete them in the admin): contact safety-team, rule ppe-north.",
    ]


def test_the_command_refuses_a_bad_file_with_its_message(north, tmp_path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(BAD_FILES["unknown contact"][0])
    with pytest.raises(CommandError) as refusal:
        notifications("load", str(path))
    assert str(refusal.value) == (
        f"{path} refused, nothing changed:\n"
        "line 11: unknown contact 'x' in notify of rule 'ppe-north'"
    )
    assert not Rule.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_commands_exit_status(database_url, tmp_path) -> None:
    good, bad, latin = tmp_path / "good.toml", tmp_path / "bad.toml", tmp_path / "latin.toml"
    contact = '[contacts.a]\nurl = "mailto:a@plant.example"\n'
    good.write_text(contact)
    bad.write_text(contact + '[[rules]]\nname = "r"\nnotfy = 1\n')
    latin.write_bytes((contact + "# Grüße\n").encode("latin-1"))
    for path, line in [(bad, "line 5: unknown key 'notfy'"), (latin, "line 3: not UTF-8 text")]:
        out = run_manage(database_url, "notifications", "load", str(path))
        assert out.returncode == 1, out
        assert out.stderr.startswith(f"CommandError: {path} refused, nothing changed:\n{line}")
        assert "Traceback" not in out.stderr
    missing = run_manage(database_url, "notifications", "load", str(tmp_path / "none.toml"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"CommandError: Cannot read {tmp_path / 'none.toml'}: No such file or directory."
    )
    assert not Contact.objects.exists()
    loaded = run_manage(database_url, "notifications", "load", str(good))
    assert (loaded.returncode, loaded.stdout) == (0, "Created the contact a.\n")
    dumped = run_manage(database_url, "notifications", "dump")
    assert (dumped.returncode, dumped.stdout) == (0, contact)


# The admin.


def staff(username: str, *permissions: str) -> Client:
    user = get_user_model().objects.create_user(
        username, password="a-long-password-1", is_staff=True
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    client = Client()
    client.force_login(user)
    return client


def rule_form(**values: Any) -> dict[str, Any]:
    """The add-rule form as a browser posts it, with no escalation step."""
    return {
        "name": "ppe-north",
        "kinds": ["ppe"],
        "cameras": "3-4",
        "consolidate_seconds": "30",
        "cooldown_seconds": "0",
        "when_unwatched": "",
        "steps-TOTAL_FORMS": "0",
        "steps-INITIAL_FORMS": "0",
        **values,
    }


def test_a_manager_of_notifications_adds_a_rule_in_the_admin(north) -> None:
    admin = staff("manager", "manage_notifications")
    index = admin.get("/admin/").content.decode()
    assert "/admin/realtime/contact/" in index and "/admin/realtime/rule/" in index
    form = admin.get("/admin/realtime/rule/add/").content.decode()
    assert 'type="checkbox" name="kinds" value="ppe"' in form
    added = admin.post(
        "/admin/realtime/contact/add/", {"name": "safety-team", "url": "mailto:s@plant.example"}
    )
    assert added.status_code == 302, added.content.decode()[-3000:]
    contact = Contact.objects.get()
    added = admin.post(
        "/admin/realtime/rule/add/",
        rule_form(
            sites=[north.pk],
            notify=[contact.pk],
            **{
                "steps-TOTAL_FORMS": "1",
                "steps-0-after_seconds": "600",
                "steps-0-notify": [contact.pk],
            },
        ),
    )
    assert added.status_code == 302, added.content.decode()[-3000:]
    rule = Rule.objects.get()
    assert (rule.kinds, rule.cameras, rule.consolidate_seconds) == (["ppe"], [3, 4], 30)
    assert list(rule.steps.values_list("after_seconds", flat=True)) == [600]
    page = admin.get(f"/admin/realtime/contact/{contact.pk}/change/").content.decode()
    assert "mailto:s@plant.example" in page
    assert admin.get("/admin/realtime/rule/").status_code == 200


def test_without_the_permission_the_pages_are_forbidden(north) -> None:
    Contact.objects.create(name="chat", url="ntfy://secret-topic")
    other = staff("other", "view_site", "change_site", "view_all_sites")
    for path in (
        "/admin/realtime/contact/",
        "/admin/realtime/contact/add/",
        f"/admin/realtime/contact/{Contact.objects.get().pk}/change/",
        "/admin/realtime/rule/",
        "/admin/realtime/rule/add/",
    ):
        response = other.get(path)
        assert response.status_code == 403, path
        assert "secret-topic" not in response.content.decode()
    assert "secret-topic" not in other.get("/admin/").content.decode()
    assert other.post("/admin/realtime/rule/add/", rule_form()).status_code == 403
    assert not Rule.objects.exists()


def form_errors(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", e) for e in re.findall(r'<ul class="errorlist.*?</ul>', html)]


def test_the_admin_refuses_what_the_file_refuses(north) -> None:
    admin = staff("manager", "manage_notifications")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kinds": ["ppe", "fire"]}, "unknown kind &#x27;fire&#x27;"),
        ({"consolidate_seconds": "-5"}, "negative time -5"),
        ({"cameras": "3-x"}, "not a camera or a range of cameras"),
    ]
    for values, message in cases:
        response = admin.post("/admin/realtime/rule/add/", rule_form(**values))
        assert response.status_code == 200
        assert any(message in error for error in form_errors(response.content.decode())), message
    for url, message in [
        ("jsn://127.0.0.1/hook", "not a URL Apprise accepts (Unparseable URL)"),
        ("mailto:nobody", "&#x27;nobody&#x27; is not an e-mail address"),
    ]:
        response = admin.post("/admin/realtime/contact/add/", {"name": "x", "url": url})
        assert response.status_code == 200
        assert any(message in error for error in form_errors(response.content.decode())), url
    response = admin.post(
        "/admin/realtime/rule/add/",
        rule_form(**{"steps-TOTAL_FORMS": "1", "steps-0-after_seconds": "-1"}),
    )
    assert "negative time -1" in response.content.decode()
    assert not Rule.objects.exists() and not Contact.objects.exists()


DOCS = Path(__file__).resolve().parent.parent / "docs" / "how-to" / "alerts.md"


def test_the_docs_file_loads_and_their_urls_are_accepted(north) -> None:
    docs = DOCS.read_text()
    example = re.findall(r"```toml\n(.*?)```", docs, re.DOTALL)[0]
    assert config.load(example).created
    chat = docs[docs.index("## Chat and webhooks") :]
    chat = chat[: chat.index("\n## ", 1)]
    urls = re.findall(r"^\| [^|]+ \| `([a-z]+://[^`]+)`", chat, re.MULTILINE)
    assert len(urls) == 6
    for url in urls:
        validators.check_contact_url(url)
    with pytest.raises(ValidationError, match="no longer has msteams://"):
        validators.check_contact_url("msteams://a/b/c")
