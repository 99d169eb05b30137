"""The watchdog's host checks: backup freshness and the deployment configuration.

Real states only: dumps made by ``bin/auto-heal backup --db`` (pg_dump -Fc,
then pg_restore --list) on a private PostgreSQL, one of them aged with
``os.utime``, a corrupt one; a dumps folder where an unprivileged user plants
a symlink and a FIFO; an odoo.conf that is a FIFO; and a real Odoo 18 started
with ``workers = 2`` while gevent is not installed in its Python (true of
/opt/odoo18-venv), probed through ``/websocket``. Each runs the real
``bin/auto-heal monitor --max-cycles 1`` and reads what it kept: the alerts in
its state, the spool entries Odoo will get.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from engine import hostchecks
from engine.checks import backup as backup_checks
from engine.checks import deployment_facts
from host.tests.real_odoo import (
    ODOO_BIN,
    ODOO_TIMEOUT,
    needs_real_odoo,
    odoo_env,
    pg,
    tail,
    wait_for_health,
)
from host.tests.watchdog_helpers import (
    BIN,
    base_config,
    free_port,
    merge,
    spool_entries,
    write_config,
)
from tools.testing import run_as, start_private_cluster

HOURS = 3600


@pytest.fixture(scope="module")
def cluster():
    cluster = start_private_cluster()
    cluster.psql("CREATE DATABASE ah_prod OWNER auto_heal")
    cluster.psql("CREATE TABLE res_partner (id serial PRIMARY KEY, name text); "
                 "INSERT INTO res_partner (name) SELECT 'p' || g FROM generate_series(1, 100) g",
                 dbname="ah_prod", superuser=False)
    yield cluster
    cluster.stop()


@pytest.fixture
def fake(fake):
    """conftest's fake Odoo, started."""
    fake.start()
    return fake


def backup(cluster, dest, home):
    result = subprocess.run(
        [sys.executable, BIN, "backup", "--db", "ah_prod", "--dsn", cluster.dsn, "--dest",
         str(dest), "--json", "--pg-dump", os.path.join(cluster.bindir, "pg_dump"),
         "--pg-restore", os.path.join(cluster.bindir, "pg_restore")],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, AUTO_HEAL_HOME=str(home)))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["path"]


def monitor_once(tmp_path, config):
    """``bin/auto-heal monitor --max-cycles 1``; (state's watchdog part, spool entries)."""
    path = write_config(tmp_path, config)
    result = subprocess.run([sys.executable, BIN, "monitor", "--config", path, "--max-cycles",
                             "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    state_dir = config["watchdog"]["state_dir"]
    with open(os.path.join(state_dir, "state.json")) as handle:
        state = json.load(handle)["watchdog"]
    return state, spool_entries(state_dir)


def health(entries, family):
    found = [e for e in entries if e["kind"] == "health" and e["family"] == family]
    assert found, [e["kind"] for e in entries]
    return found[-1]


def test_backup_age_of_verified_dumps_through_the_watchdog(cluster, tmp_path, fake):
    dest = tmp_path / "dumps"
    old = backup(cluster, dest, tmp_path)
    aged = time.time() - 30 * HOURS
    os.utime(old, (aged, aged))  # the last dump ran 30 hours ago
    config = base_config(tmp_path, fake, backup={
        "period": 0.1, "dumps_dir": str(dest), "database": "ah_prod",
        "pg_restore": os.path.join(cluster.bindir, "pg_restore")},
        deployment={"enabled": False})
    state, entries = monitor_once(tmp_path, config)
    key = "check:backup_stale:backup:ah_prod:critical"
    assert key in state["alerts"]
    [alert] = [e for e in entries if e["kind"] == "alert" and e["key"] == key]
    incident = alert["incident"]
    assert (incident["pattern"], incident["severity"]) == ("backup_stale", "critical")
    assert "the newest verified dump of ah_prod is 30.0 h old" in incident["message"]
    assert "bin/auto-heal backup --db ah_prod" in incident["sample"]  # what to do
    [result] = health(entries, "backup")["checks"]
    assert result["status"] == "critical" and result["value"] >= 30 * HOURS - 60
    assert result["details"]["verified"]["entries"] > 0
    # the verdict is kept: the next run does not list the same dump again
    assert state["host_checks"]["counters"]["backup"]["backup_verified"][old]["ok"] is True

    # a fresh dump: the alert is cleared, the health report says ok
    fresh = backup(cluster, dest, tmp_path)
    state, entries = monitor_once(tmp_path, config)
    assert key not in state["alerts"]
    [result] = health(entries, "backup")["checks"]
    assert result["status"] == "ok" and result["value"] < 600
    assert result["details"]["verified"]["path"] == fresh

    # a newer file that does not list (a dump cut short): a warning
    broken = dest / "ah_prod.29990101T000000Z.dump"
    with open(fresh, "rb") as source:
        broken.write_bytes(source.read(200))
    state, entries = monitor_once(tmp_path, config)
    assert "check:backup_stale:backup:ah_prod:warning" in state["alerts"]
    [result] = health(entries, "backup")["checks"]
    assert result["status"] == "warning"
    assert "1 newer dump(s) do not list: ah_prod.29990101T000000Z.dump" in result["message"]
    assert result["details"]["verified"]["path"] == fresh
    with open(os.path.join(tmp_path, "watchdog.log")) as handle:
        assert "host check backup: 1 result(s), 1 problem(s), 0 error(s)" in handle.read()


def test_filestore_copy_age_and_a_current_mirror(tmp_path):
    live = tmp_path / "filestore" / "prod"
    (live / "3f").mkdir(parents=True)
    (live / "3f" / "3f2a").write_bytes(b"attachment")
    copy = tmp_path / "copy"
    (copy / "3f").mkdir(parents=True)
    aged = time.time() - 40 * HOURS
    os.utime(copy / "3f", (aged, aged))
    settings = hostchecks.backup_settings({"filestore_dir": str(copy),
                                           "live_filestore": str(live)})
    run = hostchecks.run_host_checks(["backup_stale"], settings)
    [result] = run.results
    assert result.status == "critical" and result.value >= 40 * HOURS - 60
    assert result.subject == "backup:filestore:%s" % copy
    shutil.copy2(live / "3f" / "3f2a", copy / "3f" / "3f2a")  # rsync -a keeps the dates
    os.utime(copy / "3f", (aged, aged))
    [result] = hostchecks.run_host_checks(["backup_stale"], settings).results
    assert result.status == "ok" and "holds the live filestore's newest file" in result.message


def test_no_dump_at_all_and_pg_restore_missing(tmp_path):
    empty = tmp_path / "dumps"
    empty.mkdir()
    [result] = hostchecks.run_host_checks(
        ["backup_stale"], {"backup_dumps_dir": str(empty)}).results
    assert result.status == "critical" and "no dump in" in result.message
    (empty / "prod.20260101.dump").write_bytes(b"PGDMP")
    run = hostchecks.run_host_checks(["backup_stale"], {"backup_dumps_dir": str(empty)},
                                     {"pg_restore": str(tmp_path / "no-pg_restore")})
    assert run.results == []
    assert run.errors[0].startswith("backup_stale: ") and "no-pg_restore" in run.errors[0]


def _plant(folder, target):
    def plant():
        os.symlink(target, os.path.join(folder, "ah_prod.29990102T000000Z.dump"))
        os.mkfifo(os.path.join(folder, "ah_prod.29990103T000000Z.dump"))
        return "planted"

    return plant


def test_links_and_fifos_planted_in_the_dumps_folder_are_never_read(cluster, tmp_path,
                                                                    request):
    """An unprivileged user may write the folder: its symlink (even to a good dump) and
    its FIFO are not dumps. Without lstat / O_NOFOLLOW / O_NONBLOCK the symlink would
    be followed (as root) and the FIFO would block the watchdog forever."""
    # under /tmp, open to others: nobody must reach the folder (pytest's tmp_path is 0700)
    base = Path(tempfile.mkdtemp(prefix="auto_heal-dumps-"))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    os.chmod(base, 0o755)
    folder = base / "dumps"
    folder.mkdir()
    os.chmod(folder, 0o1777)
    good = backup(cluster, tmp_path / "elsewhere", tmp_path)
    assert run_as("nobody", _plant(str(folder), good)) == "planted"
    assert stat.S_ISLNK(os.lstat(folder / "ah_prod.29990102T000000Z.dump").st_mode)

    outcome = {}

    def check():
        outcome["run"] = hostchecks.run_host_checks(
            ["backup_stale"], {"backup_dumps_dir": str(folder), "backup_database": "ah_prod"},
            {"pg_restore": os.path.join(cluster.bindir, "pg_restore")})

    thread = threading.Thread(target=check, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the check hung on the FIFO"
    [result] = outcome["run"].results
    assert result.status == "critical" and result.details["dumps"] == 0
    # the verification itself refuses them too (a file swapped after the listing)
    pg_restore = os.path.join(cluster.bindir, "pg_restore")
    ok, _entries, error = backup_checks.verify_dump(
        str(folder / "ah_prod.29990102T000000Z.dump"), pg_restore)
    assert not ok and "cannot open it" in error
    ok, _entries, error = backup_checks.verify_dump(
        str(folder / "ah_prod.29990103T000000Z.dump"), pg_restore)
    assert (ok, error) == (False, "not a regular file")
    assert backup_checks.verify_dump(good, pg_restore)[0] is True


def test_odoo_conf_read_by_the_watchdog_is_type_and_size_checked(tmp_path):
    fifo = tmp_path / "odoo.conf"
    os.mkfifo(fifo)
    # a blocking open of the FIFO would hang here: returning at all is the outcome
    with pytest.raises(deployment_facts.ConfigReadError, match="not a regular file"):
        hostchecks.deployment_facts(str(fifo))
    big = tmp_path / "big.conf"
    big.write_bytes(b"[options]\n" + b"; x\n" * (1 << 19))
    with pytest.raises(deployment_facts.ConfigReadError, match="more than"):
        hostchecks.deployment_facts(str(big))


def test_weak_master_password_in_odoo_conf_is_reported_never_shown(tmp_path, fake):
    conf = tmp_path / "odoo.conf"
    conf.write_text("[options]\nadmin_passwd = changeme\nlist_db = True\nworkers = 0\n")
    config = base_config(tmp_path, fake, odoo={"config": str(conf)},
                         deployment={"period": 0.1, "public_url": fake.url})
    state, entries = monitor_once(tmp_path, config)
    assert "check:database_manager_exposed:config:admin_passwd:critical" in state["alerts"]
    assert "check:database_manager_exposed:config:list_db:warning" in state["alerts"]
    results = {r["subject"]: r for r in health(entries, "deployment")["checks"]}
    assert "trivially guessable" in results["config:admin_passwd"]["message"]
    for path in ("state.json", "spool.jsonl", "audit.jsonl"):
        full = os.path.join(config["watchdog"]["state_dir"], path)
        if os.path.exists(full):
            assert "changeme" not in open(full).read(), path
    assert "changeme" not in open(os.path.join(tmp_path, "watchdog.log")).read()


# --------------------------------------------------------------------------
# a real Odoo 18 with workers = 2 and no gevent


def _install(db, addons, data_dir, tmp_path):
    params = pg()
    result = subprocess.run(
        [ODOO_BIN, f"--addons-path={addons}", "-d", db, "--db_host", params["host"],
         "--db_port", str(params["port"]), "--db_user", params["user"], "--data-dir",
         str(data_dir), "--logfile", str(tmp_path / "install.log"), "-i", "bus",
         "--stop-after-init", "--without-demo=all", "--http-port", str(free_port()),
         "--max-cron-threads", "0"],
        capture_output=True, text=True, timeout=ODOO_TIMEOUT, stdin=subprocess.DEVNULL,
        env=odoo_env())
    assert result.returncode == 0, tail(tmp_path / "install.log")


def _odoo_python():
    """The Python the odoo launcher runs: its #! line, or a shell wrapper's exec."""
    import re

    try:
        with open(os.path.realpath(ODOO_BIN), "rb") as handle:
            text = handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    found = re.search(r"^exec\s+(\S*python\S*)", text, re.M) or \
        re.match(r"#!\s*(\S*python\S*)", text)
    return found.group(1) if found else None


@needs_real_odoo
def test_workers_without_gevent_on_a_real_odoo(tmp_path, fake, dbname):
    python = _odoo_python()
    if python and subprocess.run([python, "-c", "import gevent"],
                                 capture_output=True).returncode == 0:
        pytest.skip("gevent is installed in this Odoo's Python")
    from host.tests.real_odoo import addons_path

    addons = addons_path(tmp_path)
    data_dir = tmp_path / "odoo-data"
    _install(dbname, addons, data_dir, tmp_path)
    port, gevent_port = free_port(), free_port()
    params = pg()
    _cpus, memory = deployment_facts.host_resources()
    conf = tmp_path / "odoo.conf"
    conf.write_text("[options]\n"
                    f"addons_path = {addons}\ndata_dir = {data_dir}\n"
                    f"db_host = {params['host']}\ndb_port = {params['port']}\n"
                    f"db_user = {params['user']}\ndbfilter = ^{dbname}$\n"
                    f"http_interface = 127.0.0.1\nhttp_port = {port}\n"
                    f"gevent_port = {gevent_port}\nmax_cron_threads = 0\n"
                    f"limit_memory_hard = {memory}\n"
                    f"logfile = {tmp_path / 'odoo.log'}\n")
    pidfile = tmp_path / "odoo.pid"
    odoo = subprocess.Popen([ODOO_BIN, "-c", str(conf), "--workers", "2", "-d", dbname,
                             "--pidfile", str(pidfile)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=odoo_env(), start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, odoo, tmp_path / "odoo.log")
        config = merge(base_config(tmp_path, fake), {
            "odoo": {"url": url, "pidfile": str(pidfile), "config": str(conf),
                     "logs": [], "restart": {"via": ""}},
            "deployment": {"period": 0.1, "public_url": url},
        })
        state, entries = monitor_once(tmp_path, config)
        results = {r["check"]: r for r in health(entries, "deployment")["checks"]}
        realtime = results["realtime_unavailable"]
        assert realtime["status"] == "critical", realtime
        assert realtime["details"]["workers"] == 2  # from the command line, not odoo.conf
        assert realtime["details"]["probe"]["status"] == 500
        assert realtime["details"]["gevent_port_open"] is False
        assert "nothing listens on the gevent port 127.0.0.1:%d" % gevent_port in \
            realtime["message"]
        assert "check:realtime_unavailable:config:workers:critical" in state["alerts"]
        # Odoo's own symptom of the same fault, in its log
        assert "Couldn't bind the websocket" in tail(tmp_path / "odoo.log", 200000)
        sizing = [r for r in health(entries, "deployment")["checks"]
                  if r["check"] == "workers_sizing"]
        assert {r["subject"] for r in sizing} == {"config:limit_memory_hard"}
        assert sizing[0]["status"] == "critical"  # 2 x the host's RAM
        manager = {r["subject"]: r for r in health(entries, "deployment")["checks"]
                   if r["check"] == "database_manager_exposed"}
        assert "not set: Odoo uses its default" in manager["config:admin_passwd"]["message"]
    finally:
        _stop(odoo)
    # the same Odoo as a threaded server (workers = 0) serves /websocket itself: the probe
    # sees the upgrade (HTTP 101), so a working channel is told from a broken one
    odoo = subprocess.Popen([ODOO_BIN, "-c", str(conf), "--workers", "0", "-d", dbname],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=odoo_env(), start_new_session=True)
    try:
        wait_for_health(url, odoo, tmp_path / "odoo.log")
        assert deployment_facts.probe_websocket(url) == {"url": url + "/websocket", "status": 101,
                                                   "error": ""}
    finally:
        _stop(odoo)


def _stop(process):
    os.killpg(process.pid, 15)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(10)
