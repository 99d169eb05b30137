"""The spool on real files: nothing lost, nothing sent twice in effect."""

import json
import multiprocessing
import os

from engine.spool import Spool


def test_entries_survive_a_restart_and_only_acknowledged_ones_leave(tmp_path):
    path = str(tmp_path / "spool.jsonl")
    spool = Spool(path)
    ids = [spool.append({"kind": "incident", "n": n})["id"] for n in range(5)]
    batch = Spool(path).pending(limit=2)          # a new process: same view
    assert [e["id"] for e in batch] == ids[:2]
    Spool(path).acknowledge(batch)
    assert [e["id"] for e in Spool(path).pending()] == ids[2:]


def test_a_crash_before_acknowledging_resends_the_same_ids(tmp_path):
    spool = Spool(str(tmp_path / "spool.jsonl"))
    first = spool.append({"kind": "restart"})
    sent_once = spool.pending()
    # the watchdog dies here: Odoo stored the batch, the cursor did not move
    sent_again = Spool(spool.path).pending()
    assert [e["id"] for e in sent_again] == [e["id"] for e in sent_once] == [first["id"]]


def test_drained_spool_is_compacted_and_keeps_working(tmp_path):
    spool = Spool(str(tmp_path / "spool.jsonl"))
    spool.append({"n": 1})
    spool.acknowledge(spool.pending())
    assert os.path.getsize(spool.path) == 0
    later = spool.append({"n": 2})
    assert [e["id"] for e in spool.pending()] == [later["id"]]


def test_torn_and_partial_lines_do_not_hide_the_rest(tmp_path):
    spool = Spool(str(tmp_path / "spool.jsonl"))
    spool.append({"n": 1})
    with open(spool.path, "ab") as handle:
        handle.write(b'{"broken": \n')
    spool.append({"n": 2})
    with open(spool.path, "ab") as handle:
        handle.write(b'{"n": 3')  # still being written
    assert [e["n"] for e in spool.pending()] == [1, 2]


def test_secrets_are_masked_in_the_spool(tmp_path):
    spool = Spool(str(tmp_path / "spool.jsonl"))
    spool.append({"sample": "connect postgresql://odoo:hunter2@db/prod failed"})
    assert "hunter2" not in open(spool.path).read()


def _append_many(path, worker):
    spool = Spool(path)
    for n in range(50):
        spool.append({"worker": worker, "n": n})


def test_concurrent_writers_and_compaction_lose_nothing(tmp_path):
    path = str(tmp_path / "spool.jsonl")
    writers = [multiprocessing.Process(target=_append_many, args=(path, w)) for w in range(3)]
    for writer in writers:
        writer.start()
    seen = []
    spool = Spool(path)
    while any(w.is_alive() for w in writers) or spool.pending():
        batch = spool.pending(limit=7)
        seen.extend((e["worker"], e["n"]) for e in batch)
        spool.acknowledge(batch)
    for writer in writers:
        writer.join()
    seen.extend((e["worker"], e["n"]) for e in spool.pending())
    assert sorted(seen) == sorted((w, n) for w in range(3) for n in range(50))
    assert json.load(open(path + ".sent"))["offset"] >= 0
