"""bin/auto-heal fix and rollback, as real processes, on real files, owners,
processes and a real PostgreSQL cluster: the seed's scenarios end to end."""

import grp
import json
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from engine.actions import actions
from host.tests.conftest import BIN
from host.tests.conftest import run_auto_heal as run
from tools.samples import (
    CRON_XML,
    CRON_XML_FIXED,
    DOALL_LINE,
    NUMBERCALL_LINE,
    legacy_cron_module,
)
from tools.testing import run_as, start_private_cluster

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="changing owners needs root")


def run_id_of(result):
    found = re.findall(r"^run ([0-9a-f]{12}): ", result.stdout, re.M) or \
        re.findall(r"\(run ([0-9a-f]{12})\)", result.stdout)
    assert found, result.stdout
    return found[-1]


def audit(home):
    path = home / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def meta(path):
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def snapshot(root):
    found = {str(root): meta(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found[os.path.join(dirpath, name)] = meta(os.path.join(dirpath, name))
    return found


# --------------------------------------------------------------------------
# help and bad input


@pytest.mark.parametrize("command", [["fix"], ["rollback"], ["run-approved"]])
def test_help(command):
    result = subprocess.run([sys.executable, BIN] + command + ["--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: auto-heal " + command[0])
    assert "exit codes" in result.stdout


BAD_INPUT = {
    "fix without action": ["fix"],
    "fix unknown action": ["fix", "nope"],
    "fix an odoo action": ["fix", "reset_stuck_module_states"],
    "fix option that does not apply": ["fix", "remove_deprecated_cron_fields", "--path", "{tmp}",
                                       "--owner", "root"],
    "cron without path": ["fix", "remove_deprecated_cron_fields"],
    "cron missing path": ["fix", "remove_deprecated_cron_fields", "--path", "{tmp}/nope"],
    "cron missing log": ["fix", "remove_deprecated_cron_fields", "--from-log", "{tmp}/no.log"],
    "cron missing root": ["fix", "remove_deprecated_cron_fields", "--path", "{tmp}", "--root",
                          "{tmp}/nope"],
    "perms without owner": ["fix", "fix_permissions", "--root", "{tmp}"],
    "perms without roots": ["fix", "fix_permissions", "--owner", "root"],
    "perms unknown user": ["fix", "fix_permissions", "--root", "{tmp}", "--owner",
                           "no_such_user_auto_heal:root"],
    "perms unknown group": ["fix", "fix_permissions", "--root", "{tmp}", "--owner",
                            "root:no_such_group_auto_heal"],
    "perms world-writable dirs": ["fix", "fix_permissions", "--root", "{tmp}", "--owner", "root",
                                  "--dir-mode", "0777"],
    "perms world-writable files": ["fix", "fix_permissions", "--root", "{tmp}", "--owner",
                                   "root", "--file-mode", "0666"],
    "perms setuid": ["fix", "fix_permissions", "--root", "{tmp}", "--owner", "root",
                     "--file-mode", "4750"],
    "perms owner locked out": ["fix", "fix_permissions", "--root", "{tmp}", "--owner", "root",
                               "--dir-mode", "0570"],
    "perms mode not octal": ["fix", "fix_permissions", "--root", "{tmp}", "--owner", "root",
                             "--dir-mode", "rwxr-x---"],
    "perms missing config": ["fix", "fix_permissions", "--owner", "root", "--config",
                             "{tmp}/odoo.conf"],
    "restart without via": ["fix", "restart_service", "--service", "postgresql"],
    "restart bad via": ["fix", "restart_service", "--service", "odoo", "--via", "ssh"],
    "restart pg_ctl without datadir": ["fix", "restart_service", "--service", "postgresql",
                                       "--via", "pg_ctl", "--dsn", "dbname=x"],
    "restart pg_ctl datadir missing": ["fix", "restart_service", "--service", "postgresql",
                                       "--via", "pg_ctl", "--dsn", "dbname=x", "--datadir",
                                       "{tmp}/nope"],
    "restart postgres without dsn": ["fix", "restart_service", "--service", "postgresql",
                                     "--via", "pg_ctl", "--datadir", "{tmp}"],
    "restart odoo without url": ["fix", "restart_service", "--service", "odoo", "--via",
                                 "systemd", "--unit", "odoo"],
    "restart odoo with pg_ctl": ["fix", "restart_service", "--service", "odoo", "--via",
                                 "pg_ctl", "--datadir", "{tmp}", "--url", "http://127.0.0.1:9"],
    "restart shell string": ["fix", "restart_service", "--service", "odoo", "--via", "command",
                             "--command", "systemctl restart odoo; rm -rf /", "--url",
                             "http://127.0.0.1:9"],
    "restart command and arg": ["fix", "restart_service", "--service", "odoo", "--via",
                                "command", "--command", '["/bin/true"]', "--arg", "/bin/true",
                                "--url", "http://127.0.0.1:9"],
    "restart bad cluster": ["fix", "restart_service", "--service", "postgresql", "--via",
                            "pg_ctlcluster", "--cluster", "main", "--dsn", "dbname=x"],
    "restart bad url": ["fix", "restart_service", "--service", "odoo", "--via", "docker",
                        "--container", "odoo", "--url", "ftp://odoo"],
    "restart bad timeout": ["fix", "restart_service", "--service", "odoo", "--via", "docker",
                            "--container", "odoo", "--url", "http://h", "--timeout", "0"],
    "restore without version": ["fix", "restore_config", "--config", "{conf}"],
    "restore missing config": ["fix", "restore_config", "--config", "{tmp}/none.conf",
                               "--version", "x"],
    "bad budget": ["fix", "fix_permissions", "--root", "{tmp}", "--owner", "root",
                   "--budget-max-runs", "0"],
    "rollback without id": ["rollback"],
    "rollback not an id": ["rollback", "../../etc/passwd"],
    "rollback unknown id": ["rollback", "0123456789ab"],
    "run-approved without url": ["run-approved", "--db", "x"],
    "run-approved bad url": ["run-approved", "--url", "ftp://odoo", "--db", "x"],
    "run-approved missing key file": ["run-approved", "--url", "http://127.0.0.1:9", "--db",
                                      "x", "--api-key-file", "{tmp}/key"],
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, home):
    conf = tmp_path / "odoo.conf.real"
    conf.write_text("[options]\n")
    args = [a.format(tmp=tmp_path, conf=conf) for a in BAD_INPUT[case]]
    result = run(args, home)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("auto-heal: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (home / "audit.jsonl").exists()
    assert not (home / "runs").exists()


def test_bad_input_messages(tmp_path, home):
    unknown = run(["fix", "nope"], home)
    assert "invalid choice: 'nope'" in unknown.stderr
    assert "restart_service" in unknown.stderr
    refused = run(["fix", "fix_permissions", "--root", tmp_path, "--owner", "root",
                   "--dir-mode", "0777"], home)
    assert "mode 0777 for folders is world-writable; refused" in refused.stderr
    missing = run(["rollback", "0123456789ab"], home)
    assert missing.stderr.startswith("auto-heal: error: no run 0123456789ab in ")
    odoo = run(["fix", "reset_stuck_module_states"], home)
    assert "runs inside Odoo" in odoo.stderr


# --------------------------------------------------------------------------
# scenario 1: deprecated cron fields, through `fix` and through `fix-cron`

def _module(parent):
    folder = legacy_cron_module(parent)
    cron = folder / "data" / "cron.xml"
    os.chmod(cron, 0o640)
    if IS_ROOT:
        os.chown(cron, 65534, 65534)
    return folder, cron


def test_cron_fix_and_fix_cron_same_result_noop_and_rollback(tmp_path, home):
    a_module, a_cron = _module(tmp_path / "a")
    b_module, b_cron = _module(tmp_path / "b")
    before = meta(a_cron)

    dry = run(["fix", "remove_deprecated_cron_fields", "--path", a_module, "--dry-run"], home)
    assert dry.returncode == 0, dry.stderr
    assert "Steps:\n  1. remove numbercall (line %d, record ir_cron_legacy), doall (line %d" \
        % (NUMBERCALL_LINE, DOALL_LINE) \
        in dry.stdout
    assert '-        <field name="numbercall">-1</field>' in dry.stdout
    assert re.search(r"^run [0-9a-f]{12}: planned$", dry.stdout, re.M)
    assert a_cron.read_bytes() == CRON_XML

    via_fix = run(["fix", "remove_deprecated_cron_fields", "--path", a_module], home)
    via_fix_cron = run(["fix-cron", b_module], home)
    assert via_fix.returncode == 0 and via_fix_cron.returncode == 0, (via_fix.stdout,
                                                                       via_fix_cron.stderr)
    assert "done" in via_fix.stdout and "verified: 1 file(s) parse with lxml" in via_fix.stdout
    assert a_cron.read_bytes() == b_cron.read_bytes() == CRON_XML_FIXED
    assert meta(a_cron) == meta(b_cron) == before
    steps = [(a["action"].split(".")[1], a["result"]) for a in audit(home)]
    assert steps == [("plan", "planned")] + [("plan", "planned"), ("apply", "applied"),
                                             ("verify", "ok")] * 2

    again = run(["fix", "remove_deprecated_cron_fields", "--path", a_module], home)
    assert again.returncode == 0 and re.search(r"^run \w+: noop$", again.stdout, re.M)
    again_cron = run(["fix-cron", b_module], home)
    assert "0 file(s) fixed, 1 with nothing to fix" in again_cron.stdout
    assert a_cron.read_bytes() == b_cron.read_bytes() == CRON_XML_FIXED

    for result, cron in ((via_fix, a_cron), (via_fix_cron, b_cron)):
        back = run(["rollback", run_id_of(result)], home)
        assert back.returncode == 0, back.stderr
        assert cron.read_bytes() == CRON_XML
        assert meta(cron) == before
    twice = run(["rollback", run_id_of(via_fix)], home)
    assert twice.returncode == 1
    assert "is rolled_back; only a done run can be rolled back" in twice.stderr


# --------------------------------------------------------------------------
# scenario 3: Errno 13, end to end


def _odoo_writes_attachment(target, log):
    """What Odoo's ir.attachment does, as the odoo user: write a file, and log
    the failure the way Odoo does (an INFO record with the traceback)."""

    def attempt():
        logger = logging.getLogger("odoo.addons.base.models.ir_attachment")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = logging.FileHandler(log)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(process)d %(levelname)s db1 %(name)s: %(message)s"))
        logger.addHandler(handler)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(b"attachment")
            return "written"
        except OSError as exc:
            logger.info("_file_write writing %s", target, exc_info=True)
            return f"{type(exc).__name__}: [Errno {exc.errno}]"
        finally:
            logger.removeHandler(handler)
            handler.close()

    return run_as("nobody", attempt)


@pytest.fixture
def base():
    folder = tempfile.mkdtemp(prefix="auto_heal-cli-", dir="/tmp")
    os.chmod(folder, 0o755)  # every user can reach it (pytest's tmp_path is root-only)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@needs_root
def test_errno13_fixed_then_the_write_succeeds_and_rollback_restores(base, home):
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    data = os.path.join(base, "data")
    filestore = os.path.join(data, "filestore")
    sessions = os.path.join(data, "sessions")
    os.makedirs(filestore)
    os.makedirs(sessions)
    os.chown(data, nobody.pw_uid, nobody.pw_gid)
    os.chmod(data, 0o750)
    os.chmod(filestore, 0o700)  # root took it over: root:root 0700
    os.chmod(sessions, 0o700)  # also wrong, but not named by the error: left alone
    log = os.path.join(base, "odoo.log")
    open(log, "w").close()
    os.chown(log, nobody.pw_uid, nobody.pw_gid)
    target = os.path.join(filestore, "db1", "ab", "abcdef0123")

    assert _odoo_writes_attachment(target, log) == "PermissionError: [Errno 13]"
    text = open(log).read()
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ INFO db1 "
                    r"odoo\.addons\.base\.models\.ir_attachment: _file_write writing ", text)
    assert f"PermissionError: [Errno 13] Permission denied: '{os.path.join(filestore, 'db1')}'" \
        in text
    before = snapshot(data)

    dry = run(["fix", "fix_permissions", "--from-log", log, "--owner", f"nobody:{group}",
               "--root", data, "--dry-run"], home)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"dir {filestore}: 0700 root:root -> 0750 nobody:{group}" in dry.stdout
    assert snapshot(data) == before

    fixed = run(["fix", "fix_permissions", "--from-log", log, "--owner", f"nobody:{group}",
                 "--root", data], home)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert re.search(r"^run \w+: done$", fixed.stdout, re.M)
    after = snapshot(data)
    assert after[filestore] == (0o750, nobody.pw_uid, nobody.pw_gid)
    assert {p: m for p, m in after.items() if p != filestore} == \
        {p: m for p, m in before.items() if p != filestore}  # exactly that path
    assert after[sessions] == (0o700, 0, 0)

    assert _odoo_writes_attachment(target, log) == "written"  # the write that failed works

    back = run(["rollback", run_id_of(fixed)], home)
    assert back.returncode == 0, back.stderr
    shutil.rmtree(os.path.join(filestore, "db1"))
    assert snapshot(data) == before
    assert _odoo_writes_attachment(target, log).startswith("PermissionError")
    record = json.loads((home / "runs" / f"{run_id_of(fixed)}.json").read_text())
    assert record["state"] == "rolled_back"


@needs_root
def test_errno13_through_a_symlink_out_of_the_root_is_refused(base, home):
    data = os.path.join(base, "data")
    outside = os.path.join(base, "outside")
    os.makedirs(data)
    os.makedirs(outside)
    os.chmod(outside, 0o700)
    os.symlink(outside, os.path.join(data, "filestore"))
    log = os.path.join(base, "odoo.log")
    with open(log, "w") as fh:
        fh.write("2026-11-29 10:00:00,000 7 INFO db1 odoo.addons.base.models.ir_attachment: "
                 "_file_write writing x\nTraceback (most recent call last):\n"
                 f"PermissionError: [Errno 13] Permission denied: '{data}/filestore/ab'\n")
    result = run(["fix", "fix_permissions", "--from-log", log, "--owner", "nobody",
                  "--root", data], home)
    assert result.returncode == 1
    assert re.search(r"^run \w+: blocked$", result.stdout, re.M)
    assert "a named path lies inside the roots" in result.stdout
    assert meta(outside) == (0o700, 0, 0)


# --------------------------------------------------------------------------
# scenario 2: PostgreSQL down: restarted, verified by a connection; budgets


@pytest.fixture(scope="module")
def pg():
    cluster = start_private_cluster()
    yield cluster
    cluster.stop()


def _postmaster_pid(pg):
    try:
        with open(pg.datadir / "postmaster.pid") as fh:
            return int(fh.readline())
    except FileNotFoundError:
        return None


def test_postgres_restart_verified_then_budget_refuses(pg, home):
    psycopg2 = pytest.importorskip("psycopg2")
    assert pg.pg_ctl("stop", "-m", "fast", "-w").returncode == 0
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(pg.dsn, connect_timeout=3)
    args = ["fix", "restart_service", "--service", "postgresql", "--via", "pg_ctl",
            "--datadir", pg.datadir, "--pg-ctl", os.path.join(pg.bindir, "pg_ctl"),
            "--pg-log", pg.logfile, "--dsn", pg.dsn, "--timeout", "60"]

    result = run(args, home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^run \w+: done$", result.stdout, re.M)
    assert "This action cannot be rolled back." in result.stdout
    assert "verified: " in result.stdout
    conn = psycopg2.connect(pg.dsn, connect_timeout=10)  # a real connection works
    with conn.cursor() as cr:
        cr.execute("SELECT 1")
        assert cr.fetchone() == (1,)
    conn.close()
    run_id = run_id_of(result)
    # the password is masked wherever it is stored or printed
    for text in (result.stdout, result.stderr, (home / "audit.jsonl").read_text(),
                 (home / "runs" / f"{run_id}.json").read_text()):
        assert pg.password not in text

    irreversible = run(["rollback", run_id], home)
    assert irreversible.returncode == 1
    assert "restart_service cannot be rolled back" in irreversible.stderr

    # right after a restart: too soon (growing delays), not escalated yet
    pid = _postmaster_pid(pg)
    soon = run(args, home)
    assert soon.returncode == 1
    assert re.search(r"^run \w+: refused$", soon.stdout, re.M)
    assert "refused: too soon: run 2 waits 30 s after the previous one" in soon.stdout
    assert "escalate" not in soon.stdout
    # over budget: refused, escalated, and no restart happened
    over = run(args + ["--budget-max-runs", "1"], home)
    assert over.returncode == 1
    assert "refused: budget used up: 1 runs within 30 min (the limit is 1)" in over.stdout
    assert "escalate: a person must look at postgresql via pg_ctl" in over.stdout
    assert _postmaster_pid(pg) == pid
    record = json.loads((home / "runs" / f"{run_id_of(over)}.json").read_text())
    assert (record["state"], record["escalate"]) == ("refused", True)
    last = audit(home)[-1]
    assert (last["action"], last["result"]) == ("restart_service.refused", "refused")
    assert not [a for a in audit(home) if a["details"]["run_id"] == run_id_of(over)
                and a["action"].endswith(".apply")]


# --------------------------------------------------------------------------
# restore_config from a `backup --config` version


GOOD_CONF = "[options]\ndb_host = db\ndb_password = S3cret-Good\nworkers = 4\n"
BROKEN_CONF = "[options\ndb_host = db\ndb_password = S3cret-Broken\nworkers = four\n"


def test_restore_config_from_a_backup_version(tmp_path, home):
    conf = tmp_path / "odoo.conf"
    conf.write_text(GOOD_CONF)
    os.chmod(conf, 0o640)
    kept = run(["backup", "--config", conf, "--json"], home)
    assert kept.returncode == 0, kept.stderr
    version = json.loads(kept.stdout)["name"]
    conf.write_text(BROKEN_CONF)
    os.chmod(conf, 0o644)
    broken = conf.read_bytes()

    dry = run(["fix", "restore_config", "--config", conf, "--version", version, "--dry-run"],
              home)
    assert dry.returncode == 0, dry.stderr
    assert "-[options\n+[options]\n" in dry.stdout
    assert "-db_password = ***\n" in dry.stdout and "+db_password = ***\n" in dry.stdout
    assert "S3cret" not in dry.stdout
    assert conf.read_bytes() == broken

    fixed = run(["fix", "restore_config", "--config", conf, "--version", version], home)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert conf.read_text() == GOOD_CONF
    assert meta(conf)[0] == 0o640
    assert "S3cret" not in fixed.stdout + (home / "audit.jsonl").read_text()
    again = run(["fix", "restore_config", "--config", conf, "--version", version], home)
    assert re.search(r"^run \w+: noop$", again.stdout, re.M)

    back = run(["rollback", run_id_of(fixed)], home)
    assert back.returncode == 0, back.stderr
    assert conf.read_bytes() == broken
    assert meta(conf)[0] == 0o644


def test_fix_action_help_shows_only_that_actions_options():
    """``fix ACTION --help`` lists the options ACTION declares (engine/actions/params.py)
    and none that only another action declares."""
    host = {name: a for name, a in actions().items()
            if a.runs_on == "host" and type(a).__module__.startswith("engine.actions.")}
    declared = {name: {p.option for p in a.params} for name, a in host.items()}
    for name in host:
        result = subprocess.run([sys.executable, BIN, "fix", name, "--help"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        shown = set(re.findall(r"^\s+(--[a-z][a-z-]*)", result.stdout, re.M))
        assert declared[name] <= shown, name
        others = set().union(*(d for n, d in declared.items() if n != name)) - declared[name]
        assert not shown & others, (name, shown & others)
