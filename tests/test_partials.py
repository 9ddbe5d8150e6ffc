"""
Kept partial uploads: expiry on a ``task.Clock``, the size bound (oldest
first), claiming, and the restart sweep.
"""

import os
import time

from twisted.internet import task
from twisted.python.filepath import FilePath

from chatd.partials import Partials

A, B, C = "a" * 64, "b" * 64, "c" * 64


def temp(tmp_path, name, size):
    path = tmp_path / name
    path.write_bytes(b"x" * size)
    return str(path)


def kept(directory):
    return sorted(p.name for p in directory.iterdir())


def test_expiry_after_the_window(tmp_path):
    clock = task.Clock()
    partials = Partials(FilePath(str(tmp_path / "partial")), 600, 10**6, clock)
    assert partials.keep(100, A, temp(tmp_path, "t1", 40), 40)
    clock.advance(599)
    assert kept(tmp_path / "partial") == [f"{A}-100.part"]
    clock.advance(1)
    assert kept(tmp_path / "partial") == []
    assert partials.claim(100, A) == (None, 0)


def test_keeping_again_restarts_the_window_and_a_shorter_part_is_dropped(tmp_path):
    clock = task.Clock()
    partials = Partials(FilePath(str(tmp_path / "partial")), 600, 10**6, clock)
    partials.keep(100, A, temp(tmp_path, "t1", 40), 40)
    clock.advance(500)
    assert not partials.keep(100, A, temp(tmp_path, "t2", 30), 30)
    assert not os.path.exists(tmp_path / "t2")
    path, held = partials.claim(100, A)
    assert held == 40 and os.path.getsize(path) == 40
    assert partials.claim(100, A) is None  # claimed by someone else now
    with open(path, "ab") as f:
        f.write(b"y" * 20)
    assert partials.keep(100, A, path, 60)  # cut off again: kept, window anew
    clock.advance(599)
    assert partials.claim(100, A)[1] == 60


def test_size_bound_drops_the_oldest(tmp_path):
    clock = task.Clock()
    partials = Partials(FilePath(str(tmp_path / "partial")), 600, 100, clock)
    partials.keep(100, A, temp(tmp_path, "t1", 40), 40)
    clock.advance(1)
    partials.keep(100, B, temp(tmp_path, "t2", 40), 40)
    clock.advance(1)
    partials.keep(100, C, temp(tmp_path, "t3", 40), 40)
    assert kept(tmp_path / "partial") == [f"{B}-100.part", f"{C}-100.part"]
    assert partials.used == 80


def test_restart_sweep_keeps_fresh_parts_only(tmp_path):
    directory = tmp_path / "partial"
    directory.mkdir()
    now = time.time()
    (directory / f"{A}-100.part").write_bytes(b"x" * 10)  # fresh
    (directory / f"{B}-100.part").write_bytes(b"x" * 10)
    os.utime(directory / f"{B}-100.part", (now - 700, now - 700))  # expired
    (directory / f"{C}-5.part").write_bytes(b"x" * 10)  # longer than its size
    (directory / "junk").write_bytes(b"?")
    clock = task.Clock()
    Partials(FilePath(str(directory)), 600, 10**6, clock, wall=lambda: now)
    assert kept(directory) == [f"{A}-100.part"]
    clock.advance(600)  # its window ran from its modification time
    assert kept(directory) == []


def test_another_cut_upload_never_replaces_the_part_being_resumed(tmp_path):
    """
    While one connection resumes a part (its file is the kept path), a plain
    upload of the same file cut off elsewhere is dropped, not renamed over
    the resumer's bytes; the claim stays the resumer's.
    """
    clock = task.Clock()
    partials = Partials(FilePath(str(tmp_path / "partial")), 600, 10**6, clock)
    partials.keep(100, A, temp(tmp_path, "t1", 40), 40)
    path, held = partials.claim(100, A)
    assert not partials.keep(100, A, temp(tmp_path, "other", 70), 70)
    assert not os.path.exists(tmp_path / "other")
    assert os.path.getsize(path) == 40  # still the resumer's own bytes
    assert partials.claim(100, A) is None  # still claimed


def test_a_part_that_cannot_be_kept_is_removed_not_raised(tmp_path):
    clock = task.Clock()
    partials = Partials(FilePath(str(tmp_path / "partial")), 600, 10**6, clock)
    (tmp_path / "partial").rmdir() if (tmp_path / "partial").exists() else None
    (tmp_path / "partial").write_text("not a directory")  # the rename fails
    source = temp(tmp_path, "t1", 40)
    assert not partials.keep(100, A, source, 40)
    assert not os.path.exists(source)
