"""Tests of the dev tooling: the private cluster, Odoo discovery, the counting.

The cluster tests start a real PostgreSQL (a few seconds); the Odoo test runs
the real Odoo launcher when ``ODOO_BIN`` is set (``make test`` sets it).
"""

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tools import odoo_env
from tools.odoo_env import Condenser, OdooTestCounter, count_static_tests, find_odoo
from tools.pgcluster import PgCluster, PgError, find_bindir
from tools.testrun import count_junit

HEAD = "2026-01-01 10:00:00,000 42"
T = "odoo.addons.auto_heal.tests.test_scan"


def _psql(cluster, sql, **env):
    return subprocess.run(
        [os.path.join(cluster.bindir, "psql"), "-X", "-A", "-t", "-c", sql],
        env={**os.environ, **cluster.env(), **env}, capture_output=True, text=True,
    )


def _postmaster_pid(datadir: Path):
    return int((datadir / "postmaster.pid").read_text().split()[0])


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for init to reap it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _gone(pid: int, timeout: float = 10) -> bool:
    """True once ``pid`` has exited: pg_ctl -w returns when the pid file is
    removed, a moment before the postmaster process is gone."""
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_temporary_cluster_role_password_restart_and_cleanup():
    with PgCluster() as pg:
        base, data = pg.base, pg.datadir
        pid = _postmaster_pid(data)
        res = _psql(pg, "select current_user, rolcreatedb, rolsuper from pg_roles "
                        "where rolname = current_user")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "auto_heal|t|f"
        wrong = _psql(pg, "select 1", PGPASSWORD="wrong")
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
        # only 127.0.0.1: nothing listens on the other addresses of this host
        assert "127.0.0.1" in (data / "auto_heal.conf").read_text()

        assert pg.pg_ctl("stop", "-m", "fast").returncode == 0
        assert not pg.is_running() and _gone(pid)
        assert pg.pg_ctl("start", "-w").returncode == 0  # same port, from auto_heal.conf
        assert pg.is_running()
        assert _psql(pg, "select 1").stdout.strip() == "1"
        password = pg.password
        assert pg.pg_ctl("stop", "-m", "immediate").returncode == 0
        pg.start()  # what a fixture does after a test stopped the server
        assert pg.password == password and pg.is_running()
        assert _psql(pg, "select 1").stdout.strip() == "1"
        pid = _postmaster_pid(data)
    assert not base.exists()
    assert _gone(pid)


def test_persistent_cluster_keeps_data_and_password():
    parent = Path(tempfile.mkdtemp(prefix="auto_heal-pgtest-"))
    parent.chmod(0o755)  # the postgres OS user must reach the folder
    try:
        with PgCluster(datadir=parent / "pg", keep=True) as pg:
            pg.psql("CREATE DATABASE kept")
            password, pid = pg.password, _postmaster_pid(pg.datadir)
        assert _gone(pid) and (parent / "pg" / "data" / "PG_VERSION").exists()
        with PgCluster(datadir=parent / "pg", keep=True) as pg:
            assert pg.password == password
            assert pg.database_exists("kept")
            assert _psql(pg, "select 1").stdout.strip() == "1"
            pg.drop_database("kept")
            assert not pg.database_exists("kept")
    finally:
        subprocess.run(["rm", "-rf", str(parent)], check=True)


def test_bad_bindir_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AUTO_HEAL_PG_BINDIR", "/nonexistent")
    with pytest.raises(PgError, match="AUTO_HEAL_PG_BINDIR=/nonexistent holds no initdb"):
        find_bindir()


def test_find_odoo_rejects_what_is_not_odoo_18(monkeypatch):
    reasons = []
    monkeypatch.setenv("ODOO_BIN", "/nonexistent/odoo")
    assert find_odoo(reasons) is None
    assert reasons == ["ODOO_BIN=/nonexistent/odoo: no executable file at /nonexistent/odoo"]
    reasons = []
    monkeypatch.setenv("ODOO_BIN", "/bin/echo")  # runs, but prints no 18.0
    assert find_odoo(reasons) is None
    assert "not 18.0" in reasons[0]


@pytest.mark.skipif(not os.environ.get("ODOO_BIN"), reason="no Odoo 18 (ODOO_BIN is empty)")
def test_odoo_addons_path_from_the_real_odoo():
    path = odoo_env.odoo_addons_path(os.environ["ODOO_BIN"])
    assert any(os.path.isdir(os.path.join(p, "base")) for p in path.split(","))
    # testrun exported Odoo's path plus the folder with the auto_heal symlink
    exported = os.environ["AUTO_HEAL_ODOO_ADDONS_PATH"].split(",")
    assert exported[:-1] == path.split(",")
    assert Path(exported[-1], "auto_heal", "__manifest__.py").is_file()


def test_addons_dir_links_the_repository(tmp_path):
    folder = Path(odoo_env.addons_dir_with_auto_heal(tmp_path / "addons"))
    assert (folder / "auto_heal").resolve() == odoo_env.REPO_ROOT
    assert odoo_env.addons_dir_with_auto_heal(folder) == str(folder)  # idempotent


def test_counter_subtests_setupclass_errors_and_skips():
    # lines as Odoo 18 writes them, trailing space included
    c = OdooTestCounter()
    for line in [
        f"{HEAD} INFO db {T}: Starting TestScan.test_ok ... ",
        f"{HEAD} INFO db {T}: Starting TestScan.test_sub ... ",
        f"{HEAD} INFO db {T}: " + "=" * 70 + " ",
        f"{HEAD} ERROR db {T}: FAIL: Subtest TestScan.test_sub (i=1)",
        "Traceback (most recent call last):",
        f"{HEAD} ERROR db {T}: FAIL: Subtest TestScan.test_sub (i=2)",
        f"{HEAD} INFO db {T}: Starting TestScan.test_skip ... ",
        f"{HEAD} INFO db {T}: skipped TestScan.test_skip : no wkhtmltopdf ",
        f"{HEAD} ERROR db odoo.tests.suite: ERROR: setUpClass ({T}.TestOther)",
        f"{HEAD} ERROR db odoo.modules.loading: Module auto_heal: 2 failures, 1 errors of 3 tests ",
        f"{HEAD} ERROR db odoo.addons.base.tests.test_x: FAIL: TestX.test_y",
        f"{HEAD} INFO db odoo.addons.base.tests.test_x: Starting TestX.test_y ... ",
    ]:
        c.feed(line)
    assert (c.passed, c.failed, c.skipped) == (1, 2, 1)


def test_condenser_keeps_problems_and_our_tests(capsys):
    import io

    out = io.StringIO()
    cond = Condenser(out=out, prefix="")
    for line in [
        f"{HEAD} INFO db odoo.modules.loading: loading 24 modules...",
        "noise that belongs to the INFO record",
        f"{HEAD} ERROR db odoo.sql_db: bad query",
        "Traceback (most recent call last):",
        f"{HEAD} INFO db {T}: Starting TestScan.test_ok ...",
    ]:
        cond.feed(line)
    assert out.getvalue().splitlines() == [
        "ERROR odoo.sql_db: bad query",
        "Traceback (most recent call last):",
        "INFO auto_heal.tests.test_scan: Starting TestScan.test_ok ...",
    ]


def test_count_junit_errors_count_as_failures(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="a" name="ok"/>'
        '<testcase classname="a" name="bad"><failure message="x"/></testcase>'
        '<testcase classname="a" name="teardown"><error message="x"/></testcase>'
        '<testcase classname="a" name="s"><skipped message="x"/></testcase>'
        '<testcase classname="" name="engine.tests.test_x"><error message="collect"/></testcase>'
        "</testsuite></testsuites>"
    )
    counts = count_junit(xml)
    assert (counts.passed, counts.failed, counts.skipped) == (1, 3, 1)


def test_count_static_tests(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text(
        "class T:\n    def test_one(self):\n        pass\n\n    def helper(self):\n"
        "        pass\n\n    async def test_two(self):\n        pass\n"
    )
    (tmp_path / "tests" / "common.py").write_text("def test_not_counted(): pass\n")
    assert count_static_tests(tmp_path) == 2
