"""The listener on the real database: forwarding, catch-up, hostile NOTIFY, failover."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest

from realtime.pipeline.changes import ChangeEvent
from tests.helpers import Collector, insert_violation, listener_under_test, running

make = listener_under_test
SKIPPED = "skipped notifications the event log does not back"


async def test_forwards_each_change_once(db_url, pg, marker) -> None:
    listener, got = make(db_url)
    async with running(listener):
        row_id = insert_violation(pg, image=marker)
        await got.wait_for_images({marker})
        await asyncio.sleep(1.2)  # two catch-up scans see the row again
    mine = [e for e in got.events if e["data"].get("violation_image") == marker]
    assert len(mine) == 1
    assert mine[0]["table"] == "violation_humandetections"
    assert mine[0]["op"] == "INSERT"
    assert mine[0]["data"]["id"] == row_id


async def test_a_burst_is_forwarded_in_batches_in_order(db_url, pg, marker) -> None:
    """One statement of 2,000 rows: a few forwards (group messages), not one per row."""
    listener, got = make(db_url)
    async with running(listener):
        calls_before = got.calls
        pg.execute(
            "INSERT INTO violation_humandetections"
            " (camera_id, violation_date, violation_time, violation_image)"
            " SELECT 1, CURRENT_DATE, LOCALTIME(0), %s || n FROM generate_series(1, 2000) n",
            [marker],
        )
        wanted = {f"{marker}{n}" for n in range(1, 2001)}
        await got.wait_for_images(wanted)
    mine = [e for e in got.events if str(e["data"].get("violation_image")).startswith(marker)]
    assert [e["data"]["violation_image"] for e in mine] == [f"{marker}{n}" for n in range(1, 2001)]
    assert got.calls - calls_before <= 200


async def test_a_statement_of_25000_rows_is_forwarded_whole_and_in_order(
    db_url, pg, marker
) -> None:
    """Three log rows (at most 10,000 changes each), read a window of ids at a time."""
    listener, got = make(db_url)
    async with running(listener):
        pg.execute(
            "INSERT INTO violation_humandetections (camera_id, violation_image)"
            " SELECT 1, %s || n FROM generate_series(1, 25000) n",
            [marker],
        )
        wanted = [f"{marker}{n}" for n in range(1, 25001)]
        await got.wait_for_images(set(wanted), timeout=30)
    mine = [e for e in got.events if str(e["data"].get("violation_image")).startswith(marker)]
    assert [e["data"]["violation_image"] for e in mine] == wanted


async def test_a_forged_statement_notice_forwards_nothing(db_url, pg, marker, caplog) -> None:
    listener, got = make(db_url)
    caplog.set_level(logging.WARNING, logger="realtime.pipeline.listener")
    async with running(listener):
        before = len(got.events)
        pg.execute(
            "SELECT pg_notify('realtime_changed_v1', %s)",
            [
                '{"table": "violation_humandetections", "op": "INSERT", "first_id": 1,'
                ' "last_id": 999999999, "rows": 5, "xid": "3"}'
            ],
        )
        insert_violation(pg, image=marker)
        await got.wait_for_images({marker})
    assert [e["data"]["violation_image"] for e in got.events[before:]] == [marker]
    [skipped] = [r for r in caplog.records if r.getMessage() == SKIPPED]
    assert skipped.not_in_the_log == 1


async def test_a_table_with_the_row_trigger_of_v1_is_still_forwarded(db_url, pg, marker) -> None:
    """What a DBA attached with realtime_watch_v1() before v2 keeps working."""
    pg.execute("DROP TABLE IF EXISTS legacy_watched")
    pg.execute("CREATE TABLE legacy_watched (id serial PRIMARY KEY, note text)")
    pg.execute("SELECT realtime_watch_v1('legacy_watched')")
    try:
        listener, got = make(db_url)
        async with running(listener):
            pg.execute("INSERT INTO legacy_watched (note) VALUES (%s)", [marker])
            await got.wait_until(lambda: any(e["data"].get("note") == marker for e in got.events))
    finally:
        pg.execute("DROP TABLE legacy_watched")


async def test_big_row_is_read_from_the_log_and_delivered_whole(db_url, pg) -> None:
    listener, got = make(db_url)
    image = "/media/big-" + "z" * 20_000
    async with running(listener):
        insert_violation(pg, "violation_ppedetections", image=image)
        await got.wait_for_images({image})


async def test_unreadable_notification_is_logged_and_skipped(db_url, pg, marker, caplog) -> None:
    listener, got = make(db_url)
    caplog.set_level(logging.WARNING, logger="realtime.pipeline.listener")
    async with running(listener) as task:
        # In one transaction: delivered together, so the good one shares a batch with them.
        pg.execute("BEGIN")
        for junk in [
            "not json",
            '{"id": "x"}',
            '{"id": 99999999999, "table": "violation_humandetections", "op": "INSERT"}',
            '{"junk": "' + "z" * 7_900 + '"}',  # as big as NOTIFY allows
        ]:
            pg.execute("SELECT pg_notify('realtime_changed_v1', %s)", [junk])
        insert_violation(pg, image=marker)
        pg.execute("COMMIT")
        await got.wait_for_images({marker})
        assert not task.done()
    [skipped] = [r for r in caplog.records if r.getMessage() == SKIPPED]
    assert (skipped.unreadable, skipped.not_in_the_log) == (3, 1), "one line, counted"


async def test_restarted_listener_catches_up_what_was_committed_meanwhile(db_url, pg) -> None:
    listener, got = make(db_url)
    async with running(listener):
        insert_violation(pg, image="/media/before.jpg")
        await got.wait_for_images({"/media/before.jpg"})
    missed = {f"/media/while-down-{n}.jpg" for n in range(5)}
    for image in sorted(missed):
        insert_violation(pg, image=image)
    async with running(listener):
        await got.wait_for_images(missed)
    assert got.images().count("/media/before.jpg") == 1


async def test_a_big_statement_committed_meanwhile_is_caught_up_change_by_change(
    db_url, pg, marker
) -> None:
    """Its changes share one log row (trigger v3): the catch-up unpacks them."""
    listener, got = make(db_url)
    async with running(listener):
        insert_violation(pg, image=f"{marker}-before")
        await got.wait_for_images({f"{marker}-before"})
    pg.execute(
        "INSERT INTO violation_humandetections"
        " (camera_id, violation_date, violation_time, violation_image)"
        " SELECT 1, CURRENT_DATE, LOCALTIME(0), %s || '-' || n FROM generate_series(1, 300) n",
        [marker],
    )
    wanted = [f"{marker}-{n}" for n in range(1, 301)]
    async with running(listener):
        await got.wait_for_images(set(wanted))
    mine = [e for e in got.events if e["data"]["violation_image"] in set(wanted)]
    assert [e["data"]["violation_image"] for e in mine] == wanted
    assert [e["id"] for e in mine] == sorted({e["id"] for e in mine})


async def test_reconnects_after_the_database_drops_it(db_url, pg, marker) -> None:
    listener, got = make(db_url, backoff_initial=0.05, backoff_max=0.2)
    async with running(listener):
        # The listener's backend is the one holding the advisory lock in this database
        # (pg_locks shows the whole cluster's: another run's listeners are not ours to drop).
        pg.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
        )
        insert_violation(pg, image=marker)  # committed while the listener is away
        await got.wait_for_images({marker})
    assert listener.reconnects >= 1


async def test_late_commit_of_a_lower_id_is_not_lost(db_url, pg) -> None:
    """A transaction takes an id, another commits a higher one, the first commits last."""
    listener, got = make(db_url)
    with psycopg.connect(db_url) as slow:  # not autocommit: an open transaction
        insert_violation(slow, image="/media/slow.jpg")
        async with running(listener):
            insert_violation(pg, image="/media/fast.jpg")
            await got.wait_for_images({"/media/fast.jpg"})
        slow.commit()  # commits while no listener runs, with the lower id
    async with running(listener):
        await got.wait_for_images({"/media/slow.jpg"})
    ids = {e["data"]["violation_image"]: e["id"] for e in got.events}
    assert ids["/media/slow.jpg"] < ids["/media/fast.jpg"]


async def test_only_one_of_two_listeners_forwards(db_url, pg) -> None:
    first, got_first = make(db_url)
    second, got_second = make(db_url)
    async with running(first):
        async with running(second, active=False):
            await asyncio.sleep(0.5)
            assert (first.state, second.state) == ("active", "standby")
            insert_violation(pg, image="/media/one-active.jpg")
            await got_first.wait_for_images({"/media/one-active.jpg"})
            await asyncio.sleep(0.5)
            assert "/media/one-active.jpg" not in got_second.images()


async def test_standby_takes_over_within_seconds_and_loses_nothing(db_url, pg) -> None:
    first, _ = make(db_url)
    second, got_second = make(db_url)
    first_task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.wait_active(), 10)
    async with running(second, active=False):
        await asyncio.sleep(0.3)
        assert second.state == "standby"
        # The active one goes away (its connection closes, as a killed process's would).
        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)
        insert_violation(pg, image="/media/after-failover.jpg")
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(second.wait_active(), 5)
        assert asyncio.get_running_loop().time() - started < 5
        await got_second.wait_for_images({"/media/after-failover.jpg"})


@pytest.mark.parametrize("table", ["violation_lotodetections"])
async def test_update_and_delete_are_forwarded(db_url, pg, marker, table) -> None:
    listener, got = make(db_url)
    async with running(listener):
        row_id = insert_violation(pg, table, image=marker)
        pg.execute(f"UPDATE {table} SET camera_id = 9 WHERE id = %s", [row_id])
        pg.execute(f"DELETE FROM {table} WHERE id = %s", [row_id])
        await got.wait_until(lambda: len(_ops(got, row_id, table)) >= 3)
    assert _ops(got, row_id, table) == ["INSERT", "UPDATE", "DELETE"]


def _ops(got: Collector, row_id: int, table: str) -> list[str]:
    return [e["op"] for e in got.events if e["table"] == table and e["data"]["id"] == row_id]


async def test_a_table_watched_meanwhile_is_forwarded_at_its_first_change(db_url, pg) -> None:
    """add_kind needs no restart: the listener reads the watched tables again at once."""
    listener, got = make(db_url, catch_up_interval=60.0)  # no periodic catch-up in the test
    pg.execute(
        "CREATE TABLE violation_smokedetections (id serial PRIMARY KEY, camera_id int,"
        " violation_date date, violation_time time, violation_image text)"
    )
    try:
        async with running(listener):
            pg.execute("SELECT realtime_watch_v5('violation_smokedetections')")
            pg.execute(
                "INSERT INTO violation_smokedetections (camera_id, violation_image)"
                " VALUES (1, '/media/smoke.jpg')"
            )
            await got.wait_for_images({"/media/smoke.jpg"}, timeout=5)
    finally:
        pg.execute("DROP TABLE violation_smokedetections")


async def test_an_acknowledgement_is_forwarded_with_the_row_and_who(db_url, pg, marker) -> None:
    listener, got = make(db_url)
    async with running(listener):
        row_id = insert_violation(pg, "violation_ppedetections", image=marker)
        pg.execute(
            "INSERT INTO realtime_acknowledgement"
            " (table_name, violation_id, acknowledged_by, acknowledged_at)"
            " VALUES ('violation_ppedetections', %s, 'dora', now())",
            [row_id],
        )
        pg.execute("UPDATE violation_ppedetections SET camera_id = 9 WHERE id = %s", [row_id])
        await got.wait_until(lambda: len(mine(got, row_id)) >= 3)
    insert, state, update = mine(got, row_id)
    assert insert["op"] == "INSERT" and "state" not in insert
    assert state["op"] == "STATE" and state["data"]["violation_image"] == marker
    assert state["state"] is not None and state["state"]["acknowledged_by"] == "dora"
    # A detectors' UPDATE of an acknowledged row keeps it drawn as acknowledged.
    assert update["op"] == "UPDATE" and update["state"] is not None
    assert update["state"]["acknowledged_by"] == "dora"


def mine(got: Collector, row_id: int) -> list[ChangeEvent]:
    return [
        e
        for e in got.events
        if e["table"] == "violation_ppedetections" and e["data"]["id"] == row_id
    ]
