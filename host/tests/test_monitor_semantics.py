"""What the monitor must not do, on real processes: kill a slow starter, restart on
readiness alone; and its service plumbing: the config, sd_notify, reset, status."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from host import config as cfg
from host.sdnotify import Notifier
from host.tests.watchdog_helpers import (
    BIN,
    FakeOdoo,
    base_config,
    spool_entries,
    wait_for,
    write_config,
)
from tools.samples import CRON_XML


def test_a_slow_start_whose_log_grows_is_not_killed(tmp_path, fake, monitors):
    """Startup threshold 4 x 0.5 s, but Odoo logs "loading modules" for 5 s: not killed."""
    fake.set_mode("slow:5")
    subprocess.run(fake.argv(), check=True, timeout=30)  # booting with the watchdog
    config = base_config(tmp_path, fake, probes={"startup": {"failure_threshold": 4}})
    monitor = monitors(write_config(tmp_path, config), tmp_path / "state")
    wd = monitor.wait(lambda wd: wd["status"]["healthy"], 30, "the slow start to finish")
    assert len(fake.starts()) == 1 and wd["counters"]["restarts"] == {}
    log = open(tmp_path / "watchdog.log").read()
    assert "probe startup: unknown -> failing" in log
    assert "not killed for that" in log


def test_a_start_stuck_without_a_sign_of_life_is_restarted(tmp_path, fake, monitors):
    """The same threshold, but Odoo writes nothing and never serves: restarted."""
    fake.set_mode("silent:600")
    subprocess.run(fake.argv(), check=True, timeout=30)
    first = wait_for(fake.pid, 10, what="the pidfile")
    config = base_config(tmp_path, fake, probes={"startup": {"failure_threshold": 4}})
    monitor = monitors(write_config(tmp_path, config), tmp_path / "state")
    monitor.wait(lambda wd: wd["probes"]["startup"]["status"] == "failing", 20)
    fake.set_mode("healthy")
    wd = monitor.wait(lambda wd: wd["status"]["healthy"], 30, "the restart")
    assert [s["mode"] for s in fake.starts()] == ["silent:600", "healthy"]
    assert fake.pid() != first and wd["counters"]["restarts"] == {"odoo": 1}
    [restart] = [e for e in spool_entries(tmp_path / "state") if e["kind"] == "restart"]
    assert restart["incident"]["pattern"] == "odoo_startup_timeout"


def test_readiness_failing_alone_never_restarts_odoo(tmp_path, monitors):
    """Odoo answers /web/health but not its database (no PostgreSQL probe configured)."""
    fake = FakeOdoo(tmp_path / "odoo", dsn="host=127.0.0.1 port=1 dbname=x connect_timeout=1")
    try:
        first = fake.start()
        config = base_config(tmp_path, fake, probes={"readiness": {"failure_threshold": 2}})
        monitor = monitors(write_config(tmp_path, config), tmp_path / "state")
        wd = monitor.wait(lambda wd: wd["status"]["action"] == "alert", 30, "the alert")
        time.sleep(3)  # six more cycles
        wd = monitor.watchdog()
        assert "readiness failing" in wd["status"]["reason"]
        assert wd["counters"]["restarts"] == {} and fake.pid() == first
        assert len(fake.starts()) == 1
        alerts = [e for e in spool_entries(tmp_path / "state") if e["kind"] == "alert"]
        assert [a["incident"]["pattern"] for a in alerts] == ["odoo_db_unreachable"]  # once
    finally:
        fake.cleanup()


def test_under_systemd_ready_then_watchdog_pings_and_status(tmp_path, fake, monitors):
    fake.start()
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(10)
    try:
        config = base_config(tmp_path, fake)
        monitor = monitors(write_config(tmp_path, config), tmp_path / "state",
                           env=dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="5000000"))
        messages = [server.recv(4096).decode() for _ in range(3)]
        assert messages[0].startswith("READY=1\nSTATUS=healthy; restarts odoo 0")
        assert messages[1].startswith("WATCHDOG=1") and messages[2].startswith("WATCHDOG=1")
        monitor.stop()
        server.settimeout(2)
        tail = []
        with pytest.raises(TimeoutError):
            while True:
                tail.append(server.recv(4096).decode())
        assert any(m.startswith("STOPPING=1") for m in tail)
    finally:
        server.close()


def test_notifier_outside_systemd_and_abstract_sockets():
    assert Notifier({}).ready() is False
    notifier = Notifier({"NOTIFY_SOCKET": "@auto-heal-test-%d" % os.getpid()})
    assert notifier.address.startswith("\0")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(notifier.address)
    try:
        assert notifier.watchdog("x") is True
        assert server.recv(100) == b"WATCHDOG=1\nSTATUS=x"
        assert notifier.watchdog("x") is True  # the same status is not repeated
        assert server.recv(100) == b"WATCHDOG=1"
    finally:
        server.close()


def test_reset_without_a_running_watchdog_and_status(tmp_path, fake):
    config = base_config(tmp_path, fake)
    path = write_config(tmp_path, config)
    state = tmp_path / "state" / "state.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"version": 1, "cursors": {}, "watchdog": {
        "restart": {"odoo": {"restarts": [1.0, 2.0, 3.0], "escalated": True,
                             "escalated_reason": "budget used up"}},
        "status": {"time": time.time(), "action": "restart_odoo", "reason": "down",
                   "healthy": False}}}))
    status = subprocess.run([sys.executable, BIN, "status", "--config", path, "--json"],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 1
    assert json.loads(status.stdout)["escalated"] == {"odoo": "budget used up"}
    reset = subprocess.run([sys.executable, BIN, "reset", "--config", path, "--service", "odoo"],
                           capture_output=True, text=True, timeout=60)
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip() == "reset odoo (no watchdog running); it was escalated"
    data = json.loads(state.read_text())["watchdog"]["restart"]["odoo"]
    assert (data["restarts"], data["escalated"]) == ([], False)
    audit = [json.loads(line) for line in open(tmp_path / "state" / "audit.jsonl")]
    assert [(a["action"], a["target"]) for a in audit] == [("watchdog.reset", "odoo")]


def test_monitor_refuses_a_bad_config_with_one_line(tmp_path):
    path = tmp_path / "auto-heal.toml"
    for text, message in [
        ('[odoo]\nurll = "x"\n', "[odoo] has no key 'urll'"),
        ("[probes.liveness]\nfailure_threshold = 0\n",
         "[probes.liveness] failure_threshold must be an integer from 1 to"),
        ("[watchdog]\ninterval = nan\n", "[watchdog] interval must be a finite number, not nan"),
        ("[probes.postgresql]\nperiod = inf\n", "[probes.postgresql] period must be a finite"),
        ("[probes.liveness]\ntimeout = 1e12\n", "[probes.liveness] timeout must be a number "
         "from 0 to"),
        ('[actions.restart_service]\nservice = "odoo"\n',
         "[actions.restart_service] has no host parameter 'service'"),
        ('[actions.fix_permissions]\nowner = "odoo:odoo"\ndir_mode = "0777x"\n',
         "[actions.fix_permissions] dir_mode: must be an octal mode"),
        ('[actions.shell]\ncommand = ["sh"]\n', "[actions.shell]: not a host fix action"),
        ('[odoo.restart]\nvia = "systemd"\n', "[odoo.restart] via = 'systemd' needs unit"),
        ('[odoo.restart]\nvia = "pg_ctl"\n', "[odoo.restart] via must be one of"),
        ('[fixes]\nauto = ["restart_service"]\n', "is not a host fix action"),
        ("[watchdog\n", "not valid TOML"),
        ('[handover]\ndb = "prod"\n', "[handover] db needs login and api_key_file"),
    ]:
        path.write_text(text)
        result = subprocess.run([sys.executable, BIN, "monitor", "--config", str(path)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (text, result.stderr)
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    result = subprocess.run([sys.executable, BIN, "monitor", "--config",
                             str(tmp_path / "nope.toml")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "config file not found" in result.stderr


def test_unwritable_log_file_is_exit_2(tmp_path, fake):
    config = base_config(tmp_path, fake, watchdog={"log_file": str(tmp_path / "x" / "y")})
    (tmp_path / "x").write_text("a file, not a folder")
    result = subprocess.run([sys.executable, BIN, "monitor", "--config",
                             write_config(tmp_path, config), "--max-cycles", "1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "cannot write the watchdog log" in result.stderr


def test_the_example_config_loads_and_documents_every_key():
    example = os.path.join(os.path.dirname(cfg.__file__), "..", "examples", "auto-heal.toml")
    config = cfg.load(example)
    text = open(example).read()

    def keys(table, prefix=()):
        for key, value in table.items():
            if isinstance(value, dict):
                yield from keys(value, prefix + (key,))
            else:
                yield prefix + (key,)

    for key in keys(cfg.DEFAULTS):
        section = "[" + ".".join(key[:-1]) + "]"
        assert section in text, section
        assert f"\n{key[-1]} =" in text or f"\n# {key[-1]} =" in text, key
    assert config["odoo"]["restart"]["via"] == "systemd"


@pytest.mark.parametrize("allowed", [True, False])
def test_a_log_finding_runs_its_host_fix_only_where_the_policy_allows(tmp_path, fake, monitors,
                                                                       allowed):
    from engine.scanner import REPO_ROOT

    fake.start()
    xml = tmp_path / "addons" / "legacy_cron" / "data" / "cron.xml"
    xml.parent.mkdir(parents=True)
    xml.write_bytes(CRON_XML)
    sample = os.path.join(REPO_ROOT, "tests", "samples", "real",
                          "odoo18-numbercall-startup-failure.log")
    text = open(sample).read().replace("/srv/addons/legacy_cron", str(xml.parent.parent))
    config = base_config(tmp_path, fake, fixes={
        "auto": ["remove_deprecated_cron_fields"] if allowed else [],
        "roots": [str(tmp_path / "addons")]})
    state_dir = tmp_path / "state"
    monitor = monitors(write_config(tmp_path, config), state_dir)
    monitor.wait(lambda wd: wd["status"]["healthy"], 20)
    with open(fake.log, "a") as handle:  # Odoo failed to load a module with numbercall
        handle.write(text)
    monitor.wait(lambda wd: wd["counters"]["findings"].get("cron_field_deprecated"), 20)
    time.sleep(1.5)
    entries = spool_entries(state_dir)
    [incident] = [e["incident"] for e in entries if e["kind"] == "incident"
                  and e["incident"]["pattern"] == "cron_field_deprecated"]
    assert incident["captures"]["xml_file"] == str(xml)
    runs = [e["record"] for e in entries if e["kind"] == "fix_run"]
    if allowed:
        assert [(r["action"], r["state"], r["incident"]) for r in runs] == [
            ("remove_deprecated_cron_fields", "done", incident["fingerprint"])]
        assert b"numbercall" not in xml.read_bytes() and b"doall" not in xml.read_bytes()
        backup = runs[0]["backup"]["files"][0]["backup_path"]
        assert open(backup, "rb").read() == CRON_XML
    else:  # a finding for Odoo, nothing touched
        assert runs == [] and xml.read_bytes() == CRON_XML
        assert "remove_deprecated_cron_fields is not in [fixes] auto here" in open(
            tmp_path / "watchdog.log").read()
