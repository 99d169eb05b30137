"""The watchdog against a real Odoo 18 with auto_heal installed, over real JSON-RPC.

1. A fresh database gets ``auto_heal``; ``odoo shell`` makes an Auto-Heal
   Manager with an API key.
2. Odoo runs as a service started by ``spawn.py`` (the monitor's ``restart via
   command`` argv; Odoo does not daemonize) with ``--pidfile``.
3. ``bin/auto-heal monitor`` watches it: kill -9 Odoo, then SIGSTOP it; each
   time Odoo is restarted and answers again (times printed and kept in
   .tmp/fault-times.json), and what the watchdog did is handed over to Odoo:
   the database holds an ``odoo_down`` and an ``odoo_hung`` incident, each with
   a done ``restart_service`` fix run claimed by the watchdog's host.
4. The watchdog is SIGKILLed and the spool is given back entries Odoo already
   stored (what a watchdog killed between Odoo's commit and its acknowledgement
   leaves); started again, it sends them again and Odoo stores nothing twice.

Needs ``ODOO_BIN`` and ``AUTO_HEAL_PGHOST`` (+ PORT, USER, PASSWORD); ``make
test`` sets them. PostgreSQL here is the test runner's cluster: the watchdog
probes it but is given no way to restart it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

from host.tests.real_odoo import (
    ODOO_BIN,
    ODOO_TIMEOUT,
    addons_path,
    needs_real_odoo,
    odoo_args,
    odoo_env,
    pg,
    query,
    tail,
)
from host.tests.watchdog_helpers import (
    MonitorProcess,
    alive,
    free_port,
    record_time,
    wait_for,
    write_config,
)

HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = needs_real_odoo

SETUP = textwrap.dedent("""
    import json
    user = env["res.users"].create({
        "name": "Auto-Heal Watchdog", "login": "ah_monitor",
        "groups_id": [(6, 0, [env.ref("base.group_user").id,
                              env.ref("auto_heal.group_auto_heal_manager").id])],
    })
    key = env["res.users.apikeys"].with_user(user).sudo()._generate(None, "watchdog", None)
    env.cr.commit()
    print("AH_SETUP " + json.dumps({"key": key}))
""")


def _pid(pidfile):
    try:
        return int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return None


def _healthy(url):
    from host.tests.watchdog_helpers import http_status

    return http_status(url + "/web/health", timeout=2) == 200


def test_kill9_sigstop_and_handover_on_a_real_odoo(tmp_path, dbname):
    env = odoo_env()
    addons = addons_path(tmp_path)
    data_dir = tmp_path / "odoo-data"
    install_log = tmp_path / "install.log"
    install = subprocess.run(
        [ODOO_BIN, *odoo_args(addons, dbname, data_dir, install_log, free_port()),
         "-i", "auto_heal", "--stop-after-init"],
        capture_output=True, text=True, timeout=ODOO_TIMEOUT, stdin=subprocess.DEVNULL, env=env)
    assert install.returncode == 0, (tail(install_log), install.stderr[-2000:])
    shell = subprocess.run(
        [ODOO_BIN, "shell", *odoo_args(addons, dbname, data_dir, tmp_path / "shell.log",
                                        free_port()), "--no-http"],
        input=SETUP, capture_output=True, text=True, timeout=ODOO_TIMEOUT, env=env)
    lines = [line for line in shell.stdout.splitlines() if line.startswith("AH_SETUP ")]
    assert lines, (shell.stdout[-3000:], shell.stderr[-3000:])
    key = json.loads(lines[-1][len("AH_SETUP "):])["key"]
    key_file = tmp_path / "api-key"
    key_file.write_text(key + "\n")
    os.chmod(key_file, 0o600)  # an API key file must be 0600 and root's
    key_file.chmod(0o600)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pidfile = tmp_path / "odoo.pid"
    logfile = tmp_path / "odoo.log"
    start = [sys.executable, os.path.join(HERE, "spawn.py"), "--output",
             str(tmp_path / "odoo.stdout"), "--", ODOO_BIN,
             *odoo_args(addons, dbname, data_dir, logfile, port),
             "--pidfile", str(pidfile)]
    params = pg()
    state_dir = tmp_path / "state"
    config = {
        "watchdog": {"state_dir": str(state_dir), "log_file": str(tmp_path / "watchdog.log"),
                     "interval": 1.0, "log_level": "debug"},
        "odoo": {"url": url, "pidfile": str(pidfile), "logs": [str(logfile)],
                 "restart": {"via": "command", "command": start, "timeout": 180.0,
                             "stop_timeout": 5.0}},
        "postgresql": {"dsn": f"host={params['host']} port={params['port']} user={params['user']} "
                              f"dbname={dbname}"},
        "probes": {"startup": {"period": 1.0, "timeout": 2.0, "failure_threshold": 300},
                   "liveness": {"period": 1.0, "timeout": 2.0, "failure_threshold": 3},
                   "readiness": {"period": 1.0, "timeout": 5.0, "failure_threshold": 3},
                   "postgresql": {"period": 2.0, "timeout": 5.0},
                   "process": {"period": 1.0}},
        "restart": {"first_delay": 1.0, "max_restarts": 5},
        "scan": {"settle": 1.0, "min_severity": "high"},
        "handover": {"db": dbname, "login": "ah_monitor", "api_key_file": str(key_file),
                     "retry": 2.0, "timeout": 60.0},
    }
    config_path = write_config(tmp_path, config)
    monitor = None
    try:
        started = time.monotonic()
        subprocess.run(start, check=True, timeout=30, env=env)
        wait_for(lambda: _healthy(url), 300, step=0.5, what="Odoo's first start")
        first_start = time.monotonic() - started
        monitor = MonitorProcess(config_path, state_dir, env=env)
        monitor.wait(lambda wd: wd["status"]["healthy"], 120, "a healthy first cycle")
        first = _pid(pidfile)

        # kill -9: restarted and healthy within one period plus its start time
        injected = time.monotonic()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: _pid(pidfile) not in (None, first) and _healthy(url), 300, step=0.2,
                 what="Odoo back after kill -9")
        elapsed = time.monotonic() - injected
        record_time("odoo18_kill9", elapsed, odoo_start_seconds=round(first_start, 2),
                    period=1.0, note="real Odoo 18 (workers=0), restart via spawn.py")
        second = _pid(pidfile)
        assert not alive(first) and alive(second)

        # SIGSTOP: hung; detected after 3 liveness failures, the stopped process is killed
        monitor.wait(lambda wd: wd["status"]["healthy"] and wd["odoo"]["pid"] == second, 120)
        injected = time.monotonic()
        os.kill(second, signal.SIGSTOP)
        wait_for(lambda: _pid(pidfile) not in (None, first, second) and _healthy(url), 300,
                 step=0.2, what="Odoo back after SIGSTOP")
        elapsed = time.monotonic() - injected
        record_time("odoo18_sigstop", elapsed, odoo_start_seconds=round(first_start, 2),
                    period=1.0, liveness_timeout=2.0, failure_threshold=3,
                    note="real Odoo 18; detection ~ 3 x (period + timeout), SIGTERM+SIGCONT, "
                         "SIGKILL after 5 s, start")
        assert not alive(second)
        third = _pid(pidfile)

        # the hand-over reached Odoo: incidents with the watchdog's restarts
        def handed_over():
            rows = query(dbname, "SELECT i.pattern_type, r.action, r.state, r.claimed_by "
                                  "FROM auto_heal_fix_run r JOIN auto_heal_incident i "
                                  "ON i.id = r.incident_id WHERE r.action = 'restart_service' "
                                  "ORDER BY r.id")
            return rows if len(rows) == 2 else None

        rows = wait_for(handed_over, 120, step=1, what="the hand-over")
        assert rows == [("odoo_down", "restart_service", "done", socket.gethostname()),
                        ("odoo_hung", "restart_service", "done", socket.gethostname())]
        stored = query(dbname, "SELECT entry_id, payload FROM auto_heal_handover")
        assert len(stored) >= 2 and key not in json.dumps(stored)

        # killed between Odoo's commit and the acknowledgement: the batch comes again
        wait_for(lambda: os.path.getsize(state_dir / "spool.jsonl") == 0, 60,
                 what="the spool drained")
        monitor.stop(signal.SIGKILL)
        wd = json.loads((state_dir / "state.json").read_text())["watchdog"]
        assert wd["counters"]["restarts"] == {"odoo": 2}
        assert len(wd["restart"]["odoo"]["restarts"]) == 2
        with open(state_dir / "spool.jsonl", "a") as handle:
            for _, payload in stored:
                handle.write(payload + "\n")
        incidents_before = query(dbname, "SELECT fingerprint, count FROM auto_heal_incident "
                                          "ORDER BY fingerprint")
        runs_before = query(dbname, "SELECT count(*) FROM auto_heal_fix_run")
        monitor = MonitorProcess(config_path, state_dir, env=env)
        wait_for(lambda: os.path.getsize(state_dir / "spool.jsonl") == 0, 120,
                 what="the resent batch acknowledged")
        wd = monitor.wait(lambda wd: wd["counters"]["handover"].get("ignored", 0) >= len(stored),
                          30)
        assert query(dbname, "SELECT count(*) FROM auto_heal_handover")[0][0] == len(stored)
        assert query(dbname, "SELECT fingerprint, count FROM auto_heal_incident ORDER BY "
                              "fingerprint") == incidents_before
        assert query(dbname, "SELECT count(*) FROM auto_heal_fix_run") == runs_before
        # the budget went on from the killed watchdog's state, Odoo was not touched
        assert len(wd["restart"]["odoo"]["restarts"]) == 2 and _pid(pidfile) == third
    finally:
        if monitor is not None:
            monitor.stop()
        for pid in filter(None, [_pid(pidfile)]):
            for sig in (signal.SIGCONT, signal.SIGTERM):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            try:
                wait_for(lambda pid=pid: not alive(pid), 60, what="Odoo to stop")
            except AssertionError:
                os.kill(pid, signal.SIGKILL)
