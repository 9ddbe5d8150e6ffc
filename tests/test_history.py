"""
The SQLite history store: batches kept in order and capped per room,
topics, loading at start, and an unreadable file set aside.
"""

import sqlite3

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher

from chatd.history import FILENAME, SQLiteHistory


def store(tmp_path, keep=3, start=True):
    history = SQLiteHistory.in_directory(str(tmp_path), MemoryReactorClock(), keep)
    if start:  # its writer thread: every test stops what it starts
        history.startService()
    return history


def test_lines_are_kept_in_order_capped_per_room_and_loaded(tmp_path):
    history = store(tmp_path)
    for i in range(5):
        history.append("dev", "Dev", float(i), f"<a> {i}")
    history.append("ops", "ops", 9.0, "<b> ops")
    history.set_topic("dev", "Dev", "the topic")
    history.stopService()  # writes what is queued
    history = store(tmp_path, start=False)
    assert history.load(10, 2) == [
        ("ops", "", [(9.0, "<b> ops")]),  # most recently active first
        ("Dev", "the topic", [(3.0, "<a> 3"), (4.0, "<a> 4")]),
    ]
    db = sqlite3.connect(tmp_path / FILENAME)
    assert db.execute("SELECT COUNT(*) FROM lines WHERE room = 'dev'").fetchone() == (3,)
    db.close()


def test_load_keeps_only_the_most_recently_active_rooms(tmp_path):
    history = store(tmp_path)
    for i in range(4):
        history.append(f"r{i}", f"r{i}", float(i), "<a> x")
    history.stopService()
    assert [name for name, _, _ in store(tmp_path, start=False).load(2, 10)] == ["r3", "r2"]
    db = sqlite3.connect(tmp_path / FILENAME)  # the others are dropped from the file
    assert db.execute("SELECT DISTINCT room FROM lines ORDER BY room").fetchall() == \
        [("r2",), ("r3",)]
    db.close()


def test_an_unreadable_file_is_set_aside_and_a_fresh_one_started(tmp_path):
    (tmp_path / FILENAME).write_bytes(b"garbage" * 1000)
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        history = store(tmp_path)
        assert history.load(10, 10) == []
    finally:
        globalLogPublisher.removeObserver(events.append)
    history.append("dev", "dev", 1.0, "<a> fresh")
    history.stopService()
    assert [p.name.split("-")[0] for p in tmp_path.glob(FILENAME + ".unreadable-*")] == \
        [FILENAME + ".unreadable"]
    assert any("is unreadable" in e.get("log_format", "") for e in events)
    assert store(tmp_path, start=False).load(10, 10) == [("dev", "", [(1.0, "<a> fresh")])]


def test_a_forgotten_room_loses_its_lines_but_a_new_one_of_its_name_keeps_its_own(tmp_path):
    history = store(tmp_path)
    history.append("dev", "dev", 1.0, "<a> old")
    history.flush()
    history.append("dev", "dev", 2.0, "<a> also old")
    history.set_topic("dev", "dev", "old topic")
    history.forget("dev")
    history.append("dev", "Dev", 3.0, "<b> new")
    history.stopService()
    assert store(tmp_path, start=False).load(10, 10) == [("Dev", "", [(3.0, "<b> new")])]
