"""Helpers for the host tests that run a real Odoo 18 on the private cluster.

``make test`` exports ``ODOO_BIN``, ``AUTO_HEAL_PGHOST``/``PORT``/``USER``/
``PASSWORD`` and ``AUTO_HEAL_ODOO_ADDONS_PATH``; without them these tests
skip (:data:`needs_real_odoo`). The password reaches Odoo through
``PGPASSWORD`` (:func:`odoo_env`), never on an argv.
"""

import os
import time
import urllib.request

import pytest

from host.tests.watchdog_helpers import free_port  # noqa: F401 - shared here

ODOO_BIN = os.environ.get("ODOO_BIN", "").strip()
PGHOST = os.environ.get("AUTO_HEAL_PGHOST", "").strip()
ODOO_TIMEOUT = 1200

needs_real_odoo = pytest.mark.skipif(
    not ODOO_BIN or not PGHOST,
    reason="needs a real Odoo 18 (ODOO_BIN) and PostgreSQL (AUTO_HEAL_PGHOST); "
    "`make test` sets both",
)


def pg():
    return {"host": PGHOST, "port": os.environ.get("AUTO_HEAL_PGPORT", "5432"),
            "user": os.environ.get("AUTO_HEAL_PGUSER", "odoo"),
            "password": os.environ.get("AUTO_HEAL_PGPASSWORD", "")}


def odoo_env(**extra):
    """The environment for an Odoo process: the password via PGPASSWORD."""
    return dict(os.environ, PGPASSWORD=pg()["password"], **extra)


def connect(dbname):
    psycopg2 = pytest.importorskip("psycopg2")
    params = pg()
    return psycopg2.connect(host=params["host"], port=params["port"], user=params["user"],
                            password=params["password"], dbname=dbname, connect_timeout=10)


def query(dbname, sql, args=()):
    conn = connect(dbname)
    try:
        with conn.cursor() as cr:
            cr.execute(sql, args)
            return cr.fetchall()
    finally:
        conn.close()


def drop_database(name):
    conn = connect("postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cr:
            cr.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    finally:
        conn.close()


def addons_path(tmp_path, *extra):
    """Odoo's addons path with auto_heal, plus *extra* folders."""
    configured = os.environ.get("AUTO_HEAL_ODOO_ADDONS_PATH", "").strip()
    if not configured:
        from tools.odoo_env import addons_dir_with_auto_heal, odoo_addons_path

        configured = "%s,%s" % (odoo_addons_path(ODOO_BIN),
                                addons_dir_with_auto_heal(tmp_path / "link"))
    return ",".join([configured, *map(str, extra)])


def odoo_args(addons, dbname, data_dir, logfile, port):
    """Command-line options for an Odoo bound to loopback, no cron threads."""
    params = pg()
    return [f"--addons-path={addons}", "-d", dbname, f"--db-filter=^{dbname}$",
            "--db_host", params["host"], "--db_port", str(params["port"]),
            "--db_user", params["user"], "--data-dir", str(data_dir),
            "--logfile", str(logfile), "--http-interface", "127.0.0.1",
            "--http-port", str(port), "--max-cron-threads", "0", "--workers", "0",
            "--without-demo=all"]


def tail(path, size=3000):
    try:
        with open(path, errors="replace") as handle:
            return handle.read()[-size:]
    except OSError:
        return ""


def wait_for_health(url, proc, logfile, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"Odoo exited with {proc.returncode}: {tail(logfile)}")
        try:
            with urllib.request.urlopen(url + "/web/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"Odoo did not answer /web/health within {timeout}s: {tail(logfile)}")
