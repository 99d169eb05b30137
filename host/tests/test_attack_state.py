"""State, concurrency, growth and output: the faults of issue 8, sections 5, 7 and 9, run for real.

Each test runs the real ``bin/auto-heal`` (or the engine on real files) and
fails on the code before these defences: two ``detect --state`` at once, a
state file (or its lock) planted as a symlink by another user, FIFOs given
as files, a state file from a newer version, SIGTERM in the middle of a long
scan, a backlog read in one cycle, a spool that only grows, run records that
are never pruned, ``log_file = "-"``, non-UTF-8 paths in ``--json`` and
terminal escapes in log lines.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from host.tests.conftest import run_auto_heal
from tools.testing import run_as

from .watchdog_helpers import BIN, MonitorProcess, base_config, wait_for, write_config

IS_ROOT = os.geteuid() == 0
RECORD = (b"2026-11-29 14:%02d:%02d,%03d 4242 ERROR prod odoo.sql_db: bad query: UPDATE t SET "
          b"a = %d\nERROR: deadlock detected\n")


def detect(*args, timeout=300, env=None):
    return run_auto_heal(["detect", *args], env=env, timeout=timeout, text=False)


def write_records(path, count, start=0):
    with open(path, "ab") as handle:
        for n in range(start, start + count):
            handle.write(RECORD % (n // 60000 % 60, n // 1000 % 60, n % 1000, n))


# -- detect --state: one at a time ---------------------------------------------------------


def test_two_detects_on_one_state_report_each_record_once(tmp_path):
    """Without the lock both read the empty state, both report everything, and the
    second save loses the first's cursor."""
    log, state = tmp_path / "odoo.log", tmp_path / "state.json"
    write_records(log, 60000)
    runs = [subprocess.Popen([sys.executable, BIN, "detect", "--json", "--log", str(log),
                              "--state", str(state), "--settle", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    counts = []
    for (out, err), run in zip(outputs, runs, strict=True):
        assert run.returncode in (0, 1), err
        counts.append(sum(i["count"] for i in json.loads(out)["incidents"]))
    assert sorted(counts) == [0, 60000], counts
    cursor = json.loads(state.read_text())["cursors"][str(log)]
    assert cursor["offset"] == os.path.getsize(log)


@pytest.mark.skipif(not IS_ROOT, reason="needs root and nobody")
def test_a_state_planted_as_a_symlink_in_a_shared_folder_is_refused(tmp_path):
    shared = tempfile.mkdtemp(prefix="auto_heal-shared-", dir="/tmp")
    os.chmod(shared, 0o1777)  # like /tmp: anyone may create, only owners may remove
    victim = tmp_path / "victim"
    victim.write_bytes(b"root's own file\n")
    os.chmod(victim, 0o600)
    log = tmp_path / "odoo.log"
    write_records(log, 3)
    state = os.path.join(shared, "state.json")
    lock = state + ".lock"

    def plant():
        os.symlink(str(victim), state)
        os.symlink(str(victim), lock)
        return "planted"

    try:
        assert run_as("nobody", plant) == "planted"
        result = detect("--log", log, "--state", state)
        assert result.returncode == 2, result.stderr
        assert b"symlink" in result.stderr and result.stderr.count(b"\n") == 1
        assert victim.read_bytes() == b"root's own file\n"
        assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600
        os.unlink(lock)  # the state alone
        result = detect("--log", log, "--state", state)
        assert result.returncode == 2 and b"is a symlink" in result.stderr
        assert victim.read_bytes() == b"root's own file\n"
    finally:
        for path in (state, lock):
            if os.path.lexists(path):
                os.unlink(path)
        os.rmdir(shared)


def test_fifos_as_state_or_patterns_are_refused_without_hanging(tmp_path):
    log = tmp_path / "odoo.log"
    write_records(log, 3)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for args in (["--state", fifo], ["--patterns", fifo]):
        result = detect("--log", log, *args, timeout=60)
        assert result.returncode == 2, result.stderr
        assert b"not a regular file" in result.stderr


def test_a_state_from_a_newer_version_is_refused_not_rewritten(tmp_path):
    log, state = tmp_path / "odoo.log", tmp_path / "state.json"
    write_records(log, 3)
    newer = json.dumps({"version": 99, "cursors": {}, "future": {"keep": "me"}})
    state.write_text(newer)
    result = detect("--log", log, "--state", state)
    assert result.returncode == 2
    assert b"has version 99, written by a newer auto_heal" in result.stderr
    assert state.read_text() == newer


# -- output ----------------------------------------------------------------------------------


def test_json_stays_valid_utf8_and_text_never_drives_the_terminal(tmp_path):
    folder = os.fsencode(tmp_path)
    log = folder + b"/odoo-\xff.log"
    with open(log, "wb") as handle:
        handle.write(b"2026-11-29 14:00:00,000 42 ERROR prod odoo.sql_db: bad query: \x1b]0;pwned"
                     b"\x07\x1b[2J\nERROR: deadlock detected\n")
    result = subprocess.run([sys.executable, BIN, "detect", "--json", "--log", log],
                            capture_output=True, timeout=120)
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout.decode("utf-8"))  # strict: raises on invalid UTF-8
    [incident] = doc["incidents"]
    assert incident["source"]["path"].endswith("odoo-\\xff.log")
    text = subprocess.run([sys.executable, BIN, "detect", "--log", log], capture_output=True,
                          timeout=120)
    assert b"\x1b" not in text.stdout and b"\x07" not in text.stdout
    assert b"\\x1b]0;pwned\\x07" in text.stdout


# -- the monitor -----------------------------------------------------------------------------


def _monitor(tmp_path, fake, **extra):
    fake.start()
    config = base_config(tmp_path, fake, **extra)
    return MonitorProcess(write_config(tmp_path, config), tmp_path / "state")


def _read_position(pid, path):
    """Where process *pid* reads *path* now (its descriptor's offset), or -1."""
    folder = f"/proc/{pid}/fd"
    try:
        for fd in os.listdir(folder):
            try:
                if os.readlink(os.path.join(folder, fd)) == path:
                    with open(f"/proc/{pid}/fdinfo/{fd}") as handle:
                        return int(handle.readline().split()[1])
            except OSError:
                continue
    except OSError:
        pass
    return -1


def test_sigterm_stops_the_monitor_in_the_middle_of_a_long_scan(tmp_path, fake):
    """A backlog that takes a minute to read: SIGTERM ends the monitor at once, with
    its state saved (the cursor where the read records end), not after the scan."""
    write_records(fake.log, 1_500_000)
    monitor = _monitor(tmp_path, fake, scan={"settle": 0.0, "max_mb_per_cycle": 4096})
    try:
        size = os.path.getsize(fake.log)
        wait_for(lambda: 0 < _read_position(monitor.proc.pid, fake.log) < size, 60,
                 step=0.01, what="the monitor in the middle of the backlog")
        os.killpg(monitor.proc.pid, signal.SIGTERM)
        code = monitor.proc.wait(30)  # the old monitor went on reading for minutes
        assert code == 0, monitor.tail()
        log_text = open(tmp_path / "watchdog.log").read()
        assert "stopping in the middle of a scan" in log_text
        assert "watchdog stopped" in log_text
        assert os.path.exists(tmp_path / "state" / "state.json")  # saved on the way out
    finally:
        monitor.stop(signal.SIGKILL)


def test_a_backlog_is_read_over_several_cycles(tmp_path, fake):
    write_records(fake.log, 120_000)  # about 11 MB
    monitor = _monitor(tmp_path, fake, scan={"settle": 0.0, "max_mb_per_cycle": 2})
    try:
        def offset():
            cursor = (monitor.state().get("cursors") or {}).get(fake.log)
            return cursor["offset"] if cursor else None
        first = wait_for(offset, 60, what="a first cursor")
        assert first <= 2 * 1024 * 1024 + 4096, first  # one cycle read at most its budget
        wait_for(lambda: offset() == os.path.getsize(fake.log), 120, what="the whole backlog")
        wd = monitor.watchdog()
        assert wd["counters"]["findings"]["db_deadlock"] == 120_000
    finally:
        monitor.stop()


def test_log_file_dash_is_stderr(tmp_path, fake):
    fake.start()
    config = base_config(tmp_path, fake)
    config["watchdog"]["log_file"] = "-"
    path = write_config(tmp_path, config)
    result = subprocess.run([sys.executable, BIN, "monitor", "--config", path, "--max-cycles",
                             "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "watchdog stopped after 1 cycle" in result.stderr
    assert not os.path.exists(os.path.join(tmp_path, "-"))


def test_a_full_spool_drops_its_oldest_entries_counts_and_reports_them(tmp_path, fake):
    """The spool has a cap: 3 MB waiting for an Odoo that never answers, cap 1 MB."""
    state = tmp_path / "state"
    state.mkdir()
    with open(state / "spool.jsonl", "w") as handle:
        for n in range(6000):
            handle.write(json.dumps({"id": f"old{n:05d}", "kind": "incident",
                                     "time": "2026-11-01T00:00:00+00:00",
                                     "pad": "x" * 450}) + "\n")
    write_records(fake.log, 3)
    monitor = _monitor(tmp_path, fake, handover={"spool_max_mb": 1},
                       scan={"settle": 0.0})
    try:
        monitor.wait(lambda wd: wd.get("counters", {}).get("spooled", {}).get("dropped"), 60,
                     "the spool's cap")
    finally:
        monitor.stop()
    assert os.path.getsize(state / "spool.jsonl") <= 1024 * 1024
    entries = [json.loads(line) for line in open(state / "spool.jsonl")]
    notice = entries[0]
    assert notice["alert"] == "spool_overflow" and notice["dropped"] > 3000
    assert notice["incident"]["pattern"] == "watchdog_spool_overflow"
    assert entries[-1]["kind"] == "incident"  # the newest entries are kept
    status = subprocess.run([sys.executable, BIN, "status", "--config",
                             str(tmp_path / "auto-heal.toml")], capture_output=True, text=True,
                            timeout=60)
    assert f"{notice['dropped']} dropped by its cap" in status.stdout, status.stdout


def test_run_records_are_pruned_and_budgets_read_one_index(tmp_path):
    from engine.actions.runner import FixAttempt
    from engine.actions.store import RunStore

    folder, backups = tmp_path / "runs", tmp_path / "backups"
    store = RunStore(str(folder), keep_days=30, keep_max=50, backups_dir=str(backups))
    backups.mkdir()
    old = time.time() - 40 * 86400
    for n in range(60):
        when = "2026-10-01T00:00:00+00:00" if n < 20 else "2026-12-01T00:00:00+00:00"
        store.save(FixAttempt(f"{n:08x}", "fix_permissions", "/srv/x", "cli", state="done",
                             started=when))
        if n < 20:
            os.utime(folder / f"{n:08x}.json", (old, old))
    for name in ("copy.1", "copy.1.json"):
        (backups / name).write_text("x")
        os.utime(backups / name, (old, old))
    index = json.loads((folder / ".budget.json").read_text())
    index["pruned_at"] = 0
    (folder / ".budget.json").write_text(json.dumps(index))
    store.save(FixAttempt("ffffffff", "fix_permissions", "/srv/x", "cli", state="done",
                         started="2026-12-02T00:00:00+00:00"))
    kept = sorted(p.name for p in folder.glob("[0-9a-f]*.json"))
    assert len(kept) == 41 and "00000000.json" not in kept
    assert not list(backups.iterdir())
    assert len(store.history("fix_permissions", "/srv/x")) == 41


def test_the_rollback_of_a_file_never_changed_is_no_failure(tmp_path):
    """apply failed before it wrote: the rollback finds the original bytes and says so."""
    from engine.actions.cron_fields import restore_file
    from engine.fsutil import backup_file

    target = tmp_path / "cron.xml"
    target.write_bytes(b"<odoo/>\n")
    record = backup_file(str(target), str(tmp_path / "bk"))
    assert "nothing to roll back" in restore_file(record, None, str(tmp_path / "bk"))
    assert target.read_bytes() == b"<odoo/>\n"


def test_dev_zero_as_the_patterns_file_is_refused(tmp_path):
    """It grew run-approved to 2.3 GB: every file read is type- and size-checked."""
    log = tmp_path / "odoo.log"
    write_records(log, 3)
    result = detect("--log", log, "--patterns", "/dev/zero", timeout=60)
    assert result.returncode == 2 and b"not a regular file" in result.stderr
