"""Database checks against a real PostgreSQL, on real states the tests create.

Needs ``AUTO_HEAL_PGHOST`` (and ``AUTO_HEAL_PGPORT``, ``AUTO_HEAL_PGUSER``,
``AUTO_HEAL_PGPASSWORD``) for a role with CREATEDB: ``make test`` starts a
private cluster and exports them. Each module run creates throwaway
databases with a minimal Odoo 18 schema (the ir_cron, ir_cron_progress,
ir_cron_trigger, ir_module_module, ir_attachment and queue_job columns the
checks read) and drops them at the end.

The states are made the way Odoo makes them: a cron is switched off with the
UPDATEs of Odoo 18's ``_update_failure_count`` and ``_reschedule_later``, a
running cron holds the lock of Odoo's ``_acquire_one_job`` query from another
connection, sessions idle, sleep, wait for locks and deadlock for real.
"""

import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from engine import checks
from engine.checks import CHECKS, CRITICAL, OK, WARNING, run_checks, to_findings
from engine.checks.filestore import check_filestore_not_writable
from engine.checks.postgres_stats import growth_per_day
from engine.patterns import load_patterns
from engine.scanner import DEFAULT_PATTERNS, REPO_ROOT
from tools.testing import run_as

psycopg2 = pytest.importorskip("psycopg2")

PGHOST = os.environ.get("AUTO_HEAL_PGHOST", "").strip()
needs_pg = pytest.mark.skipif(not PGHOST, reason="no test PostgreSQL (AUTO_HEAL_PGHOST)")

NOW = "(now() AT TIME ZONE 'UTC')"

SCHEMA = """
CREATE TABLE ir_cron (
    id serial PRIMARY KEY,
    ir_actions_server_id integer NOT NULL DEFAULT 1,
    cron_name varchar,
    user_id integer NOT NULL DEFAULT 1,
    active boolean DEFAULT true,
    interval_number integer NOT NULL DEFAULT 1,
    interval_type varchar NOT NULL DEFAULT 'hours',
    nextcall timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    lastcall timestamp,
    priority integer DEFAULT 5,
    failure_count integer DEFAULT 0,
    first_failure_date timestamp,
    create_date timestamp DEFAULT (now() AT TIME ZONE 'UTC'),
    write_date timestamp DEFAULT (now() AT TIME ZONE 'UTC'));
CREATE TABLE ir_cron_trigger (
    id serial PRIMARY KEY,
    cron_id integer REFERENCES ir_cron(id) ON DELETE SET NULL,
    call_at timestamp);
CREATE INDEX ON ir_cron_trigger (cron_id);
CREATE TABLE ir_cron_progress (
    id serial PRIMARY KEY,
    cron_id integer NOT NULL REFERENCES ir_cron(id) ON DELETE CASCADE,
    remaining integer DEFAULT 0,
    done integer DEFAULT 0,
    deactivate boolean,
    timed_out_counter integer DEFAULT 0,
    create_date timestamp DEFAULT (now() AT TIME ZONE 'UTC'),
    write_date timestamp DEFAULT (now() AT TIME ZONE 'UTC'));
CREATE INDEX ON ir_cron_progress (cron_id);
CREATE TABLE ir_module_module (
    id serial PRIMARY KEY,
    name varchar NOT NULL UNIQUE,
    state varchar,
    latest_version varchar,
    write_date timestamp DEFAULT (now() AT TIME ZONE 'UTC'));
CREATE INDEX ON ir_module_module (state);
CREATE TABLE ir_attachment (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    res_model varchar,
    res_field varchar,
    res_id integer,
    type varchar NOT NULL DEFAULT 'binary',
    store_fname varchar,
    db_datas bytea,
    file_size integer,
    checksum varchar(40),
    mimetype varchar,
    create_date timestamp DEFAULT (now() AT TIME ZONE 'UTC'));
CREATE INDEX ON ir_attachment (store_fname);
CREATE TABLE res_partner (id serial PRIMARY KEY, name varchar);
"""

QUEUE_JOB = """
CREATE TABLE queue_job (
    id serial PRIMARY KEY,
    uuid varchar NOT NULL UNIQUE,
    name varchar,
    state varchar NOT NULL,
    channel varchar,
    date_created timestamp,
    date_enqueued timestamp,
    date_started timestamp,
    date_done timestamp);
CREATE INDEX ON queue_job (state);
"""

#: Odoo 18's ir_cron._acquire_one_job, as its cron worker runs it.
ODOO_ACQUIRE = """
    WITH last_cron_progress AS (
        SELECT id as progress_id, cron_id, timed_out_counter, done, remaining
        FROM ir_cron_progress
        WHERE cron_id = %s
        ORDER BY id DESC
        LIMIT 1
    )
    SELECT *
    FROM ir_cron
    LEFT JOIN last_cron_progress lcp ON lcp.cron_id = ir_cron.id
    WHERE ir_cron.active = true
      AND (nextcall <= (now() at time zone 'UTC')
        OR EXISTS (
            SELECT cron_id
            FROM ir_cron_trigger
            WHERE call_at <= (now() at time zone 'UTC')
              AND cron_id = ir_cron.id
        )
      )
      AND id = %s
    ORDER BY priority
    FOR NO KEY UPDATE SKIP LOCKED
"""

#: Thresholds low enough for states a test can wait for.
FAST = {
    "idle_in_transaction_warn_minutes": 1 / 60,  # 1 s
    "long_query_warn_minutes": 1 / 60,
    "blocked_warn_seconds": 1,
    "cron_stuck_minutes": 1 / 60,
    "cron_stuck_crit_factor": 100000,  # stays a warning however slow the machine
    "connections_warn_percent": 0.1,
    "autovacuum_min_dead_tuples": 1000,
    "filestore_missing_crit_percent": 10,
}


def _params(dbname="postgres"):
    return {
        "host": PGHOST,
        "port": os.environ.get("AUTO_HEAL_PGPORT", "5432"),
        "user": os.environ.get("AUTO_HEAL_PGUSER", "postgres"),
        "password": os.environ.get("AUTO_HEAL_PGPASSWORD", ""),
        "dbname": dbname,
        "connect_timeout": 10,
    }


class Database:
    """A throwaway database and the connections opened on it."""

    def __init__(self, prefix):
        self.name = "%s_%s" % (prefix, secrets.token_hex(4))
        self.connections = []
        self.threads = []
        admin = psycopg2.connect(**_params())
        admin.autocommit = True
        with admin.cursor() as cr:
            cr.execute('CREATE DATABASE "%s"' % self.name)
        admin.close()

    def connect(self, autocommit=False):
        connection = psycopg2.connect(**_params(self.name))
        connection.autocommit = autocommit
        self.connections.append(connection)
        return connection

    def run(self, sql, params=None):
        connection = self.connect(autocommit=True)
        with connection.cursor() as cr:
            cr.execute(sql, params)
            rows = cr.fetchall() if cr.description else None
        connection.close()
        return rows

    def pid(self, connection):
        return connection.info.backend_pid

    def in_thread(self, connection, sql, params=None):
        """Run *sql* on *connection* in a thread (it may block or sleep)."""
        outcome = {}

        def target():
            try:
                with connection.cursor() as cr:
                    cr.execute(sql, params)
                outcome["ok"] = True
            except Exception as exc:  # noqa: BLE001 - cancelled at teardown
                outcome["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.threads.append(thread)
        return outcome

    def wait_for(self, sql, params=None, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.run(sql, params)
            if rows and rows[0][0]:
                return rows[0][0]
            time.sleep(0.1)
        raise AssertionError("timed out waiting for: %s" % sql)

    def close(self):
        admin = psycopg2.connect(**_params())
        admin.autocommit = True
        with admin.cursor() as cr:
            # end every session of the database: sleeping, blocked, idle
            cr.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,))
        for thread in self.threads:
            thread.join(10)
        for connection in self.connections:
            try:
                connection.close()
            except psycopg2.Error:
                pass
        with admin.cursor() as cr:
            cr.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.name)
        admin.close()


def _insert_cron(db, name, **values):
    columns = ["cron_name"] + list(values)
    placeholders = ["%s"] + [values[c] if isinstance(values[c], _Sql) else "%s"
                             for c in values]
    params = [name] + [v for v in values.values() if not isinstance(v, _Sql)]
    return db.run("INSERT INTO ir_cron (%s) VALUES (%s) RETURNING id" % (
        ", ".join(columns), ", ".join(placeholders)), params)[0][0]


def _progress(db, cron_id, last_run, current):
    """Progress rows of a cron: its last run (that long before lastcall), the current one."""
    db.run("INSERT INTO ir_cron_progress (cron_id, create_date) "
           "SELECT id, lastcall - interval '%s' FROM ir_cron WHERE id = %%s" % last_run,
           (cron_id,))
    db.run("INSERT INTO ir_cron_progress (cron_id, create_date) VALUES (%%s, %s)" % current,
           (cron_id,))


class _Sql(str):
    """A SQL expression, not a parameter."""


def ago(interval):
    return _Sql("%s - interval '%s'" % (NOW, interval))


def ahead(interval):
    return _Sql("%s + interval '%s'" % (NOW, interval))


def _make_filestore(base, db, present=50, deleted=3):
    """Attachments with files, some whose file was deleted, some stored in the database."""
    filestore = os.path.join(base, "filestore", db.name)
    os.makedirs(filestore)
    deleted_ids = []
    for index in range(present + deleted):
        sha = secrets.token_hex(20)
        fname = "%s/%s" % (sha[:2], sha)
        os.makedirs(os.path.join(filestore, sha[:2]), exist_ok=True)
        with open(os.path.join(filestore, fname), "wb") as handle:
            handle.write(b"%d" % index)
        attachment = db.run("INSERT INTO ir_attachment (name, res_model, res_id, store_fname, "
                            "file_size, checksum) VALUES (%s, 'res.partner', %s, %s, 2, %s) "
                            "RETURNING id", ("file%d.pdf" % index, index, fname, sha))[0][0]
        if index % 17 == 5 and len(deleted_ids) < deleted:
            os.unlink(os.path.join(filestore, fname))
            deleted_ids.append(attachment)
    db.run("INSERT INTO ir_attachment (name, db_datas) SELECT 'in db ' || g, 'x' "
           "FROM generate_series(1, 5) g")
    return filestore, deleted_ids


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """One database with every problem the checks look for, at once."""
    if not PGHOST:
        pytest.skip("no test PostgreSQL (AUTO_HEAL_PGHOST)")
    db = Database("auto_heal_dbchecks")
    try:
        db.run(SCHEMA + QUEUE_JOB)
        ids = {}
        # -- crons -------------------------------------------------------------
        ids["failing"] = _insert_cron(db, "Failing job", failure_count=2,
                                      first_failure_date=ago("1 hour"),
                                      lastcall=ago("10 minutes"), nextcall=ahead("50 minutes"))
        ids["near_warn"] = _insert_cron(db, "Three failures", failure_count=3,
                                        first_failure_date=ago("1 day"),
                                        lastcall=ago("1 hour"), nextcall=ahead("1 hour"))
        ids["near_crit"] = _insert_cron(db, "Next failure switches it off", failure_count=4,
                                        first_failure_date=ago("8 days"),
                                        lastcall=ago("1 day"), nextcall=ahead("1 hour"))
        # switched off by Odoo: the job was last edited 10 days ago, then a run failed
        # for the 5th time after 7 days; these are Odoo 18's own statements
        ids["off_by_odoo"] = _insert_cron(db, "Switched off by Odoo", failure_count=4,
                                          first_failure_date=ago("8 days"),
                                          nextcall=ago("1 minute"), lastcall=ago("1 day"),
                                          write_date=ago("10 days"))
        db.run("INSERT INTO ir_cron_progress (cron_id, create_date) VALUES (%s, %s)" % (
            ids["off_by_odoo"], ago("2 minutes")))
        db.run("UPDATE ir_cron SET failure_count = %s, first_failure_date = %s, active = %s "
               "WHERE id = %s", (0, None, False, ids["off_by_odoo"]))
        db.run("UPDATE ir_cron SET nextcall = %s, lastcall = %s WHERE id = %%s" % (
            ahead("59 minutes"), NOW), (ids["off_by_odoo"],))
        ids["off_by_hand"] = _insert_cron(db, "Switched off by a person", active=False,
                                          lastcall=ago("2 days"), write_date=_Sql(NOW))
        ids["off_by_itself"] = _insert_cron(db, "Asked to stop (progress API)", active=False,
                                            lastcall=ago("1 hour"), write_date=ago("5 days"))
        db.run("INSERT INTO ir_cron_progress (cron_id, deactivate, create_date) "
               "VALUES (%s, true, %s)" % (ids["off_by_itself"], ago("61 minutes")))
        ids["off_failing"] = _insert_cron(db, "Off while failing", active=False,
                                          failure_count=2, first_failure_date=ago("2 days"),
                                          lastcall=ago("1 day"))
        ids["never_run"] = _insert_cron(db, "Never run", nextcall=ago("3 days"))
        ids["due_idle"] = _insert_cron(db, "Due, not running", nextcall=ago("1 minute"),
                                       lastcall=ago("1 hour"))
        # running (its worker took the lock below); its last run took 50 ms
        ids["stuck"] = _insert_cron(db, "Stuck job", nextcall=ago("2 hours"),
                                    lastcall=ago("1 day"))
        _progress(db, ids["stuck"], last_run="0.05 seconds", current=ago("2 hours"))
        # running, lock shared with a trigger insert (a multixact): no holder to read
        ids["stuck_shared"] = _insert_cron(db, "Stuck job, shared lock",
                                           nextcall=ago("3 hours"), lastcall=ago("1 day"))
        _progress(db, ids["stuck_shared"], last_run="10 seconds", current=ago("3 hours"))
        ids["killed"] = _insert_cron(db, "Killed once", nextcall=ahead("1 hour"),
                                     lastcall=ago("1 day"))
        ids["killed3"] = _insert_cron(db, "Killed three times", nextcall=ahead("1 hour"),
                                      lastcall=ago("1 day"))
        db.run("INSERT INTO ir_cron_progress (cron_id, timed_out_counter, create_date) "
               "VALUES (%s, 1, %s), (%s, 3, %s)" % (ids["killed"], ago("20 minutes"),
                                                    ids["killed3"], ago("20 minutes")))
        db.run("INSERT INTO ir_cron (cron_name, nextcall, lastcall) "
               "SELECT 'healthy ' || g, %s, %s FROM generate_series(1, 30) g" % (
                   ahead("1 hour"), ago("1 hour")))
        # -- modules -----------------------------------------------------------
        db.run("INSERT INTO ir_module_module (name, state, write_date) VALUES "
               "('base', 'installed', %s), ('sale', 'to upgrade', %s), "
               "('stock', 'to install', %s), ('crm', 'to remove', %s)" % (
                   ago("30 days"), ago("1 hour"), ago("3 hours"), NOW))
        # -- attachments, filestore ----------------------------------------------
        base = str(tmp_path_factory.mktemp("odoo-data"))
        filestore, deleted_ids = _make_filestore(base, db)
        # -- queue_job ---------------------------------------------------------
        db.run("INSERT INTO queue_job (uuid, state, channel, date_created, date_enqueued, "
               "date_started) VALUES "
               "('started-old', 'started', 'root.mail', %s, %s, %s), "
               "('enqueued-old', 'enqueued', 'root', %s, %s, NULL), "
               "('enqueued-fresh', 'enqueued', 'root', %s, %s, NULL), "
               "('done', 'done', 'root', %s, %s, %s)" % (
                   ago("3 hours"), ago("3 hours"), ago("2 hours"),
                   ago("1 hour"), ago("1 hour"), NOW, NOW,
                   ago("5 hours"), ago("5 hours"), ago("5 hours")))
        db.run("INSERT INTO res_partner (name) VALUES ('Azure'), ('Deco')")
        # -- sessions ------------------------------------------------------------
        sessions = {}
        idle = db.connect()
        with idle.cursor() as cr:
            cr.execute("SELECT count(*) FROM ir_cron")
        sessions["idle"] = db.pid(idle)
        worker = db.connect()  # an Odoo cron worker running the stuck job
        with worker.cursor() as cr:
            cr.execute(ODOO_ACQUIRE, (ids["stuck"], ids["stuck"]))
            assert cr.fetchone() is not None
        sessions["worker"] = db.pid(worker)
        worker2 = db.connect()
        with worker2.cursor() as cr:
            cr.execute(ODOO_ACQUIRE, (ids["stuck_shared"], ids["stuck_shared"]))
            assert cr.fetchone() is not None
        trigger = db.connect()  # a _trigger() in an open transaction: FK KEY SHARE lock
        with trigger.cursor() as cr:
            cr.execute("INSERT INTO ir_cron_trigger (cron_id, call_at) VALUES (%s, %s)" % (
                ids["stuck_shared"], NOW))
        sessions["trigger"] = db.pid(trigger)
        sleeper = db.connect()
        sessions["sleeper"] = db.pid(sleeper)
        db.in_thread(sleeper, "SELECT pg_sleep(120)")
        blocker = db.connect()
        with blocker.cursor() as cr:
            cr.execute("UPDATE res_partner SET name = 'Azure Interior' WHERE id = 1")
        sessions["blocker"] = db.pid(blocker)
        waiter = db.connect()
        sessions["waiter"] = db.pid(waiter)
        db.in_thread(waiter, "UPDATE res_partner SET name = 'Azure 2' WHERE id = 1")
        db.wait_for("SELECT count(*) FROM pg_stat_activity WHERE pid = %s "
                    "AND wait_event_type = 'Lock'", (sessions["waiter"],))
        db.wait_for("SELECT count(*) FROM pg_stat_activity WHERE pid = %s "
                    "AND wait_event = 'PgSleep'", (sessions["sleeper"],))
        time.sleep(1.5)  # past the 1 s thresholds of FAST
        checker = db.connect()
        settings = dict(FAST, filestore_path=filestore)
        with checker.cursor() as cr:
            run = run_checks(cr, settings=settings)
        yield {"db": db, "ids": ids, "sessions": sessions, "run": run, "settings": settings,
               "filestore": filestore, "deleted_ids": deleted_ids, "checker": checker,
               "base": base}
    finally:
        db.close()


def results_of(run, check):
    return [r for r in run.results if r.check == check]


def by_subject(run, check):
    return {r.subject: r for r in results_of(run, check)}


@needs_pg
def test_every_check_ran_without_error(scenario):
    run = scenario["run"]
    assert run.errors == []
    assert {r.check for r in run.results} == set(CHECKS)
    assert set(run.stats["checks"]) == set(CHECKS)


@needs_pg
def test_cron_failing(scenario):
    ids, found = scenario["ids"], by_subject(scenario["run"], "cron_failing")
    assert set(found) == {"cron:%d" % ids[k] for k in ("failing", "near_warn", "near_crit")}
    failing = found["cron:%d" % ids["failing"]]
    assert (failing.status, failing.value) == (WARNING, 2)
    assert failing.message.startswith("Cron 'Failing job' (id %d) failed 2 time(s)"
                                      % ids["failing"])
    assert failing.details["cron_id"] == ids["failing"]


@needs_pg
def test_cron_about_to_be_switched_off(scenario):
    ids, found = scenario["ids"], by_subject(scenario["run"], "cron_near_deactivation")
    assert set(found) == {"cron:%d" % ids["near_warn"], "cron:%d" % ids["near_crit"]}
    warn, crit = found["cron:%d" % ids["near_warn"]], found["cron:%d" % ids["near_crit"]]
    assert (warn.status, warn.value, warn.details["failures_left"]) == (WARNING, 3, 2)
    assert (crit.status, crit.value, crit.details["failures_left"]) == (CRITICAL, 4, 1)
    assert "its next failure" in crit.message and "will switch it off" in crit.message


@needs_pg
def test_cron_switched_off(scenario):
    ids, found = scenario["ids"], by_subject(scenario["run"], "cron_switched_off")
    # not the one a person switched off, nor the one that asked to stop
    assert set(found) == {"cron:%d" % ids["off_by_odoo"], "cron:%d" % ids["off_failing"]}
    by_odoo = found["cron:%d" % ids["off_by_odoo"]]
    assert by_odoo.details["reason"] == "deactivated_by_odoo"
    assert "switched off by Odoo after 5 failures over 7 days" in by_odoo.message
    assert found["cron:%d" % ids["off_failing"]].details["reason"] == "failing"


@needs_pg
def test_cron_stuck_running_and_killed(scenario):
    ids, sessions = scenario["ids"], scenario["sessions"]
    found = by_subject(scenario["run"], "cron_stuck")
    assert set(found) == {"cron:%d" % ids[k]
                          for k in ("stuck", "stuck_shared", "killed", "killed3")}
    stuck = found["cron:%d" % ids["stuck"]]
    # the holder's transaction started when the test took the lock, a few seconds ago
    assert stuck.status == WARNING and stuck.details["reason"] == "running"
    assert stuck.details["measured_from"] == "lock holder's transaction"
    assert stuck.details["holder_pid"] == sessions["worker"]
    assert 1 <= stuck.value < 120
    assert stuck.details["last_duration"] == pytest.approx(0.05)
    shared = found["cron:%d" % ids["stuck_shared"]]
    # xmax is a multixact (worker lock + the trigger's key share): progress tells the start
    assert shared.details["measured_from"] == "ir_cron_progress"
    assert shared.value == pytest.approx(3 * 3600, abs=120)
    assert shared.details["holder_pid"] is None
    killed, killed3 = found["cron:%d" % ids["killed"]], found["cron:%d" % ids["killed3"]]
    assert (killed.status, killed.value, killed.details["reason"]) == (WARNING, 1, "killed")
    assert (killed3.status, killed3.value) == (CRITICAL, 3)
    # counters remember since when each running cron holds its lock
    assert set(scenario["run"].counters["cron_locked_since"]) == {
        str(ids["stuck"]), str(ids["stuck_shared"])}


@needs_pg
def test_cron_lock_probe_released_and_caller_transaction_kept(scenario):
    """The probe locked the due, idle crons for a moment: they are free again at once."""
    db, ids, checker = scenario["db"], scenario["ids"], scenario["checker"]
    assert checker.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    other = db.connect()
    with other.cursor() as cr:
        cr.execute("SELECT id FROM ir_cron WHERE id = %s FOR NO KEY UPDATE NOWAIT",
                   (ids["due_idle"],))
        assert cr.fetchone() == (ids["due_idle"],)
    other.rollback()
    with checker.cursor() as cr:  # the timeouts were local to the checks
        cr.execute("SHOW statement_timeout")
        assert cr.fetchone() == ("0",)
    checker.rollback()


@needs_pg
def test_cron_never_run(scenario):
    ids, found = scenario["ids"], by_subject(scenario["run"], "cron_never_run")
    assert set(found) == {"cron:%d" % ids["never_run"]}
    result = found["cron:%d" % ids["never_run"]]
    assert result.status == WARNING
    assert result.value == pytest.approx(3 * 86400, abs=60)


@needs_pg
def test_module_operation_stuck(scenario):
    found = by_subject(scenario["run"], "module_operation_stuck")
    assert set(found) == {"module:sale", "module:stock"}  # crm changed just now
    sale, stock = found["module:sale"], found["module:stock"]
    assert (sale.status, sale.details["state"]) == (WARNING, "to upgrade")
    assert sale.value == pytest.approx(3600, abs=60)
    assert (stock.status, stock.details["state"]) == (CRITICAL, "to install")


@needs_pg
def test_pg_connections(scenario):
    [result] = results_of(scenario["run"], "pg_connections_high")
    assert result.status == WARNING  # FAST warns above 0.1 %
    assert result.details["this_database"] >= 8  # the sessions this test opened
    assert result.value == pytest.approx(
        100.0 * result.details["used"] / result.details["available"], abs=0.1)
    assert result.subject == "cluster:connections"


@needs_pg
def test_pg_idle_in_transaction(scenario):
    sessions = scenario["sessions"]
    found = by_subject(scenario["run"], "pg_idle_in_transaction")
    for name in ("idle", "trigger", "blocker"):
        assert "pid:%d" % sessions[name] in found, name
    # the cron workers holding jobs are left to cron_stuck
    assert "pid:%d" % sessions["worker"] not in found
    idle = found["pid:%d" % sessions["idle"]]
    assert idle.status == WARNING and idle.value >= 1
    assert idle.details["query"] == "SELECT count(*) FROM ir_cron"


@needs_pg
def test_pg_long_query(scenario):
    sessions = scenario["sessions"]
    found = by_subject(scenario["run"], "pg_long_query")
    assert "pid:%d" % sessions["sleeper"] in found
    assert "pid:%d" % sessions["waiter"] not in found  # a lock wait is not a long query
    sleeper = found["pid:%d" % sessions["sleeper"]]
    assert sleeper.status == WARNING and sleeper.value >= 1
    assert "SELECT pg_sleep(120)" in sleeper.message


@needs_pg
def test_pg_blocked_sessions(scenario):
    sessions = scenario["sessions"]
    found = by_subject(scenario["run"], "pg_blocked_sessions")
    assert set(found) == {"pid:%d" % sessions["blocker"]}
    result = found["pid:%d" % sessions["blocker"]]
    assert result.details["blocked_pids"] == [sessions["waiter"]]
    assert result.details["blocker_state"] == "idle in transaction"
    assert result.status == WARNING and result.value >= 1
    # literals are not shown: they may hold personal data or passwords
    assert "UPDATE res_partner SET name = '?' WHERE id = 1" in result.message


@needs_pg
def test_filestore_missing_files(scenario):
    [result] = results_of(scenario["run"], "filestore_files_missing")
    assert result.status == WARNING  # 3 of 53 is below the 10 % of FAST
    assert (result.value, result.details["checked"]) == (3, 53)
    assert [e["id"] for e in result.details["examples"]] == scenario["deleted_ids"]
    assert result.subject == "filestore:%s" % scenario["filestore"]


@needs_pg
def test_queue_job_stuck(scenario):
    found = by_subject(scenario["run"], "queue_job_stuck")
    assert set(found) == {"queue_job:started:root.mail", "queue_job:enqueued:root"}
    started = found["queue_job:started:root.mail"]
    assert (started.status, started.value, started.details["examples"]) == (
        WARNING, 1, ["started-old"])
    assert found["queue_job:enqueued:root"].details["examples"] == ["enqueued-old"]


@needs_pg
def test_ok_checks_sum_up(scenario):
    run = scenario["run"]
    [deadlocks] = results_of(run, "pg_deadlocks_growing")
    assert deadlocks.status == OK and "baseline" in deadlocks.message
    [growth] = results_of(run, "pg_database_growth")
    assert growth.status == OK and growth.details["bytes"] > 0
    [writable] = results_of(run, "filestore_not_writable")
    assert writable.status == OK and writable.value is True


@needs_pg
def test_findings_group_per_subject(scenario):
    run, patterns = scenario["run"], load_patterns(DEFAULT_PATTERNS)
    findings = to_findings(run.results, patterns, database=scenario["db"].name)
    problems = [r for r in run.results if r.status != OK]
    assert len(findings) == len(problems)
    assert len({f.fingerprint for f in findings}) == len(findings)  # one per subject
    by_type = {p.type: p for p in patterns.checks}
    for finding, result in zip(findings, problems, strict=True):
        assert finding.pattern_type == result.check
        expected = checks.severity_for(by_type[result.check].severity, result.status)
        assert finding.severity == expected
        assert finding.captures["subject"] == result.subject
        assert finding.path == "check:%s" % result.check
        assert finding.sample.startswith(result.message.split("\n")[0][:50])
    # a second run finds the same incidents again (figures changed, fingerprints did not)
    with scenario["db"].connect().cursor() as cr:
        again = run_checks(cr, settings=scenario["settings"], previous=run.counters)
    second = to_findings(again.results, patterns, database=scenario["db"].name)
    first = {(f.pattern_type, f.captures["subject"]): f.fingerprint for f in findings}
    for finding in second:
        key = (finding.pattern_type, finding.captures["subject"])
        if key in first:
            assert finding.fingerprint == first[key]
    assert {"cron_switched_off", "cron_stuck", "pg_idle_in_transaction"} <= {
        f.pattern_type for f in second}


@needs_pg
def test_statements_are_bounded(scenario):
    """Count what run_checks sends, through a cursor of our own."""

    class Counting:
        def __init__(self, cursor):
            self.cursor, self.sql = cursor, []

        def execute(self, sql, params=None):
            self.sql.append(sql)
            return self.cursor.execute(sql, params)

        def __getattr__(self, name):
            return getattr(self.cursor, name)

    connection = scenario["db"].connect()
    with connection.cursor() as cr:
        counting = Counting(cr)
        started = time.monotonic()
        run = run_checks(counting, settings=scenario["settings"])
        elapsed = time.monotonic() - started
    assert run.errors == []
    assert len(counting.sql) == run.stats["statements"]
    overhead = sum(1 for sql in counting.sql
                   if sql.startswith(("SAVEPOINT", "ROLLBACK", "RELEASE", "SELECT set_config")))
    # per check: its timeouts and its rollback; once: the setup, the release; and the
    # savepoint around the cron lock probe (SAVEPOINT + RELEASE)
    assert overhead == 2 * len(CHECKS) + 6
    assert len(counting.sql) - overhead <= 30  # the checks' own queries
    print("\nrun_checks: %d statements (%d by the checks), %.3f s" % (
        len(counting.sql), len(counting.sql) - overhead, elapsed))


# --------------------------------------------------------------------------
# states that need a database of their own


@pytest.fixture
def plain_db():
    if not PGHOST:
        pytest.skip("no test PostgreSQL (AUTO_HEAL_PGHOST)")
    db = Database("auto_heal_dbchecks_x")
    try:
        db.run(SCHEMA)
        yield db
    finally:
        db.close()


@needs_pg
def test_broken_check_records_its_error_and_the_others_run(plain_db):
    db = plain_db
    checker = db.connect()
    with checker.cursor() as cr:
        # a table missing, in the caller's own (still open) transaction
        cr.execute("ALTER TABLE ir_module_module RENAME TO ir_module_module_gone")
        run = run_checks(cr, settings=FAST)
        [error] = run.errors
        assert error.startswith("module_operation_stuck: UndefinedTable: relation "
                                "\"ir_module_module\" does not exist")
        assert {r.check for r in run.results} == set(CHECKS) - {"module_operation_stuck"}
        # the caller's transaction is intact: the rename is still there
        cr.execute("SELECT to_regclass('ir_module_module_gone') IS NOT NULL")
        assert cr.fetchone() == (True,)
    checker.rollback()


@needs_pg
def test_a_caller_transaction_that_read_the_statistics_sees_new_sessions(plain_db):
    """PostgreSQL keeps pg_stat_activity as first read in a transaction: run_checks clears it."""
    db = plain_db
    checker = db.connect()
    with checker.cursor() as cr:
        cr.execute("SELECT count(*) FROM pg_stat_activity")  # the caller's snapshot
        idle = db.connect()
        with idle.cursor() as other:
            other.execute("SELECT 1")  # BEGIN; SELECT 1; then idle in transaction
        run = run_checks(cr, names=["pg_idle_in_transaction"],
                         settings={"idle_in_transaction_warn_minutes": 0})
        assert run.errors == []
        assert "pid:%d" % idle.get_backend_pid() in [r.subject for r in run.results]
    idle.rollback()
    checker.rollback()


@needs_pg
def test_cron_probe_in_repeatable_read_after_a_worker_updated_a_row(plain_db):
    """Odoo's transactions are REPEATABLE READ: a cron row a worker updated after the
    scan's snapshot cannot be locked (40001). The probe goes on row by row."""
    db = plain_db
    changed = _insert_cron(db, "finished meanwhile", nextcall=ago("1 hour"))
    held = _insert_cron(db, "running", nextcall=ago("1 hour"))
    worker = db.connect()
    with worker.cursor() as cr:  # a cron worker running the job (Odoo's lock)
        cr.execute("SELECT id FROM ir_cron WHERE id = %s FOR NO KEY UPDATE", (held,))
    checker = db.connect()
    checker.set_session(isolation_level="REPEATABLE READ")
    with checker.cursor() as cr:
        cr.execute("SELECT count(*) FROM ir_cron")  # the scan's snapshot is taken
        db.run("UPDATE ir_cron SET lastcall = %s WHERE id = %%s" % NOW, (changed,))
        run = run_checks(cr, names=["cron_stuck"], settings=FAST)
        assert run.errors == []
        assert set(run.counters["cron_locked_since"]) == {str(held)}
        [ok] = run.results
        assert ok.details["running_cron_ids"] == [held]
    checker.rollback()
    worker.rollback()


@needs_pg
def test_a_check_waiting_for_a_lock_gives_up(plain_db):
    db = plain_db
    holder = db.connect()
    with holder.cursor() as cr:  # e.g. a migration altering ir_attachment
        cr.execute("LOCK TABLE ir_attachment IN ACCESS EXCLUSIVE MODE")
    checker = db.connect()
    with checker.cursor() as cr:
        run = run_checks(cr, names=["filestore_files_missing", "cron_failing"],
                         settings={"filestore_path": "/nonexistent", "lock_timeout_ms": 300})
    assert run.errors == ["filestore_files_missing: LockNotAvailable: canceling statement "
                          "due to lock timeout"]
    assert [r.check for r in run.results] == ["cron_failing"]
    holder.rollback()


@needs_pg
def test_statement_timeout_stops_a_slow_check(plain_db, monkeypatch):
    db = plain_db

    def slow(cursor, settings=None, ctx=None):
        cursor.execute("SELECT pg_sleep(5)")
        return []

    monkeypatch.setitem(CHECKS, "slow", slow)
    with db.connect().cursor() as cr:
        run = run_checks(cr, names=["slow", "cron_failing"], settings={"statement_timeout_ms": 200})
    assert run.errors == ["slow: QueryCanceled: canceling statement due to statement timeout"]
    assert [r.check for r in run.results] == ["cron_failing"]


@needs_pg
def test_autocommit_connection_and_unknown_check(plain_db):
    connection = plain_db.connect(autocommit=True)
    with connection.cursor() as cr:
        run = run_checks(cr, names=["cron_failing", "nope"])
    assert run.errors == ["nope: unknown check"]
    assert [r.status for r in run.results] == [OK]
    assert connection.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE


@needs_pg
def test_deadlock_counter_growth(plain_db):
    db = plain_db
    checker = db.connect()
    with checker.cursor() as cr:
        first = run_checks(cr, names=["pg_deadlocks_growing"])
    checker.rollback()
    assert first.results[0].status == OK
    baseline = first.counters["deadlocks"]["count"]
    # a real deadlock: a locks 1 then wants 2, b locks 2 then wants 1
    a, b = db.connect(), db.connect()
    db.run("INSERT INTO res_partner (id, name) VALUES (1, 'one'), (2, 'two')")
    with a.cursor() as cr:
        cr.execute("UPDATE res_partner SET name = 'a' WHERE id = 1")
    with b.cursor() as cr:
        cr.execute("UPDATE res_partner SET name = 'b' WHERE id = 2")
    outcome_a = db.in_thread(a, "UPDATE res_partner SET name = 'a' WHERE id = 2")
    time.sleep(0.2)
    outcome_b = db.in_thread(b, "UPDATE res_partner SET name = 'b' WHERE id = 1")
    for thread in db.threads:
        thread.join(15)
    errors = [o.get("error") for o in (outcome_a, outcome_b) if o.get("error")]
    assert len(errors) == 1 and "deadlock detected" in str(errors[0])
    a.close()
    b.close()  # a backend reports its statistics when it ends
    db.wait_for("SELECT deadlocks > %s FROM pg_stat_database WHERE datname = current_database()",
                (baseline,))
    with checker.cursor() as cr:
        second = run_checks(cr, names=["pg_deadlocks_growing"], previous=first.counters)
    [result] = second.results
    assert (result.status, result.value) == (WARNING, 1)
    assert second.counters["deadlocks"]["count"] == baseline + 1
    assert "1 new deadlock(s)" in result.message


@needs_pg
def test_database_growth(plain_db):
    db = plain_db
    checker = db.connect()
    with checker.cursor() as cr:
        first = run_checks(cr, names=["pg_database_growth"])
    checker.rollback()
    baseline = first.counters["db_size"]
    # a second run right after keeps the older baseline (too short to measure growth)
    with checker.cursor() as cr:
        soon = run_checks(cr, names=["pg_database_growth"], previous=first.counters)
    checker.rollback()
    assert soon.counters["db_size"] == baseline and soon.results[0].status == OK
    db.run("CREATE TABLE mail_message_big AS SELECT g AS id, repeat('x', 500) AS body "
           "FROM generate_series(1, 40000) g")
    # the previous measure is dated 2 hours back, as if the scan ran 2 hours ago
    previous = {"db_size": dict(baseline, at=baseline["at"] - 7200)}
    settings = {"db_growth_min_mib_per_day": 0, "db_growth_warn_percent_per_day": 1,
                "db_growth_crit_percent_per_day": 10 ** 6}
    with checker.cursor() as cr:
        grown = run_checks(cr, names=["pg_database_growth"], settings=settings,
                           previous=previous)
    [result] = grown.results
    size = grown.counters["db_size"]["bytes"]
    assert size - baseline["bytes"] > 10 * 1024 * 1024
    percent, per_day = growth_per_day(baseline["bytes"], previous["db_size"]["at"],
                                               size, grown.counters["db_size"]["at"])
    assert result.status == WARNING and result.value == percent
    assert result.details["bytes_per_day"] == per_day
    assert result.subject == "database:%s" % db.name


@needs_pg
def test_autovacuum_stale_table(plain_db):
    db = plain_db
    db.run("CREATE TABLE mail_tracking (id serial PRIMARY KEY, v int) "
           "WITH (autovacuum_enabled = false)")
    db.run("INSERT INTO mail_tracking (v) SELECT g FROM generate_series(1, 5000) g")
    db.run("DELETE FROM mail_tracking WHERE id > 1000")  # 4000 dead rows
    db.wait_for("SELECT n_dead_tup >= 4000 FROM pg_stat_user_tables "
                "WHERE relname = 'mail_tracking'")
    with db.connect().cursor() as cr:
        run = run_checks(cr, names=["pg_autovacuum_stale"], settings=FAST)
    [result] = run.results
    assert result.subject == "table:public.mail_tracking"
    assert (result.status, result.value) == (CRITICAL, 4000)  # 400 % of the live rows
    assert result.details["autovacuum_disabled"] is True
    assert "was never vacuumed; autovacuum is disabled on it" in result.message


@needs_pg
def test_queue_job_not_installed(plain_db):
    with plain_db.connect().cursor() as cr:
        run = run_checks(cr, names=["queue_job_stuck", "cron_switched_off", "cron_stuck"])
    assert run.errors == []
    statuses = {r.check: (r.status, r.details.get("skipped")) for r in run.results}
    assert statuses["queue_job_stuck"] == (OK, True)


@needs_pg
def test_filestore_sampling_on_a_million_attachments(plain_db, tmp_path):
    """Bounded on a big table: a sample of at most newest + random, in well under a second."""
    db = plain_db
    db.run("INSERT INTO ir_attachment (name, store_fname) "
           "SELECT 'f' || g, CASE WHEN g % 3 = 0 THEN NULL "
           "ELSE substr(md5(g::text), 1, 2) || '/' || md5(g::text) END "
           "FROM generate_series(1, 1000000) g")
    db.run("ANALYZE ir_attachment")
    settings = {"filestore_path": str(tmp_path)}  # an empty filestore: every file is missing
    with db.connect().cursor() as cr:
        run = run_checks(cr, names=["filestore_files_missing"], settings=settings)
    [result] = run.results
    assert run.errors == [] and result.status == CRITICAL
    checked = result.details["checked"]
    assert 300 <= checked <= 400 and result.value == checked
    # set_config, min/max id, the newest, the random picks, rollback to the savepoint
    assert run.stats["checks"]["filestore_files_missing"]["statements"] == 5


# --------------------------------------------------------------------------
# the filestore write probe: root writes anywhere, so a child drops to nobody


def _probe_as(user, path):
    """check_filestore_not_writable run by *user* in a forked child; its result as a dict."""

    def probe():
        [result] = check_filestore_not_writable(None, {"filestore_path": path})
        return json.dumps(result.to_dict())

    return json.loads(run_as(user, probe))


def test_filestore_not_writable():
    # under /tmp, open to others: nobody must reach the folder to be refused by it
    base = Path(tempfile.mkdtemp(prefix="auto_heal-filestore-"))
    os.chmod(base, 0o755)
    filestore = base / "filestore"
    filestore.mkdir()
    if os.geteuid() == 0:
        os.chmod(filestore, 0o755)  # root's folder: nobody cannot write in it
    else:
        os.chmod(filestore, 0o555)
    try:
        result = _probe_as("nobody", str(filestore))
        assert result["status"] == CRITICAL and result["value"] is False
        assert result["details"]["step"] == "create"
        assert "Permission denied" in result["message"]
        os.chmod(filestore, 0o777)
        result = _probe_as("nobody", str(filestore))
        assert result["status"] == OK and result["value"] is True
        assert os.listdir(filestore) == []  # the probe file is gone
    finally:
        shutil.rmtree(base)
    [missing] = check_filestore_not_writable(None, {"filestore_path": str(base / "nope")})
    assert missing.status == CRITICAL and "No such file or directory" in missing.message


# --------------------------------------------------------------------------
# the pattern database knows every check


def test_every_check_has_a_pattern_and_every_check_pattern_a_check():
    patterns = load_patterns(DEFAULT_PATTERNS)
    assert patterns.errors == []
    checks = {p.check: p for p in patterns.checks}
    assert set(checks) == set(CHECKS)
    for name, pattern in checks.items():
        assert pattern.type == name and pattern.regex == "" and pattern.description


def test_settings_defaults_are_documented():
    with open(os.path.join(REPO_ROOT, "readme", "CHECKS.md"), encoding="utf-8") as handle:
        text = handle.read()
    for key in checks.DEFAULTS:
        assert "`%s`" % key in text, key
    for name in CHECKS:
        assert "`%s`" % name in text, name


def test_check_settings_name_what_each_check_reads():
    """CHECK_SETTINGS (used to stop only the checks a bad setting concerns) is complete."""
    import inspect

    assert set(checks.CHECK_SETTINGS) == set(CHECKS)
    named = set(checks.COMMON_SETTINGS)
    for name, function in CHECKS.items():
        source = inspect.getsource(function)
        source = source[source.index("\ndef ") + 1:]  # the body, not the @check(...) above it
        read = {key for key in checks.DEFAULTS if '"%s"' % key in source}
        assert read - set(checks.COMMON_SETTINGS) == set(checks.CHECK_SETTINGS[name]), name
        named |= read
    assert named == set(checks.DEFAULTS)
    good, bad = checks.split_settings({"deadlocks_warn": "2", "deadlocks_crit": "many"})
    assert good == {"deadlocks_warn": "2"} and list(bad) == ["deadlocks_crit"]
    assert checks.blocked_checks(bad) == {"pg_deadlocks_growing": [bad["deadlocks_crit"]]}
