import json
import multiprocessing
import os

import pytest

from engine import audit
from engine.audit import AuditLog, default_audit_log


def test_record_fields_and_masking(tmp_path):
    log = AuditLog(str(tmp_path / "sub" / "audit.jsonl"))
    log.record("health", "postgresql://odoo:pw@db/x", "ok", 0.5, detail={"dsn": "password=hunter2"})
    entry = json.loads((tmp_path / "sub" / "audit.jsonl").read_text())
    assert set(entry) >= {"time", "actor", "action", "target", "result", "duration"}
    assert entry["actor"] == "cli:%s" % audit.current_user()
    assert entry["target"] == "postgresql://odoo:***@db/x"
    assert entry["details"]["detail"]["dsn"] == "password=***"
    assert entry["duration"] == 0.5


def test_action_context_records_failures(tmp_path):
    log = AuditLog(str(tmp_path / "a.jsonl"), actor="test")
    with pytest.raises(RuntimeError):
        with log.action("fix-cron", "/x.xml"):
            raise RuntimeError("disk full")
    entry = json.loads((tmp_path / "a.jsonl").read_text())
    assert (entry["result"], entry["details"]["error"]) == ("failed", "disk full")


def _writer(path, n):
    log = AuditLog(path, actor="proc%d" % n)
    for i in range(50):
        log.record("test", "t%d" % i, "ok", 0, payload="x" * 2000)


def test_concurrent_writers_never_interleave(tmp_path):
    path = str(tmp_path / "a.jsonl")
    procs = [multiprocessing.Process(target=_writer, args=(path, n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = open(path).read().splitlines()
    assert len(lines) == 200
    assert all(json.loads(line)["result"] == "ok" for line in lines)


def test_default_location(tmp_path):
    assert default_audit_log({"AUTO_HEAL_HOME": str(tmp_path)}) == str(tmp_path / "audit.jsonl")
    path = default_audit_log({"XDG_STATE_HOME": str(tmp_path)})
    assert path in (
        "/var/log/odoo_auto_heal/audit.jsonl",
        str(tmp_path / "auto_heal" / "audit.jsonl"),
    )
    assert not os.path.exists("/var/log/odoo_auto_heal") or path.startswith("/var/log")


def test_unwritable_log_is_refused_before_any_change(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = AuditLog(str(blocker / "audit.jsonl"))
    with pytest.raises(audit.AuditError, match="not writable"):
        log.check_writable()
