"""restart_service through the runner: a real PostgreSQL cluster, real processes.

PostgreSQL is a private cluster (:class:`tools.pgcluster.PgCluster`), stopped
with pg_ctl and brought back by the action; Odoo is stood in for by a real
HTTP process that a configured argv list starts, answering ``/web/health``
only after a delay, so the probe has to poll.
"""

import json
import os
import signal
import socket
import sys
import time

import pytest

from engine.actions import ActionError, Context, get_action
from engine.actions.runner import execute, rollback_run
from engine.audit import AuditLog
from engine.budget import BudgetPolicy
from engine.health import check_postgres
from tools import fake_odoo
from tools.testing import start_private_cluster

ACTION = "restart_service"


@pytest.fixture(scope="module")
def pg():
    cluster = start_private_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def context(tmp_path):
    return Context(actor="test", audit=AuditLog(str(tmp_path / "audit.jsonl")),
                   backup_dir=str(tmp_path / "backups"), timeout=60)


def pg_params(pg, **extra):
    return {"service": "postgresql", "via": "pg_ctl", "datadir": str(pg.datadir),
            "pg_ctl": os.path.join(pg.bindir, "pg_ctl"), "pg_log": str(pg.logfile),
            "dsn": pg.dsn, "timeout": 60, **extra}


def postmaster_pid(pg):
    try:
        with open(pg.datadir / "postmaster.pid") as fh:
            return int(fh.readline())
    except FileNotFoundError:
        return None


def test_stopped_postgres_is_started_and_verified_by_a_connection(pg, context):
    assert pg.pg_ctl("stop", "-m", "fast", "-w").returncode == 0
    assert check_postgres(pg.dsn, timeout=2).status == "critical"

    planned = execute(ACTION, context, pg_params(pg), dry_run=True)
    assert planned.state == "planned", planned.error
    plan = planned.plan
    assert plan["reversible"] is False
    assert plan["target"] == f"postgresql via pg_ctl: {os.path.realpath(pg.datadir)}"
    assert plan["details"]["argv"][-1] == "start"  # stopped: start, not restart
    assert "pg_ctl status: stopped" in plan["steps"]
    assert "a restart cannot be undone: there is no rollback" in plan["steps"]
    assert any(s.startswith("run: ") and f"-D {pg.datadir}" in s for s in plan["steps"])
    assert pg.password not in json.dumps(plan["steps"])  # the DSN is shown masked
    if os.geteuid() == 0:
        assert plan["details"]["argv"][:4] == ["runuser", "-u", "postgres", "--"]

    record = execute(ACTION, context, pg_params(pg))
    assert record.state == "done", (record.error, record.output)
    assert record.backup["probe_before"]["status"] == "critical"
    assert record.backup["pg_ctl_status_before"]["code"] == 3
    assert "verified: " in record.output and "PostgreSQL" in record.output
    assert check_postgres(pg.dsn, timeout=5).status == "ok"
    assert pg.psql("SELECT 41 + 1") == "42"


def test_running_postgres_is_restarted(pg, context):
    before = postmaster_pid(pg)
    assert before
    record = execute(ACTION, context, pg_params(pg))
    assert record.state == "done", record.error
    assert record.plan["details"]["argv"][-1] == "restart"
    after = postmaster_pid(pg)
    assert after and after != before  # a new postmaster
    assert check_postgres(pg.dsn).status == "ok"


def test_if_down_on_a_healthy_server_changes_nothing(pg, context):
    before = postmaster_pid(pg)
    record = execute(ACTION, context, pg_params(pg, if_down=True))
    assert record.state == "noop"
    assert postmaster_pid(pg) == before


def test_budget_refuses_and_escalates_without_restarting(pg, context):
    before = postmaster_pid(pg)
    now = time.time()
    record = execute(ACTION, context, pg_params(pg), budget=BudgetPolicy(max_runs=3),
                     history=[now - 900, now - 600, now - 60], now=now)
    assert (record.state, record.escalate) == ("refused", True)
    assert "budget used up: 3 runs within 30 min" in record.error
    assert postmaster_pid(pg) == before
    soon = execute(ACTION, context, pg_params(pg), budget=BudgetPolicy(first_delay=30),
                   history=[now - 5], now=now)
    assert (soon.state, soon.escalate) == ("refused", False)
    assert soon.error.startswith("too soon")
    assert postmaster_pid(pg) == before


def test_restart_cannot_be_rolled_back(pg, context):
    record = execute(ACTION, context, pg_params(pg))
    assert record.state == "done"
    with pytest.raises(ActionError, match="cannot be rolled back"):
        rollback_run(record, context)
    assert check_postgres(pg.dsn).status == "ok"


def test_probe_that_never_answers_fails_and_escalates(pg, context, tmp_path):
    """A command that 'restarts' nothing: verify times out, rollback is impossible."""
    dead = "host=127.0.0.1 port=%d user=x password=Sekr3t dbname=postgres" % _free_port()
    record = execute(ACTION, context, {
        "service": "postgresql", "via": "command", "command": ["/bin/true"],
        "dsn": dead, "timeout": 2})
    assert record.state == "failed"
    assert record.escalate
    assert "verification failed: no answer within 2s" in record.error
    assert "cannot be undone" in record.error
    assert "Sekr3t" not in record.error + record.output


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A stand-in for an Odoo server that a restart command starts in the background
# (tools/fake_odoo.py --daemon): it waits a little (Odoo loads its registry), then answers.


def test_odoo_restart_by_command_is_polled_until_it_answers(tmp_path, context):
    port = _free_port()
    pidfile = tmp_path / "odoo.pid"
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, fake_odoo.SCRIPT, "--daemon", "--port", str(port), "--pidfile",
               str(pidfile), "--mode", "silent:1.5"]
    params = {"service": "odoo", "via": "command", "command": json.dumps(command),
              "url": url, "timeout": 30}
    try:
        planned = execute(ACTION, context, params, dry_run=True)
        assert planned.plan["steps"][0].startswith("now: odoo probe critical")
        assert "run: " + " ".join(command) in planned.plan["steps"]
        record = execute(ACTION, context, params)
        assert record.state == "done", record.error
        assert "HTTP 200" in record.output
        attempts = int(record.output.split("(attempt ")[1].split(",")[0])
        assert attempts > 1  # it was down at first: the probe polled
        again = execute(ACTION, context, dict(params, if_down=True))
        assert again.state == "noop"
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


def test_command_must_be_an_argv_list(context):
    record = execute(ACTION, context, {"service": "odoo", "via": "command",
                                       "command": "systemctl restart odoo; rm -rf /",
                                       "url": "http://127.0.0.1:9"})
    assert record.state == "blocked"
    assert "not a shell string" in record.error


@pytest.mark.parametrize("via,extra,what", [
    ("systemd", {"unit": "odoo.service"}, "systemctl restart odoo.service"),
    ("docker", {"container": "odoo"}, "docker restart odoo"),
    ("pg_ctlcluster", {"cluster": "15/auto_heal_nope"}, "pg_ctlcluster 15 auto_heal_nope restart"),
])
def test_preconditions_are_measured_before_anything_runs(context, via, extra, what):
    """On this host systemd and the docker daemon may be missing: then the plan
    says so and nothing runs; where they exist, the unit/container must exist."""
    service = "postgresql" if via == "pg_ctlcluster" else "odoo"
    probe = {"dsn": "host=127.0.0.1 port=%d dbname=x" % _free_port()} if service == \
        "postgresql" else {"url": "http://127.0.0.1:%d" % _free_port()}
    record = execute(ACTION, context, {"service": service, "via": via, **extra, **probe})
    steps = record.plan["steps"]
    assert f"run: {what}" in steps
    failed = [p for p in record.plan["preconditions"] if not p["ok"]]
    if via == "systemd" and not os.path.isdir("/run/systemd/system"):
        assert any(p["description"] == "systemd runs this host" for p in failed)
    # the unit, container or cluster do not exist: blocked, never run
    assert record.state == "blocked", record.output
    assert not record.output


def test_missing_probe_and_bad_pairs_are_refused(context):
    for params, message in [
        ({"service": "postgresql", "via": "pg_ctl", "datadir": "/x"}, "needs dsn"),
        ({"service": "odoo", "via": "systemd", "unit": "odoo"}, "needs url"),
        ({"service": "odoo", "via": "pg_ctl", "datadir": "/x", "url": "http://h"},
         "restarts PostgreSQL"),
        ({"service": "mysql", "via": "systemd"}, "service: must be one of"),
    ]:
        record = execute(ACTION, context, params)
        assert record.state == "blocked" and message in record.error, record.error
    record = execute(ACTION, context, {})
    assert record.state == "blocked" and "needs service, via" in record.error
    assert get_action(ACTION).reversible is False
