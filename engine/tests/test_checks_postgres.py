"""The PostgreSQL safety checks (engine/checks/postgres.py) on real states.

A private cluster of their own, started with what the shared one lacks:
``max_prepared_transactions`` > 0, ``wal_level = logical`` with replication
slots, and the smallest ``autovacuum_freeze_max_age`` (100,000) so that a real
transaction ID age can be reached in a second. The states are made for real:
a prepared transaction (``PREPARE TRANSACTION``), 150,000 transaction IDs
consumed behind it, a sequence moved near its end with ``setval``, an index
left invalid by a failed ``CREATE UNIQUE INDEX CONCURRENTLY``, a constraint
added ``NOT VALID``, a physical and a logical slot left inactive while WAL is
written. The checks run as the cluster's ordinary role (LOGIN CREATEDB, as
Odoo's), the states are made by the superuser where they need one.
"""

import secrets
import threading
import time

import pytest

from engine.checks import CRITICAL, OK, WARNING, postgres, run_checks
from tools.testing import start_private_cluster

psycopg2 = pytest.importorskip("psycopg2")

SETTINGS = {
    "max_prepared_transactions": 5,
    "wal_level": "logical",
    "max_replication_slots": 5,
    "max_wal_senders": 5,
    "autovacuum_freeze_max_age": 100000,
}


class Cluster:
    def __init__(self):
        self.pg = start_private_cluster(SETTINGS)
        self.connections = []

    def superuser(self, dbname="postgres", autocommit=True):
        connection = psycopg2.connect(host=str(self.pg.socket_dir), port=self.pg.port,
                                      user="postgres", dbname=dbname)
        connection.autocommit = autocommit
        self.connections.append(connection)
        return connection

    def role(self, dbname, autocommit=False):
        connection = psycopg2.connect(host=self.pg.host, port=self.pg.port, user=self.pg.role,
                                      password=self.pg.password, dbname=dbname)
        connection.autocommit = autocommit
        self.connections.append(connection)
        return connection

    def database(self):
        name = "ah_pg_%s" % secrets.token_hex(3)
        with self.superuser().cursor() as cr:
            cr.execute('CREATE DATABASE "%s" OWNER "%s"' % (name, self.pg.role))
        return name

    def run(self, dbname, sql, params=None, superuser=False):
        connection = self.superuser(dbname) if superuser else self.role(dbname, True)
        with connection.cursor() as cr:
            cr.execute(sql, params)
            rows = cr.fetchall() if cr.description else None
        connection.close()
        return rows

    def checks(self, dbname, names, settings=None, previous=None):
        connection = self.role(dbname)
        with connection.cursor() as cr:
            run = run_checks(cr, names=names, settings=settings, previous=previous)
        connection.rollback()
        connection.close()
        assert run.errors == [], run.errors
        return run

    def close(self):
        for connection in self.connections:
            try:
                connection.close()
            except psycopg2.Error:
                pass
        self.pg.stop()


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.close()


def by_subject(run):
    return {result.subject: result for result in run.results}


def prepare(cluster, dbname, gid):
    """A real prepared transaction: a row inserted, then PREPARE TRANSACTION."""
    cluster.run(dbname, "CREATE TABLE IF NOT EXISTS held (id serial PRIMARY KEY, v int)")
    connection = cluster.role(dbname)
    with connection.cursor() as cr:
        cr.execute("INSERT INTO held (v) VALUES (1)")
        cr.execute("PREPARE TRANSACTION %s", (gid,))
    connection.close()


def finish(cluster, dbname, gid):
    cluster.run(dbname, "ROLLBACK PREPARED %s", (gid,), superuser=True)


def test_prepared_transaction_older_than_the_threshold(cluster):
    db = cluster.database()
    prepare(cluster, db, "ah_orphan")
    try:
        fresh = cluster.checks(db, ["pg_prepared_transactions"])
        [ok] = fresh.results
        assert ok.status == OK and "no prepared transaction older than 5 min" in ok.message
        time.sleep(1.1)
        run = cluster.checks(db, ["pg_prepared_transactions"],
                             {"prepared_xact_warn_minutes": 0, "prepared_xact_crit_minutes": 60})
        result = by_subject(run)["prepared:ah_orphan"]
        assert result.status == WARNING and result.value >= 1
        assert result.details["database"] == db and result.details["locks"] >= 1
        assert "ROLLBACK PREPARED 'ah_orphan'" in result.details["what_to_do"]
        assert "holds" in result.message and db in result.message
    finally:
        finish(cluster, db, "ah_orphan")
    [gone] = cluster.checks(db, ["pg_prepared_transactions"],
                            {"prepared_xact_warn_minutes": 0}).results
    assert gone.status == OK


def test_xid_age_held_back_by_a_prepared_transaction(cluster):
    db = cluster.database()
    cluster.run(db, "CREATE TABLE frozen_never (v int) WITH (autovacuum_enabled = false)")
    cluster.run(db, "INSERT INTO frozen_never VALUES (1)")
    prepare(cluster, db, "ah_xid_holder")
    try:
        # 160,000 transaction IDs, one a subtransaction each (real IDs, burnt in a second)
        cluster.run(db, """DO $$ BEGIN FOR i IN 1..160000 LOOP
                             BEGIN INSERT INTO frozen_never VALUES (i);
                             EXCEPTION WHEN others THEN NULL; END;
                           END LOOP; END $$""")
        [[age]] = cluster.run(db, "SELECT age(datfrozenxid) FROM pg_database "
                                  "WHERE datname = current_database()")
        assert age >= 150000
        run = cluster.checks(db, ["pg_xid_wraparound"])  # defaults: 150 % of 100,000
        result = by_subject(run)["database:%s" % db]
        assert result.status == WARNING and result.value >= 150000
        assert result.details["freeze_max_age"] == 100000
        assert "prepared transaction 'ah_xid_holder'" in result.message
        assert "table public.frozen_never with autovacuum disabled" in result.message
        assert [h["id"] for h in result.details["holders"] if h["kind"] == "prepared"] == [
            "ah_xid_holder"]
        assert "public.frozen_never" in [t["name"] for t in result.details["oldest_tables"]]
        assert "vacuumdb --freeze --dbname %s" % db in result.details["what_to_do"]
        crit = cluster.checks(db, ["pg_xid_wraparound"],
                              {"xid_age_crit_wraparound_percent": 0.005})  # 107,374 IDs
        assert by_subject(crit)["database:%s" % db].status == CRITICAL
    finally:
        finish(cluster, db, "ah_xid_holder")
    quiet = cluster.checks(db, ["pg_xid_wraparound"], {"xid_age_warn_freeze_max_percent": 1000})
    assert [r.status for r in quiet.results] == [OK]


def test_sequence_moved_near_its_end(cluster):
    db = cluster.database()
    cluster.run(db, "CREATE TABLE mail_tracking_value (id serial PRIMARY KEY, v int)")
    cluster.run(db, "CREATE TABLE account_move (id serial PRIMARY KEY)")
    cluster.run(db, "CREATE TABLE mail_message (id serial PRIMARY KEY, "
                    "tracking_id int REFERENCES mail_tracking_value(id))")
    cluster.run(db, "CREATE TABLE big_ids (id bigserial PRIMARY KEY)")
    cluster.run(db, "INSERT INTO account_move DEFAULT VALUES")
    limit = 2147483647
    cluster.run(db, "SELECT setval('big_ids_id_seq', %s)", (int(limit * 0.99),))  # bigint
    cluster.run(db, "SELECT setval('mail_tracking_value_id_seq', %s)", (int(limit * 0.85),))
    first = cluster.checks(db, ["id_sequence_exhaustion"])
    found = by_subject(first)
    assert set(found) == {"sequence:public.mail_tracking_value_id_seq"}
    result = found["sequence:public.mail_tracking_value_id_seq"]
    assert (result.status, result.value) == (WARNING, 85.0)
    assert result.details["table"] == "public.mail_tracking_value"
    assert result.details["column_type"] == "integer"
    assert result.details["days_left"] is None  # no growth measured yet
    assert result.details["referencing_foreign_keys"] == 1
    assert "ALTER TABLE public.mail_tracking_value ALTER COLUMN id TYPE bigint" in \
        result.details["what_to_do"]
    baseline = first.counters["sequences"]["public.mail_tracking_value_id_seq"]
    assert baseline["value"] == int(limit * 0.85)

    # growth: the previous scan (a day ago) saw 30 million fewer ids: 10 days left
    day_ago = {"sequences": {"public.mail_tracking_value_id_seq": {
        "value": int(limit * 0.85) - 30_000_000, "at": baseline["at"] - 86400}}}
    grown = cluster.checks(db, ["id_sequence_exhaustion"], previous=day_ago)
    result = by_subject(grown)["sequence:public.mail_tracking_value_id_seq"]
    assert result.status == CRITICAL and 10 <= result.details["days_left"] <= 11.5
    assert "runs out in" in result.message
    # too soon after the baseline: the older baseline is kept, no growth claimed
    soon = cluster.checks(db, ["id_sequence_exhaustion"], previous=first.counters)
    assert soon.counters["sequences"] == first.counters["sequences"]

    cluster.run(db, "SELECT setval('mail_tracking_value_id_seq', %s)", (int(limit * 0.95),))
    late = by_subject(cluster.checks(db, ["id_sequence_exhaustion"]))
    assert late["sequence:public.mail_tracking_value_id_seq"].status == CRITICAL
    # the real outcome at the end: the next insert fails as the check says it will
    cluster.run(db, "SELECT setval('mail_tracking_value_id_seq', %s)", (limit,))
    with pytest.raises(psycopg2.errors.SequenceGeneratorLimitExceeded):
        cluster.run(db, "INSERT INTO mail_tracking_value (v) VALUES (1)")


ODOO_MODEL_TABLES = """
CREATE TABLE ir_module_module (id serial PRIMARY KEY, name varchar, state varchar);
CREATE TABLE ir_model (id serial PRIMARY KEY, model varchar);
CREATE TABLE ir_model_fields (id serial PRIMARY KEY, model varchar, name varchar);
CREATE TABLE ir_model_data (id serial PRIMARY KEY, module varchar, name varchar,
                            model varchar, res_id int);
CREATE TABLE ir_model_constraint (id serial PRIMARY KEY, name varchar, module int,
                                  model int, type varchar);
INSERT INTO ir_module_module (name, state) VALUES ('base', 'installed'), ('stock', 'installed');
INSERT INTO ir_model (model) VALUES ('stock.lot');
INSERT INTO ir_model_fields (model, name) VALUES ('stock.lot', 'ref');
INSERT INTO ir_model_data (module, name, model, res_id) VALUES
    ('stock', 'model_stock_lot', 'ir.model', 1),
    ('stock', 'field_stock_lot__ref', 'ir.model.fields', 1);
INSERT INTO ir_model_constraint (name, module, model, type)
    VALUES ('stock_lot_qty_positive', 2, 1, 'c');
"""


def test_index_left_invalid_by_a_failed_concurrent_build(cluster):
    db = cluster.database()
    cluster.run(db, ODOO_MODEL_TABLES)
    cluster.run(db, "CREATE TABLE stock_lot (id serial PRIMARY KEY, ref varchar, qty int)")
    cluster.run(db, "INSERT INTO stock_lot (ref, qty) VALUES ('A', 1), ('A', 2), ('B', -1)")
    with pytest.raises(psycopg2.errors.UniqueViolation):  # duplicates: the build fails
        cluster.run(db, "CREATE UNIQUE INDEX CONCURRENTLY stock_lot__ref_index "
                        "ON stock_lot (ref)")
    cluster.run(db, "CREATE INDEX CONCURRENTLY stock_lot_by_hand ON stock_lot (qty)")
    writer = cluster.role(db)  # an open transaction that wrote: the next build waits for it
    with writer.cursor() as cr:
        cr.execute("INSERT INTO stock_lot (ref, qty) VALUES ('C', 3)")
    builder = cluster.role(db, autocommit=True)
    with builder.cursor() as cr, pytest.raises(psycopg2.errors.QueryCanceled):
        cr.execute("SET statement_timeout = '300ms'")  # the build is cancelled while waiting
        cr.execute("CREATE INDEX CONCURRENTLY stock_lot_cancelled ON stock_lot (qty)")
    writer.rollback()
    cluster.run(db, "ALTER TABLE stock_lot ADD CONSTRAINT stock_lot_qty_positive "
                    "CHECK (qty > 0) NOT VALID")
    [[valid]] = cluster.run(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                "'stock_lot__ref_index'::regclass")
    assert valid is False
    found = by_subject(cluster.checks(db, ["pg_invalid_indexes"]))
    assert set(found) == {"index:public.stock_lot__ref_index",
                          "index:public.stock_lot_cancelled",
                          "constraint:public.stock_lot.stock_lot_qty_positive"}
    index = found["index:public.stock_lot__ref_index"]
    assert index.status == WARNING and index.details["module"] == "stock"
    assert index.details["unique"] is True
    assert "module stock" in index.message
    assert "DROP INDEX CONCURRENTLY public.stock_lot__ref_index" in \
        index.details["what_to_do"]
    assert "`odoo -u stock` recreates it" in index.details["what_to_do"]
    # an index created outside Odoo: the table's model names the module
    assert found["index:public.stock_lot_cancelled"].details["module"] == "stock"
    constraint = found["constraint:public.stock_lot.stock_lot_qty_positive"]
    assert constraint.details["module"] == "stock"
    assert "VALIDATE CONSTRAINT stock_lot_qty_positive" in constraint.details["what_to_do"]
    # what the check says fixes it does: validation names the bad row, and after the
    # fix the constraint validates and the check is quiet about it
    with pytest.raises(psycopg2.errors.CheckViolation):
        cluster.run(db, "ALTER TABLE stock_lot VALIDATE CONSTRAINT stock_lot_qty_positive")
    cluster.run(db, "UPDATE stock_lot SET qty = 1 WHERE qty < 0")
    cluster.run(db, "ALTER TABLE stock_lot VALIDATE CONSTRAINT stock_lot_qty_positive")
    assert "constraint:public.stock_lot.stock_lot_qty_positive" not in by_subject(
        cluster.checks(db, ["pg_invalid_indexes"]))


def test_an_index_being_built_is_not_reported(cluster):
    """CREATE INDEX CONCURRENTLY waits for older transactions with its index invalid."""
    db = cluster.database()
    cluster.run(db, "CREATE TABLE res_partner (id serial PRIMARY KEY, email varchar)")
    older = cluster.role(db)
    with older.cursor() as cr:  # an open transaction that wrote: the build waits for it
        cr.execute("INSERT INTO res_partner (email) VALUES ('a@example.com')")
    builder = cluster.role(db, autocommit=True)
    done = {}

    def build():
        try:
            with builder.cursor() as cr:
                cr.execute("CREATE INDEX CONCURRENTLY res_partner_email ON res_partner (email)")
            done["ok"] = True
        except psycopg2.Error as exc:  # noqa: BLE001 - reported by the assertion below
            done["error"] = exc

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = cluster.run(db, "SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        if rows[0][0]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the concurrent build never created its invalid index")
    run = cluster.checks(db, ["pg_invalid_indexes"])
    assert [r.status for r in run.results] == [OK], run.results
    older.rollback()
    thread.join(20)
    assert done == {"ok": True}


def test_inactive_replication_slots_keep_wal(cluster):
    db = cluster.database()
    superuser = cluster.superuser(db)
    with superuser.cursor() as cr:
        cr.execute("SELECT pg_create_physical_replication_slot('ah_standby_gone', true)")
        cr.execute("SELECT pg_create_logical_replication_slot('ah_cdc_gone', 'test_decoding')")
    try:
        cluster.run(db, "CREATE TABLE mail_message (id serial PRIMARY KEY, body text)")
        cluster.run(db, "INSERT INTO mail_message (body) SELECT repeat('x', 1000) "
                        "FROM generate_series(1, 3000)")  # ~3 MiB of WAL
        quiet = cluster.checks(db, ["pg_replication_slots"])  # default: 1 GiB
        assert [r.status for r in quiet.results] == [OK]
        assert "2 replication slot(s), 0 active" in quiet.results[0].message
        run = cluster.checks(db, ["pg_replication_slots"], {"slot_retained_warn_mib": 1})
        found = by_subject(run)
        assert set(found) == {"slot:ah_standby_gone", "slot:ah_cdc_gone"}
        physical, logical = found["slot:ah_standby_gone"], found["slot:ah_cdc_gone"]
        assert physical.status == WARNING and physical.value >= 2 * 1024 * 1024
        assert physical.details["type"] == "physical"
        assert logical.details["plugin"] == "test_decoding" and logical.details["database"] == db
        assert logical.details["xmin_age"] is not None
        assert "keeps" in logical.message and "holds xmin back" in logical.message
        assert "pg_drop_replication_slot('ah_cdc_gone')" in logical.details["what_to_do"]
        crit = by_subject(cluster.checks(db, ["pg_replication_slots"],
                                         {"slot_retained_warn_mib": 1,
                                          "slot_retained_crit_mib": 2}))
        assert crit["slot:ah_standby_gone"].status == CRITICAL
    finally:
        with superuser.cursor() as cr:
            cr.execute("SELECT pg_drop_replication_slot('ah_standby_gone')")
            cr.execute("SELECT pg_drop_replication_slot('ah_cdc_gone')")


def test_outlook_and_holders_are_pure():
    assert postgres.sequence_outlook(10, 1, 100, None, warn=5, crit=50)[0] == WARNING
    assert postgres.xid_status(50, 100, warn_percent=40)[0] == WARNING
