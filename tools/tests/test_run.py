"""make run's pieces that need no Odoo: the watchdog's config it writes, the files it
keeps private, the command that (re)starts Odoo, and how make test reports tours."""

import os
import stat
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from host import config as watchdog_config
from tools import run
from tools.odoo_env import Condenser, OdooTestCounter

HEAD = "2026-11-29 10:00:00,000 4242"
T = "odoo.addons.auto_heal.tests.test_tours"


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "RUN", tmp_path / ".run")
    monkeypatch.setattr(run, "WATCHDOG", tmp_path / ".run" / "watchdog")
    monkeypatch.setattr(run, "WATCHDOG_LOG", tmp_path / ".run" / "watchdog" / "watchdog.log")
    (tmp_path / ".run").mkdir()
    return tmp_path / ".run"


def test_the_watchdog_config_is_one_the_watchdog_loads(run_dir):
    pg = SimpleNamespace(host="127.0.0.1", port=55432, user="auto_heal", password="s3cret")
    conf = run_dir / "odoo.conf"
    command = run.odoo_command("/usr/bin/odoo", conf)
    key = run.write_private(run_dir / "watchdog" / "api-key", "k" * 40 + "\n")
    path = run.write_watchdog_config(8070, pg, command, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "s3cret" not in path.read_text(), "the password goes through PGPASSWORD"
    loaded = watchdog_config.load(str(path))  # the monitor's own checks
    restart = loaded["odoo"]["restart"]
    assert (restart["via"], restart["command"]) == ("command", command)
    assert command[-2:] == ["--pidfile", str(run_dir / "odoo.pid")]
    assert loaded["odoo"]["logs"] == [str(run_dir / "odoo.log")]
    assert loaded["odoo"]["url"] == "http://127.0.0.1:8070"
    assert loaded["postgresql"]["restart"]["via"] == "", "make run owns its cluster"
    assert loaded["handover"]["db"] == run.DB
    assert loaded["handover"]["api_key_file"] == str(key)
    assert loaded["watchdog"]["log_file"] == str(run_dir / "watchdog" / "watchdog.log")


def test_the_odoo_conf_logs_to_the_run_folder_and_is_private(run_dir):
    pg = SimpleNamespace(host="127.0.0.1", port=55432, user="auto_heal", password="pw")
    conf = run.write_odoo_conf(pg, "/opt/odoo/addons", 8070)
    text = conf.read_text()
    assert f"logfile = {run_dir / 'odoo.log'}" in text
    assert "http_port = 8070" in text
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600


def test_spawn_returns_at_once_and_the_program_keeps_running(tmp_path):
    out = tmp_path / "out.log"
    marker = tmp_path / "done"
    subprocess.run([sys.executable, str(run.SPAWN), "--output", str(out), "--",
                    sys.executable, "-c",
                    f"import time; time.sleep(1); open({str(marker)!r}, 'w').write('x'); "
                    "print('spawned')"], check=True, timeout=30)
    assert not marker.exists(), "spawn.py waited for the program"  # it sleeps 1 s first
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists()
    time.sleep(0.2)
    assert out.read_text().strip() == "spawned"
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_the_odoo_pid_must_be_an_odoo_of_this_run(run_dir):
    conf = run_dir / "odoo.conf"
    (run_dir / "odoo.pid").write_text(str(os.getpid()))
    assert run.odoo_pid(conf) is None, "this process's command line names no odoo.conf"
    (run_dir / "odoo.pid").write_text("not a pid")
    assert run.odoo_pid(conf) is None


def test_the_log_follower_feeds_only_what_is_appended(tmp_path):
    log = tmp_path / "w.log"
    log.write_text("old line\n")
    seen = []
    follower = run.LogFollower(log, seen.append)
    follower.start()
    with open(log, "a") as handle:
        handle.write("new one\nand a half")
    time.sleep(0.6)
    follower.stop()
    assert seen == ["new one", "and a half"]


def test_tours_count_like_other_tests():
    counter = OdooTestCounter()
    for line in [
        f"{HEAD} INFO db {T}: Starting TestAdminTours.test_admin_closes_the_loop ... ",
        f"{HEAD} INFO db {T}: Starting TestAdminTours.test_reject_with_a_reason ... ",
        f"{HEAD} ERROR db {T}.TestAdminTours.test_reject_with_a_reason.browser: FAILED: "
        "[1/6] Tour auto_heal_reject -> Step ...",
        f"{HEAD} ERROR db {T}: FAIL: TestAdminTours.test_reject_with_a_reason",
        f"{HEAD} INFO db {T}: Starting TestAdminTours.test_a_user_reads_but_approves_nothing"
        " ... ",
        f"{HEAD} INFO db {T}: skipped TestAdminTours.test_a_user_reads_but_approves_nothing "
        ": websocket-client module is not installed ",
    ]:
        counter.feed(line)
    assert (counter.passed, counter.failed, counter.skipped) == (1, 1, 1)


def test_the_console_shows_tour_failures_not_the_browsers_chatter():
    import io

    out = io.StringIO()
    condenser = Condenser(out=out, prefix="")
    for line in [
        f"{HEAD} WARNING db {T}.TestAdminTours.test_x.browser: This is not suitable for "
        "production use.",
        f"{HEAD} INFO db {T}.TestAdminTours.test_x: Closing chrome headless with pid 7",
        f"{HEAD} ERROR db {T}.TestAdminTours.test_x.browser: FAILED: [1/6] Tour x",
        f"{HEAD} INFO db {T}: Starting TestAdminTours.test_x ...",
    ]:
        condenser.feed(line)
    assert out.getvalue().splitlines() == [
        "ERROR auto_heal.tests.test_tours.TestAdminTours.test_x.browser: FAILED: [1/6] Tour x",
        "INFO auto_heal.tests.test_tours: Starting TestAdminTours.test_x ...",
    ]
