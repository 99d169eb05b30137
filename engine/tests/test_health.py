import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from engine import health
from engine.health import CRITICAL, OK, WARNING
from tools import fake_odoo

# Odoo's /web/health in its own process (tools/fake_odoo.py): 200 {"status": "pass"};
# with db_server_status=1, 500 when the database is down, 200 when it is up.


@pytest.fixture
def health_server(request):
    procs = []

    def start(mode):
        proc, url = fake_odoo.start("--db-status", mode.removeprefix("db-"))
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_odoo_up_but_database_down(health_server):
    url = health_server("db-down")
    http, db = health.check_odoo_http(url, timeout=5)
    assert (http.name, http.status, http.value) == ("odoo_http", OK, 200)
    assert (db.name, db.status, db.value) == ("odoo_db", CRITICAL, 500)
    assert "db_server_status=1: HTTP 500" in db.message
    assert health.overall([http, db]) == CRITICAL


def test_odoo_and_database_up(health_server):
    url = health_server("db-up")
    checks = health.check_odoo_http(url + "/", timeout=5)
    assert [(c.status, c.value) for c in checks] == [(OK, 200), (OK, 200)]
    assert "db_server_status=True" in checks[1].message


def test_odoo_down():
    url = "http://127.0.0.1:%d" % free_port()
    checks = health.check_odoo_http(url, timeout=2)
    assert [c.status for c in checks] == [CRITICAL, CRITICAL]
    assert "connection failed (Connection refused)" in checks[0].message


@pytest.mark.parametrize("without_requests", [False, True])
def test_an_endless_answer_is_read_only_up_to_its_bound(without_requests):
    """A /web/health that never stops sending: the probe reads MAX_BODY bytes and returns."""
    import http.server
    import threading

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b" " * 65536)
            except OSError:
                pass  # the probe hung up: what the test wants

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % server.server_address[1]
    code = (
        "import sys\n"
        "if %r: sys.modules['requests'] = None\n"
        "sys.path.insert(0, %r)\n"
        "from engine.health import check_odoo_http\n"
        "print([c.status for c in check_odoo_http(%r, timeout=5)])\n"
    ) % (without_requests, os.getcwd(), url)
    try:
        # unbounded, the probe would read for ever: the child is given 60 s to answer
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
    finally:
        server.shutdown()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['ok', 'ok']"


def test_http_probe_without_requests(health_server):
    """The watchdog may run on a bare Python: the stdlib fallback gives the same checks."""
    url = health_server("db-down")
    code = (
        "import sys; sys.modules['requests'] = None; sys.path.insert(0, %r)\n"
        "from engine.health import check_odoo_http\n"
        "print([(c.status, c.value) for c in check_odoo_http(%r)])\n"
    ) % (os.getcwd(), url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[('ok', 200), ('critical', 500)]"


def test_postgres_nobody_listening_is_critical_and_masked():
    dsn = "postgresql://odoo:Sup3rS3cret@127.0.0.1:%d/postgres" % free_port()
    check = health.check_postgres(dsn, timeout=2)
    assert check.status == CRITICAL
    assert "Sup3rS3cret" not in check.message
    assert "postgresql://odoo:***@127.0.0.1" in check.message
    kv = "host=127.0.0.1 port=%d user=odoo password=Sup3rS3cret dbname=postgres" % free_port()
    check = health.check_postgres(kv, timeout=2)
    assert check.status == CRITICAL and "Sup3rS3cret" not in check.message
    assert "password=***" in check.message


def test_postgres_without_driver_is_a_critical_check_not_a_crash():
    code = (
        "import sys; sys.modules['psycopg2'] = None; sys.path.insert(0, %r)\n"
        "from engine.health import check_postgres\n"
        "c = check_postgres('postgresql://u:pw@localhost/x'); print(c.status, '|', c.message)\n"
    ) % os.getcwd()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "critical | python package 'psycopg2' is not installed; cannot probe postgresql://u:***@localhost/x"
    )


@pytest.mark.skipif(
    not os.environ.get("AUTO_HEAL_PGHOST"), reason="no test PostgreSQL (AUTO_HEAL_PGHOST)"
)
def test_postgres_real_server_ok():
    dsn = "host=%s port=%s user=%s password=%s dbname=postgres" % (
        os.environ["AUTO_HEAL_PGHOST"],
        os.environ.get("AUTO_HEAL_PGPORT", "5432"),
        os.environ.get("AUTO_HEAL_PGUSER", "postgres"),
        os.environ.get("AUTO_HEAL_PGPASSWORD", ""),
    )
    check = health.check_postgres(dsn)
    assert check.status == OK, check.message
    assert check.value >= 0 and "PostgreSQL" in check.message


def test_disk_thresholds(tmp_path):
    usage = shutil.disk_usage(tmp_path)
    free = 100.0 * usage.free / usage.total
    assert health.check_disk(str(tmp_path), warn_percent=0, crit_percent=0).status == OK
    c = health.check_disk(str(tmp_path), warn_percent=min(100, free + 1), crit_percent=0)
    assert c.status == WARNING and abs(c.value - free) < 1
    assert (
        health.check_disk(str(tmp_path), warn_percent=100, crit_percent=min(100, free + 1)).status
        == CRITICAL
    )
    missing = health.check_disk(str(tmp_path / "nope"))
    assert missing.status == CRITICAL and "No such file" in missing.message


def test_log_freshness(tmp_path):
    log = tmp_path / "odoo.log"
    log.write_text("x\n")
    assert health.check_log_freshness(str(log), 60, 120).status == OK
    os.utime(log, (time.time() - 90, time.time() - 90))
    c = health.check_log_freshness(str(log), 60, 120)
    assert c.status == WARNING and 89 <= c.value <= 100
    os.utime(log, (time.time() - 500, time.time() - 500))
    assert health.check_log_freshness(str(log), 60, 120).status == CRITICAL
    assert health.check_log_freshness(str(tmp_path / "gone.log")).status == CRITICAL


def test_overall_and_exit_codes():
    assert health.overall([]) == OK
    assert health.exit_code(health.overall([health.CheckResult("a", OK, 1, 1, "")])) == 0
    with pytest.raises(ValueError):
        health.CheckResult("a", "bad", 1, 1, "")
