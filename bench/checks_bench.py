#!/usr/bin/env python3
"""Statements and time of each database check on a database with a million rows.

    python bench/checks_bench.py [--rows 1000000] [--repeat 3] [--markdown]

It starts a private PostgreSQL 15 cluster (tools/pgcluster.py, with
``max_prepared_transactions`` and ``wal_level = logical``), builds the tables
the checks read in Odoo 18's shape, the largest ones with --rows rows
(``mail_mail`` and ``mail_message``: one mail a message, 2 % failed, 1 %
waiting; ``account_move_line`` with an int4 id at 85 % of its range), puts the
states the checks look for in place (an invalid index on the big table, a
constraint NOT VALID, a prepared transaction, an inactive slot), then runs
every check of :data:`engine.checks.CHECKS` through ``run_checks`` and
prints, per check, the statements it sent and its best time of --repeat runs.
The deployment checks get this host's facts, without HTTP probes; the backup
check a folder with one verified dump of the database.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psycopg2  # noqa: E402

from engine.checks import CHECKS, run_checks  # noqa: E402
from engine.checks.deployment_facts import ODOO_DEFAULTS, host_resources  # noqa: E402
from tools.pgcluster import PgCluster  # noqa: E402

SCHEMA = """
CREATE TABLE ir_cron (id serial PRIMARY KEY, cron_name varchar, active boolean DEFAULT true,
    nextcall timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'), lastcall timestamp,
    priority int DEFAULT 5, failure_count int DEFAULT 0, first_failure_date timestamp,
    write_date timestamp DEFAULT (now() AT TIME ZONE 'UTC'));
CREATE TABLE ir_cron_trigger (id serial PRIMARY KEY, cron_id int REFERENCES ir_cron(id),
    call_at timestamp);
CREATE TABLE ir_cron_progress (id serial PRIMARY KEY, cron_id int NOT NULL REFERENCES ir_cron(id),
    deactivate boolean, timed_out_counter int DEFAULT 0,
    create_date timestamp DEFAULT (now() AT TIME ZONE 'UTC'));
CREATE INDEX ON ir_cron_progress (cron_id);
CREATE TABLE ir_module_module (id serial PRIMARY KEY, name varchar UNIQUE, state varchar,
    latest_version varchar, write_date timestamp);
CREATE TABLE ir_attachment (id serial PRIMARY KEY, name varchar, res_model varchar,
    res_id int, store_fname varchar);
CREATE TABLE ir_model (id serial PRIMARY KEY, model varchar);
CREATE TABLE ir_model_fields (id serial PRIMARY KEY, model varchar, name varchar);
CREATE TABLE ir_model_data (id serial PRIMARY KEY, module varchar, name varchar, model varchar,
    res_id int);
CREATE INDEX ON ir_model_data (model, res_id);
CREATE TABLE ir_model_constraint (id serial PRIMARY KEY, name varchar, module int, model int,
    type varchar);
CREATE TABLE ir_config_parameter (id serial PRIMARY KEY, key varchar UNIQUE, value text);
CREATE TABLE ir_mail_server (id serial PRIMARY KEY, name varchar, smtp_host varchar,
    smtp_port int);
CREATE TABLE mail_message (id serial PRIMARY KEY, mail_server_id int, body text);
CREATE TABLE mail_mail (id serial PRIMARY KEY, mail_message_id int NOT NULL, state varchar,
    failure_type varchar, failure_reason text, scheduled_date timestamp,
    create_date timestamp, write_date timestamp);
CREATE INDEX ON mail_mail (mail_message_id);
CREATE TABLE auto_heal_http_origin (id serial PRIMARY KEY, host varchar, scheme varchar,
    forwarded_host varchar, forwarded_proto varchar, forwarded_for boolean,
    proxy_mode boolean, hits int, last_seen timestamp);
CREATE TABLE account_move_line (id serial PRIMARY KEY, move_id int, name varchar,
    balance numeric);
"""


def build(dsn, rows):
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    cr = connection.cursor()
    cr.execute(SCHEMA)
    cr.execute("INSERT INTO ir_cron (cron_name, lastcall) SELECT 'cron ' || g, "
               "(now() AT TIME ZONE 'UTC') FROM generate_series(1, 30) g")
    cr.execute("INSERT INTO ir_cron_progress (cron_id, create_date) SELECT id, "
               "lastcall - interval '40 seconds' FROM ir_cron")
    cr.execute("INSERT INTO ir_model (model) SELECT 'model.' || g FROM generate_series(1, 900) g")
    cr.execute("INSERT INTO ir_model (model) VALUES ('account.move.line')")
    cr.execute("INSERT INTO ir_model_fields (model, name) SELECT m.model, 'field_' || g "
               "FROM ir_model m, generate_series(1, 20) g")
    cr.execute("INSERT INTO ir_model_data (module, name, model, res_id) "
               "SELECT 'module_' || (id % 100), 'field_' || id, 'ir.model.fields', id "
               "FROM ir_model_fields")
    cr.execute("INSERT INTO ir_model_data (module, name, model, res_id) "
               "SELECT 'account', 'model_' || id, 'ir.model', id FROM ir_model")
    cr.execute("INSERT INTO ir_config_parameter (key, value) VALUES "
               "('web.base.url', 'http://127.0.0.1:8069')")
    cr.execute("INSERT INTO ir_mail_server (name, smtp_host, smtp_port) VALUES "
               "('main', 'smtp.example.com', 587)")
    started = time.monotonic()
    cr.execute("INSERT INTO mail_message (mail_server_id, body) SELECT CASE WHEN g %% 2 = 0 "
               "THEN 1 END, repeat('x', 200) FROM generate_series(1, %s) g", (rows,))
    cr.execute("""INSERT INTO mail_mail (mail_message_id, state, failure_type, failure_reason,
                      create_date, write_date)
                  SELECT g, CASE WHEN g %% 50 = 0 THEN 'exception'
                                 WHEN g %% 100 = 1 THEN 'outgoing' ELSE 'sent' END,
                         NULL, CASE WHEN g %% 50 = 0 THEN 'Connection refused' END,
                         (now() AT TIME ZONE 'UTC') - (g %% 1000) * interval '1 minute',
                         (now() AT TIME ZONE 'UTC') - (g %% 1000) * interval '1 minute'
                    FROM generate_series(1, %s) g""", (rows,))
    cr.execute("INSERT INTO account_move_line (move_id, name, balance) SELECT g / 10, "
               "'line ' || g, g FROM generate_series(1, %s) g", (rows,))
    cr.execute("SELECT setval('account_move_line_id_seq', %s)", (int(2147483647 * 0.85),))
    cr.execute("INSERT INTO account_move_line (move_id, name) VALUES (1, 'a'), (1, 'a')")
    try:
        cr.execute("CREATE UNIQUE INDEX CONCURRENTLY account_move_line__name_index "
                   "ON account_move_line (name)")
    except psycopg2.Error:
        pass  # the duplicates: an invalid index, as a failed build leaves it
    cr.execute("ALTER TABLE account_move_line ADD CONSTRAINT balance_positive "
               "CHECK (balance >= 0) NOT VALID")
    cr.execute("ANALYZE")
    print("built %d rows in mail_mail, mail_message, account_move_line in %.1f s" % (
        rows, time.monotonic() - started), file=sys.stderr)
    return connection


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    with PgCluster(settings={"max_prepared_transactions": 5, "wal_level": "logical",
                             "max_replication_slots": 5}) as pg:
        pg.psql("CREATE DATABASE bench OWNER %s" % pg.role)
        dsn = pg.dsn_for("bench")
        build(dsn, args.rows)
        prep = psycopg2.connect(dsn)
        with prep.cursor() as cr:
            cr.execute("INSERT INTO ir_cron (cron_name) VALUES ('held')")
            cr.execute("PREPARE TRANSACTION 'bench_orphan'")
        prep.close()
        pg.psql("SELECT pg_create_physical_replication_slot('bench_slot', true)", dbname="bench")
        pg.psql("CHECKPOINT")  # some WAL behind the slot
        dumps = tempfile.mkdtemp(prefix="auto_heal-bench-dumps-")
        dump = os.path.join(dumps, "bench.20260101T000000Z.dump")
        subprocess.run([os.path.join(pg.bindir, "pg_dump"), "-Fc", "-f", dump, "-d", dsn,
                        "-t", "ir_cron"], check=True)
        cpus, memory = host_resources()
        facts = {"options": dict(ODOO_DEFAULTS, workers=2, max_cron_threads=1),
                 "cpu_count": cpus, "memory_bytes": memory, "gevent": False,
                 "environment": "prod", "databases": ["bench"], "no_http_probes": True}
        settings = {"backup_dumps_dir": dumps, "backup_database": "bench",
                    "prepared_xact_warn_minutes": 0, "slot_retained_warn_mib": 0,
                    "filestore_path": tempfile.mkdtemp(prefix="auto_heal-bench-fs-")}
        best, previous = {}, None
        checker = psycopg2.connect(dsn)
        for _ in range(args.repeat):
            with checker.cursor() as cr:
                run = run_checks(cr, settings=settings, previous=previous, facts=facts)
            checker.rollback()
            previous = run.counters
            assert not run.errors, run.errors
            for name, figures in run.stats["checks"].items():
                known = best.get(name)
                if known is None or figures["seconds"] < known["seconds"]:
                    best[name] = figures
        total = sum(f["statements"] for f in best.values())
        found = {}
        for result in run.results:
            if result.status != "ok":
                found.setdefault(result.check, []).append(result.subject)
        if args.markdown:
            print("| check | statements | ms (best of %d) | found |" % args.repeat)
            print("| --- | --- | --- | --- |")
            for name in CHECKS:
                print("| `%s` | %d | %.1f | %s |" % (
                    name, best[name]["statements"], 1000 * best[name]["seconds"],
                    ", ".join("`%s`" % s for s in found.get(name, [])) or "-"))
        else:
            for name in CHECKS:
                print("%-28s %3d statements %8.1f ms  %s" % (
                    name, best[name]["statements"], 1000 * best[name]["seconds"],
                    ", ".join(found.get(name, []))))
        print("all %d checks: %d statements (with the savepoint and timeout bookkeeping), "
              "last run %.3f s" % (len(CHECKS), total, run.stats["seconds"]))
        pg.psql("ROLLBACK PREPARED 'bench_orphan'", dbname="bench")
        pg.psql("SELECT pg_drop_replication_slot('bench_slot')")


if __name__ == "__main__":
    main()
