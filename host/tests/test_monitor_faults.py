"""Fault injection: ``bin/auto-heal monitor`` against real processes.

Odoo is stood in for by fake_odoo.py (a real HTTP server process, started as a
service with ``--daemon``: the monitor's ``restart via command`` argv);
PostgreSQL is a private cluster (tools.pgcluster) restarted with pg_ctl. The
monitor runs as a real subprocess with a 0.5 s interval. Each test asserts what
happened (processes, files, spool, counters) and records the time from the
injection to healthy in .tmp/fault-times.json (printed with ``-s``)::

    make test PYTEST_ARGS="-s -k monitor_faults"
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from host.tests.watchdog_helpers import (
    BIN,
    FakeOdoo,
    alive,
    base_config,
    record_time,
    spool_entries,
    wait_for,
    write_config,
)
from tools import fake_odoo
from tools.testing import start_private_cluster


def healthy_in_state(wd):
    return (wd.get("status") or {}).get("healthy")


def test_kill9_odoo_is_restarted_within_one_period_plus_its_start(tmp_path, fake, monitors):
    first = fake.start()
    config = base_config(tmp_path, fake)
    monitor = monitors(write_config(tmp_path, config), tmp_path / "state")
    monitor.wait(healthy_in_state, 20, "a healthy first cycle")

    injected = time.monotonic()
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: fake.pid() != first and fake.healthy(), 30, what="Odoo back")
    elapsed = time.monotonic() - injected
    record_time("kill9", elapsed, period=0.5, restart_timeout=10)

    second = fake.pid()
    assert not alive(first) and alive(second)
    assert [s["pid"] for s in fake.starts()] == [first, second]
    restarts = wait_for(lambda: [e for e in spool_entries(tmp_path / "state")
                                 if e["kind"] == "restart"], 10, what="the restart spooled")
    wd = monitor.wait(lambda wd: wd["status"]["healthy"] and wd["odoo"]["pid"] == second, 10)
    assert wd["counters"]["restarts"] == {"odoo": 1}
    assert len(wd["restart"]["odoo"]["restarts"]) == 1 and not wd["restart"]["odoo"]["escalated"]
    [restart] = restarts
    assert restart["service"] == "odoo" and restart["record"]["state"] == "done"
    assert restart["incident"]["pattern"] == "odoo_down"
    assert restart["record"]["incident"] == restart["incident"]["fingerprint"]
    log = open(tmp_path / "watchdog.log").read()
    assert "restarting odoo via command" in log and "is gone" in log
    audit = [json.loads(line) for line in open(tmp_path / "state" / "audit.jsonl")]
    assert [a["action"] for a in audit if a["action"].startswith("restart_service")] == [
        "restart_service.plan", "restart_service.apply", "restart_service.verify"]


def test_sigstop_hung_odoo_is_detected_after_n_failures_and_restarted(tmp_path, fake,
                                                                         monitors):
    first = fake.start()
    config = base_config(tmp_path, fake)
    monitor = monitors(write_config(tmp_path, config), tmp_path / "state")
    monitor.wait(healthy_in_state, 20, "a healthy first cycle")

    injected = time.monotonic()
    os.kill(first, signal.SIGSTOP)  # alive, holds its port, answers nothing: hung
    wait_for(lambda: fake.pid() != first and fake.healthy(), 30, what="Odoo back")
    elapsed = time.monotonic() - injected
    record_time("sigstop", elapsed, period=0.5, liveness_timeout=0.5, failure_threshold=3)

    second = fake.pid()
    assert not alive(first), "the stopped process was killed"
    assert alive(second) and [s["pid"] for s in fake.starts()] == [first, second]
    restarts = wait_for(lambda: [e for e in spool_entries(tmp_path / "state")
                                 if e["kind"] == "restart"], 10, what="the restart spooled")
    assert [r["incident"]["pattern"] for r in restarts] == ["odoo_hung"]
    assert "hung" in restarts[0]["reason"] and restarts[0]["record"]["state"] == "done"
    audit = [json.loads(line) for line in open(tmp_path / "state" / "audit.jsonl")]
    [stop] = [a for a in audit if a["action"] == "odoo.stop"]
    assert stop["target"] == f"pid {first}" and stop["result"] in ("stopped", "killed")
    log = open(tmp_path / "watchdog.log").read()
    # hung is judged only once liveness turned failing (3 failures in a row), and the
    # restart comes after that judgement, never before it
    turned_failing = log.index("probe liveness: ok -> failing")
    assert turned_failing < log.index("restarting odoo via command")


def test_crash_loop_restarts_n_times_then_escalates_and_reset_clears_it(tmp_path, fake,
                                                                          monitors):
    first = fake.start()
    hook = tmp_path / "alerts.jsonl"  # the notification hook: one JSON object per alert
    config = base_config(tmp_path, fake, restart={"max_restarts": 3, "first_delay": 0.5,
                                                  "factor": 2.0, "max_delay": 2.0},
                         odoo={"restart": {"timeout": 2.0}},
                         alert={"command": [sys.executable, "-c",
                                            "import sys; open(sys.argv[1], 'a').write("
                                            "sys.stdin.read() + '\\n')", str(hook)]})
    config_path = write_config(tmp_path, config)
    state_dir = tmp_path / "state"
    monitor = monitors(config_path, state_dir)
    monitor.wait(healthy_in_state, 20, "a healthy first cycle")

    fake.set_mode("crash")  # from now on every start dies at once
    injected = time.monotonic()
    os.kill(first, signal.SIGKILL)
    wd = monitor.wait(lambda wd: wd["restart"]["odoo"]["escalated"], 60, "the escalation")
    escalated_after = time.monotonic() - injected
    time.sleep(3)  # six more cycles: no more restarts
    starts = fake.starts()
    assert [s["mode"] for s in starts] == ["healthy", "crash", "crash", "crash"]
    wd = monitor.watchdog()
    assert wd["counters"]["restarts"] == {"odoo": 3}
    assert wd["counters"]["escalations"] == {"odoo": 1}
    assert len(wd["restart"]["odoo"]["restarts"]) == 3
    assert "budget used up: 3 runs" in wd["restart"]["odoo"]["escalated_reason"]
    entries = spool_entries(state_dir)
    assert [e["record"]["state"] for e in entries if e["kind"] == "restart"] == ["failed"] * 3
    [escalation] = [e for e in entries if e["kind"] == "escalation"]
    assert escalation["incident"]["pattern"] == "watchdog_escalated"
    assert escalation["incident"]["severity"] == "critical"
    [alert] = [json.loads(line) for line in open(hook)]
    assert (alert["event"], alert["service"], alert["severity"]) == ("escalated", "odoo",
                                                                     "critical")
    status = subprocess.run([sys.executable, BIN, "status", "--config", config_path],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 1 and status.stdout.startswith("ESCALATED"), status.stdout

    # the escalation survives a watchdog killed and started again
    cycles = wd["counters"]["cycles"]
    monitor.stop(signal.SIGKILL)
    monitor = monitors(config_path, state_dir)
    monitor.wait(lambda wd: wd["counters"]["cycles"] > cycles + 4, 20, "more cycles")
    assert len(fake.starts()) == 4 and monitor.watchdog()["restart"]["odoo"]["escalated"]

    fake.set_mode("healthy")
    reset_at = time.monotonic()
    reset = subprocess.run([sys.executable, BIN, "reset", "--config", config_path],
                           capture_output=True, text=True, timeout=60)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert "the running watchdog took it" in reset.stdout
    wait_for(fake.healthy, 30, what="Odoo back after the reset")
    after_reset = time.monotonic() - reset_at
    record_time("crash_loop", after_reset, escalated_after_seconds=round(escalated_after, 2),
                restarts_before_escalation=3, note="healthy is measured from `reset`")
    wd = monitor.wait(lambda wd: wd["status"]["healthy"], 20, "healthy after the reset")
    assert not wd["restart"]["odoo"]["escalated"]
    assert [s["mode"] for s in fake.starts()] == ["healthy", "crash", "crash", "crash",
                                                   "healthy"]
    audit = [json.loads(line) for line in open(state_dir / "audit.jsonl")]
    assert [a["target"] for a in audit if a["action"] == "watchdog.reset"] == ["odoo",
                                                                             "postgresql"]


def test_corrupted_config_is_restored_and_odoo_comes_back(tmp_path, monitors):
    conf = tmp_path / "odoo.conf"
    good = "[options]\ndb_password = s3cret-pw\nworkers = 0\n"
    conf.write_text(good)
    fake = FakeOdoo(tmp_path / "odoo", config=str(conf))
    try:
        first = fake.start()
        config = base_config(tmp_path, fake, odoo={"config": str(conf),
                                                   "restart": {"timeout": 3.0}},
                             fixes={"auto": ["restore_config"], "first_delay": 0.5})
        state_dir = tmp_path / "state"
        monitor = monitors(write_config(tmp_path, config), state_dir)
        monitor.wait(lambda wd: healthy_in_state(wd) and wd["drift"].get(str(conf), {})
                     .get("good"), 20, "the baseline")

        # 1. broken while Odoo runs (it read its config at start): restored, not restarted
        conf.write_text("this is [not an odoo config\n")
        wait_for(lambda: conf.read_text() == good, 10, what="the restore")
        assert fake.pid() == first and len(fake.starts()) == 1

        # 2. broken, and Odoo dies: restored before the restart, Odoo comes back
        time.sleep(1)
        injected = time.monotonic()
        conf.write_text("workers = 4\n[options\n")
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: fake.pid() != first and fake.healthy(), 30, what="Odoo back")
        elapsed = time.monotonic() - injected
        record_time("config_corrupted", elapsed, note="odoo.conf made unparseable + kill -9")
        assert conf.read_text() == good
        second = fake.pid()
        assert [s["pid"] for s in fake.starts()] == [first, second]  # never started broken

        # 3. a config that parses but Odoo refuses (it exits at once): the restart fails,
        #    the last known good version goes back, the next restart works
        monitor.wait(lambda wd: wd["status"]["healthy"] and wd["odoo"]["pid"] == second, 20)
        time.sleep(2)  # Odoo has run a while with the good config
        injected = time.monotonic()
        conf.write_text(good + "fake_refuse = 1\n")
        os.kill(second, signal.SIGKILL)
        wait_for(lambda: fake.pid() not in (first, second) and fake.healthy(), 60,
                 what="Odoo back with the last known good config")
        elapsed = time.monotonic() - injected
        record_time("config_refused", elapsed, restart_timeout=3.0,
                    note="a parsing odoo.conf Odoo refuses + kill -9: one failed restart, "
                         "restore, restart")
        assert conf.read_text() == good
        assert len(fake.starts()) == 4  # first, second, the refused start, the good one

        entries = spool_entries(state_dir)
        drifts = [e for e in entries if e["kind"] == "drift"]
        assert [bool(d["drift"]["parse_error"]) for d in drifts][:2] == [True, True]
        restores = [e["record"] for e in entries if e["kind"] == "fix_run"
                    and e["record"]["action"] == "restore_config"]
        assert [r["state"] for r in restores] == ["done", "done", "done"]
        assert any(e["incident"]["pattern"] == "config_refused" for e in entries
                   if e["kind"] == "fix_run")
        assert "s3cret-pw" not in open(state_dir / "spool.jsonl").read()
    finally:
        fake.cleanup()


@pytest.fixture(scope="module")
def pg():
    cluster = start_private_cluster()
    yield cluster
    cluster.stop()


def test_postgres_stopped_is_restarted_and_odoo_is_left_alone(tmp_path, pg, monitors):
    fake = FakeOdoo(tmp_path / "odoo", dsn=pg.dsn)
    try:
        first = fake.start()
        assert fake.ready()
        config = base_config(tmp_path, fake, postgresql={
            "dsn": pg.dsn, "restart": {"via": "pg_ctl", "datadir": str(pg.datadir),
                                       "pg_ctl": os.path.join(pg.bindir, "pg_ctl"),
                                       "pg_log": str(pg.logfile), "timeout": 60.0}})
        state_dir = tmp_path / "state"
        monitor = monitors(write_config(tmp_path, config), state_dir)
        monitor.wait(lambda wd: healthy_in_state(wd) and wd["probes"]["postgresql"]["status"]
                     == "ok", 20, "a healthy first cycle")

        injected = time.monotonic()
        assert pg.pg_ctl("stop", "-m", "immediate", "-w").returncode == 0
        wait_for(fake.ready, 60, what="Odoo reaching PostgreSQL again")
        elapsed = time.monotonic() - injected
        record_time("postgres_stopped", elapsed, note="pg_ctl stop -m immediate; healthy = "
                    "/web/health?db_server_status=1 answers 200")
        restarts = wait_for(lambda: [e for e in spool_entries(state_dir)
                                     if e["kind"] == "restart"], 20, what="the restart spooled")
        assert [(r["service"], r["record"]["state"]) for r in restarts] == [("postgresql",
                                                                             "done")]
        assert restarts[0]["incident"]["pattern"] == "postgresql_down"
        assert pg.password not in json.dumps(restarts)
        wd = monitor.wait(lambda wd: wd["status"]["healthy"], 20)
        assert wd["counters"]["restarts"] == {"postgresql": 1}
        assert fake.pid() == first and len(fake.starts()) == 1  # Odoo was left alone
        assert pg.is_running()
        log = open(tmp_path / "watchdog.log").read()
        assert "decision: restart_postgresql" in log and "restarting odoo" not in log
    finally:
        fake.cleanup()


DEADLOCK = (
    '{stamp} 4242 ERROR prod odoo.sql_db: bad query: b"UPDATE res_partner SET comment = '
    "'ah {n}' WHERE id = {n}\"\n")
DEADLOCK_TAIL = (
    "ERROR: deadlock detected\n"
    "DETAIL:  Process 12335 waits for ShareLock on transaction 1265; blocked by process 12384.\n"
    "HINT:  See server log for query details.\n")


def _stamp():
    now = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + ",%03d" % (now % 1 * 1000)


def _write_deadlocks(log, first, count, pause=0.05):
    for n in range(first, first + count):
        with open(log, "a") as handle:  # the header, then the rest a moment later
            handle.write(DEADLOCK.format(stamp=_stamp(), n=n))
            handle.flush()
            time.sleep(pause)
            handle.write(DEADLOCK_TAIL)


def test_log_rotated_during_scans_loses_and_doubles_nothing(tmp_path, fake, monitors):
    fake.start()
    config = base_config(tmp_path, fake, scan={"settle": 0.3})
    state_dir = tmp_path / "state"
    monitor = monitors(write_config(tmp_path, config), state_dir)
    monitor.wait(healthy_in_state, 20, "a healthy first cycle")

    log = fake.log
    written = 0
    for _rotation in range(4):
        _write_deadlocks(log, written, 12)
        written += 12
        # logrotate's "create" style, while records are still being written
        for n in (3, 2, 1):
            if os.path.exists(f"{log}.{n}"):
                os.replace(f"{log}.{n}", f"{log}.{n + 1}")
        with open(log, "a") as handle:
            handle.write(DEADLOCK.format(stamp=_stamp(), n=written))  # half a record...
        os.replace(log, f"{log}.1")
        with open(f"{log}.1", "a") as handle:
            handle.write(DEADLOCK_TAIL)  # ...finished in the rotated file
        written += 1
        open(log, "a").close()
    _write_deadlocks(log, written, 5)
    written += 5
    last_write = time.monotonic()
    wd = monitor.wait(lambda wd: wd["counters"]["findings"].get("db_deadlock", 0) >= written,
                      30, f"{written} findings")
    record_time("log_rotation_scan_lag", time.monotonic() - last_write,
                note="from the last record written to counted (settle 0.3 s, interval 0.5 s)")
    time.sleep(2)  # four more cycles: nothing is read twice
    wd = monitor.watchdog()
    assert wd["counters"]["findings"]["db_deadlock"] == written == 57
    spooled = [e["incident"] for e in spool_entries(state_dir) if e["kind"] == "incident"
               and e["incident"]["pattern"] == "db_deadlock"]
    assert sum(i["count"] for i in spooled) == written
    assert len({i["fingerprint"] for i in spooled}) == 1


def test_watchdog_sigkill_keeps_state_and_hands_over_nothing_twice(tmp_path, fake, monitors):
    rpc_state = tmp_path / "rpc.json"
    from engine.scanner import DEFAULT_PATTERNS

    deadlock = [p for p in json.load(open(DEFAULT_PATTERNS))["patterns"]
                if p["type"] == "db_deadlock"]
    edited = [dict(deadlock[0], severity="critical")]  # an admin's edit in Odoo
    rpc_state.write_text(json.dumps({"db": "prod", "login": "watchdog", "key": "k" * 40,
                                     "uid": 7, "runs": [], "handover_delay": 4,
                                     "patterns": edited}))
    rpc = subprocess.Popen([sys.executable, fake_odoo.SCRIPT, "--rpc", str(rpc_state)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           start_new_session=True)  # a killed client: BrokenPipe noise
    try:
        port = int(rpc.stdout.readline())
        key_file = tmp_path / "api-key"
        key_file.write_text("k" * 40 + "\n")
        os.chmod(key_file, 0o600)  # an API key file must be 0600 and root's
        first = fake.start()
        config = base_config(tmp_path, fake, handover={
            "url": f"http://127.0.0.1:{port}", "db": "prod", "login": "watchdog",
            "api_key_file": str(key_file), "retry": 0.5, "timeout": 30.0})
        config_path = write_config(tmp_path, config)
        state_dir = tmp_path / "state"
        monitor = monitors(config_path, state_dir)
        monitor.wait(healthy_in_state, 20, "a healthy first cycle")

        # something to hand over: a restart and five findings
        _write_deadlocks(fake.log, 0, 5)
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: [e for e in json.loads(rpc_state.read_text()).get("stored", [])
                          if e["kind"] == "restart"], 30, what="Odoo storing the restart")
        # Odoo stored the batch and answers 4 s late: the watchdog dies before it acknowledges
        monitor.stop(signal.SIGKILL)
        state = json.loads((state_dir / "state.json").read_text())
        wd = state["watchdog"]
        assert len(wd["restart"]["odoo"]["restarts"]) == 1
        assert wd["counters"]["restarts"] == {"odoo": 1}
        findings = wd["counters"]["findings"].get("db_deadlock", 0)
        cursor = state["cursors"][os.path.abspath(fake.log)]
        assert cursor["offset"] > 0
        stored_once = json.loads(rpc_state.read_text())["stored"]
        # not acknowledged: the batch with the restart is still pending in the spool
        pending = {e["id"] for e in spool_entries(state_dir)}
        assert {e["id"] for e in stored_once if e["kind"] == "restart"} <= pending

        # a second watchdog on the same state while the first is alive is refused
        cycles = wd["counters"]["cycles"]
        monitor = monitors(config_path, state_dir)
        monitor.wait(lambda wd: wd["counters"]["cycles"] > cycles + 1, 20)
        other = subprocess.run([sys.executable, BIN, "monitor", "--config", config_path,
                                "--max-cycles", "1"], capture_output=True, text=True,
                               timeout=60)
        assert other.returncode == 2
        assert "another watchdog (pid %d) already acts on this target" % monitor.proc.pid \
            in other.stderr

        # the restarted watchdog resends the unacknowledged batch; Odoo keeps each id once
        rpc_data = json.loads(rpc_state.read_text())
        rpc_data["handover_delay"] = 0
        rpc_state.write_text(json.dumps(rpc_data))
        restarted_at = time.monotonic()
        wait_for(lambda: not [e for e in spool_entries(state_dir)
                              if e["id"] not in json.loads(rpc_state.read_text())["received"]]
                 and os.path.getsize(state_dir / "spool.jsonl") == 0, 30,
                 what="the spool drained")
        record_time("watchdog_sigkill", time.monotonic() - restarted_at,
                    note="from the second watchdog's start to the unacknowledged batch "
                         "resent and acknowledged (Odoo kept each id once)")
        rpc_data = json.loads(rpc_state.read_text())
        ids = [e["id"] for e in rpc_data["stored"]]
        assert len(ids) == len(set(ids))  # nothing stored twice
        assert {e["id"] for e in stored_once} <= set(ids)
        assert max(rpc_data["received"].values()) == 2  # the unacknowledged batch came again
        kinds = sorted(e["kind"] for e in rpc_data["stored"])
        assert kinds.count("restart") == 1
        assert sum(e["incident"]["count"] for e in rpc_data["stored"]
                   if e["kind"] == "incident") == 5

        # budgets, cursors and counters went on from the killed watchdog's state
        _write_deadlocks(fake.log, 5, 3)
        wd = monitor.wait(lambda wd: wd["counters"]["findings"].get("db_deadlock", 0) == 8,
                          20, "the three new findings")
        assert findings in (0, 5)
        assert len(wd["restart"]["odoo"]["restarts"]) == 1
        second = fake.pid()
        os.kill(second, signal.SIGKILL)
        wait_for(lambda: fake.pid() != second and fake.healthy(), 30, what="Odoo back")
        wd = monitor.wait(lambda wd: len(wd["restart"]["odoo"]["restarts"]) == 2, 20)
        assert "attempt 2 in the window" in open(tmp_path / "watchdog.log").read()
        time.sleep(1.5)
        assert monitor.watchdog()["counters"]["findings"]["db_deadlock"] == 8
        # the patterns pulled from Odoo (with the admin's edit) are what the scans use now
        exported = json.loads((state_dir / "patterns.json").read_text())
        assert exported["patterns"] == edited
        assert f"patterns: 1 from {state_dir / 'patterns.json'}" in open(
            tmp_path / "watchdog.log").read()
        def deadlocks():
            return [e["incident"] for e in json.loads(rpc_state.read_text())["stored"]
                    if e["kind"] == "incident" and e["incident"]["pattern"] == "db_deadlock"]

        wait_for(lambda: sum(i["count"] for i in deadlocks()) == 8, 20,
                 what="all eight findings handed over, once")
        assert "critical" in {i["severity"] for i in deadlocks()}
    finally:
        os.killpg(rpc.pid, signal.SIGKILL)
        rpc.wait(10)
