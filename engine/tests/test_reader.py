"""The incremental reader on real files: growth, rotation, truncation, junk."""

import os
import random
import shutil
import time

import pytest

from engine.errors import LogSourceError
from engine.reader import Cursor, LogReader
from engine.records import parse_record, record_bounds
from tools.testing import run_as


def record(n, level="INFO", extra_lines=0, second=None):
    second = n % 60 if second is None else second
    head = f"2026-11-29 10:{(n // 60) % 60:02d}:{second:02d},{n % 1000:03d} 4242 {level} db " \
           f"odoo.test: record {n}\n"
    tail = "".join(f"  continuation {n}.{i}\n" for i in range(extra_lines))
    return (head + tail).encode()


def read_all(path, cursor=None, **kwargs):
    """Run one scan; return (list of record texts, reader)."""
    kwargs.setdefault("final", False)
    kwargs.setdefault("settle_seconds", 3600)
    reader = LogReader(path, cursor, **kwargs)
    texts = []
    for block in reader.blocks():
        position = 0
        while position < len(block.data):
            start, end = record_bounds(block.data, position)
            assert start == position, "blocks must start at record boundaries"
            texts.append(block.data[start:end])
            position = end
    return texts, reader


@pytest.fixture
def log(tmp_path):
    return tmp_path / "odoo.log"


def append(path, data):
    with open(path, "ab") as handle:
        handle.write(data)


def test_reads_only_new_bytes(log):
    append(log, record(1) + record(2) + record(3))
    texts, reader = read_all(log, final=True)
    assert texts == [record(1), record(2), record(3)]
    assert reader.bytes_read == os.path.getsize(log)
    append(log, record(4))
    texts, reader2 = read_all(log, reader.cursor, final=True)
    assert texts == [record(4)]
    assert reader2.bytes_read == len(record(4))
    assert reader2.cursor.line == 5


def test_incremental_scan_holds_back_a_growing_record(log):
    """A traceback written across two scans is read once, whole."""
    append(log, record(1) + record(2, "ERROR") + b"Traceback (most recent call last):\n")
    texts, reader = read_all(log)
    assert texts == [record(1)]
    traceback_line = b"Traceback (most recent call last):\n"
    assert reader.held_back == len(record(2, "ERROR")) + len(traceback_line)
    append(log, b'  File "x.py", line 1\nValueError: boom\n' + record(3))
    texts, reader = read_all(log, reader.cursor)
    assert texts == [record(2, "ERROR") + b"Traceback (most recent call last):\n"
                     b'  File "x.py", line 1\nValueError: boom\n']
    # The last record is released once the file has been quiet long enough.
    texts, reader = read_all(log, reader.cursor, settle_seconds=0)
    assert texts == [record(3)]
    texts, reader = read_all(log, reader.cursor, settle_seconds=0)
    assert texts == []


def test_partial_last_line_is_never_released_by_an_incremental_scan(log):
    append(log, record(1) + b"2026-11-29 10:00:02,000 4242 ERROR db x: half a li")
    texts, reader = read_all(log, settle_seconds=0)
    assert texts == [record(1)]
    append(log, b"ne\n")
    texts, _ = read_all(log, reader.cursor, settle_seconds=0)
    assert texts == [b"2026-11-29 10:00:02,000 4242 ERROR db x: half a line\n"]


def test_one_shot_scan_reads_a_file_ending_mid_record(log):
    append(log, record(1) + b"2026-11-29 10:00:02,000 4242 CRITICAL db x: cut")
    texts, _ = read_all(log, final=True)
    assert texts[-1] == b"2026-11-29 10:00:02,000 4242 CRITICAL db x: cut"


def test_rotation_by_rename_finishes_the_old_file_first(log):
    append(log, record(1) + record(2))
    texts, reader = read_all(log)
    assert texts == [record(1)]
    # Odoo still writes to the renamed file until it reopens its log.
    os.rename(log, str(log) + ".1")
    append(str(log) + ".1", record(3))
    append(log, record(4) + record(5))
    texts, reader = read_all(log, reader.cursor)
    assert texts == [record(2), record(3), record(4)]
    assert reader.rotated
    assert any("finished" in w for w in reader.warnings)
    assert reader.cursor.line == 2
    texts, _ = read_all(log, reader.cursor, final=True)
    assert texts == [record(5)]


def test_two_rotations_between_scans_lose_nothing(log):
    append(log, record(1))
    _, reader = read_all(log, final=True)
    append(log, record(2))
    os.rename(log, str(log) + ".1")
    append(log, record(3))
    old = time.time() + 5  # written after odoo.log.1 stopped growing
    os.utime(log, (old, old))
    os.rename(log, str(log) + ".2")
    append(log, record(4))
    texts, reader = read_all(log, reader.cursor, final=True)
    assert texts == [record(2), record(3), record(4)]


def test_rotation_with_the_old_file_gone_reads_the_new_one_and_warns(log):
    append(log, record(1) + record(2))
    _, reader = read_all(log)
    fresh = log.with_name("fresh")
    append(fresh, record(7) + record(8))
    os.unlink(log)  # rotated and compressed away: the old inode is gone
    os.rename(fresh, log)
    texts, reader = read_all(log, reader.cursor, final=True)
    assert reader.rotated
    assert texts == [record(7), record(8)]
    assert any("not found" in w for w in reader.warnings)


def test_copytruncate_starts_again_at_zero(log):
    append(log, record(1) + record(2) + record(3))
    _, reader = read_all(log, final=True)
    shutil.copy(log, str(log) + ".1")
    with open(log, "r+b") as handle:
        handle.truncate(0)
    append(log, record(9))
    texts, reader = read_all(log, reader.cursor, final=True)
    assert texts == [record(9)]
    assert reader.truncated


def test_file_rewritten_in_place_with_same_size_is_detected(log):
    append(log, record(1) + record(2))
    _, reader = read_all(log, final=True)
    size = os.path.getsize(log)
    with open(log, "r+b") as handle:  # same inode, same size, other content
        handle.write(record(5) + record(6))
    append(log, record(7))
    assert os.path.getsize(log) > size
    texts, reader = read_all(log, reader.cursor, final=True)
    assert texts == [record(5), record(6), record(7)]
    assert reader.truncated


def test_binary_junk_and_invalid_utf8_are_read_not_fatal(log):
    junk = bytes(range(256)) * 40
    append(log, record(1) + junk + b"\n\xff\xfe caf\xe9\n" + record(2, "ERROR"))
    texts, _ = read_all(log, final=True)
    assert texts[0].startswith(record(1))
    assert texts[-1] == record(2, "ERROR")
    parsed = parse_record(texts[0])
    assert "\x00" not in parsed.text
    assert parsed.level == "INFO"


def test_multi_megabyte_line_is_bounded(log):
    huge = b"x" * (5 << 20)
    append(log, record(1, "ERROR") + huge + b"\n" + record(2))
    texts, reader = read_all(log, final=True)
    assert len(texts) == 2
    assert texts[1] == record(2)
    parsed = parse_record(texts[0])
    assert len(parsed.text) < 2 << 20
    assert "bytes omitted" in parsed.text
    assert reader.bytes_read == os.path.getsize(log)


def test_headerless_text_longer_than_the_pending_limit_is_passed_on(log, monkeypatch):
    monkeypatch.setattr("engine.reader.MAX_PENDING", 4096)
    lines = b"".join(b"junk line %d\n" % i for i in range(2000))
    append(log, lines + record(1))
    texts, _ = read_all(log, final=True, block_size=1024)
    assert b"".join(texts) == lines + record(1)


def test_scan_budget_continues_where_it_stopped(log):
    data = b"".join(record(n, extra_lines=n % 4) for n in range(500))
    append(log, data)
    seen, cursor, scans = [], None, 0
    while True:
        texts, reader = read_all(log, cursor, final=True, max_bytes=4096, block_size=1024)
        scans += 1
        seen.extend(texts)
        cursor = reader.cursor
        if cursor.offset == len(data):
            break
    assert b"".join(seen) == data
    assert scans > 5


def test_scan_budget_never_releases_a_record_cut_by_the_budget(log):
    """The budget stops reading mid-record: that record waits for the next scan."""
    head = record(1, "ERROR")
    append(log, record(0) + head + b"Traceback (most recent call last):\n" + record(2))
    old = time.time() - 3600
    os.utime(log, (old, old))  # quiet file: settling would release a last record
    size = len(record(0)) + len(head)
    texts, reader = read_all(log, final=False, settle_seconds=0, max_bytes=size,
                             block_size=size)
    assert texts == [record(0)]
    texts, reader = read_all(log, reader.cursor, final=False, settle_seconds=0)
    assert texts == [head + b"Traceback (most recent call last):\n", record(2)]


def test_a_record_larger_than_the_budget_still_moves_the_cursor(log):
    big = record(1, "ERROR", extra_lines=500)
    append(log, big + record(2))
    texts, reader = read_all(log, final=True, max_bytes=100, block_size=64)
    assert texts == [big]
    texts, _ = read_all(log, reader.cursor, final=True, max_bytes=100, block_size=64)
    assert texts == [record(2)]


def test_missing_directory_and_non_regular_paths_are_clear_errors(tmp_path):
    with pytest.raises(LogSourceError, match="not found: .*nope.log"):
        read_all(tmp_path / "nope.log")
    with pytest.raises(LogSourceError, match="directory"):
        read_all(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(LogSourceError, match="not a regular file"):
        read_all(fifo)


def test_unreadable_file_is_a_clear_error(log):
    append(log, record(1))
    os.chmod(log, 0o000)
    os.chmod(log.parent, 0o755)
    os.chmod(log.parent.parent, 0o755)

    def attempt():
        try:
            list(LogReader(str(log)).blocks())
        except LogSourceError as exc:
            return str(exc)
        return "read without error"

    assert run_as("nobody", attempt) == f"log file not readable (permission denied): {log}"


def test_cursor_from_other_path_is_ignored(log):
    append(log, record(1))
    texts, _ = read_all(log, Cursor("/elsewhere.log", inode=1, offset=10), final=True)
    assert texts == [record(1)]


def test_random_writes_rotations_and_scans_lose_and_double_nothing(tmp_path):
    """Property: whatever the interleaving, every record is read exactly once."""
    rng = random.Random(20261129)
    for trial in range(40):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        path = folder / "odoo.log"
        clock = time.time() - 10  # time passes between writes, as in real logs

        def append(target, data):
            nonlocal clock
            clock += 0.001
            with open(target, "ab") as handle:
                handle.write(data)
            os.utime(target, (clock, clock))

        append(path, b"")
        # The first scan sees an empty file: the log's history starts here.
        cursor = read_all(path)[1].cursor
        written, seen, n = [], [], 0
        rotations = 0
        for _ in range(60):
            action = rng.random()
            if action < 0.6:
                data = record(n, rng.choice(["INFO", "ERROR"]), extra_lines=rng.randrange(4))
                written.append(data)
                n += 1
                cut = rng.randrange(len(data) + 1)
                append(path, data[:cut])  # half now, half later: a write in progress
                if rng.random() < 0.5:
                    texts, reader = read_all(path, cursor)
                    seen.extend(texts)
                    cursor = reader.cursor
                append(path, data[cut:])
            elif action < 0.7 and rotations < 3:
                rotations += 1
                target = folder / f"odoo.log.{rotations}"
                os.rename(path, target)
                append(path, b"")  # logrotate's create: a new empty file
            else:
                texts, reader = read_all(path, cursor)
                seen.extend(texts)
                cursor = reader.cursor
        texts, reader = read_all(path, cursor, settle_seconds=0)
        seen.extend(texts)
        # Records were held back until complete, so byte-equal records come out.
        assert seen == written, f"trial {trial}"


def test_settle_uses_the_file_mtime(log):
    append(log, record(1) + record(2))
    old = time.time() - 60
    os.utime(log, (old, old))
    texts, _ = read_all(log, settle_seconds=30)
    assert texts == [record(1), record(2)]
