"""The Odoo-level actions on a real PostgreSQL, with the columns they use.

Each test gets a throwaway database on the cluster named by ``AUTO_HEAL_PGHOST``,
``AUTO_HEAL_PGPORT``, ``AUTO_HEAL_PGUSER`` and ``AUTO_HEAL_PGPASSWORD`` (``make test``
starts a private cluster whose role has CREATEDB); skipped when they are unset.
The schema holds the columns of Odoo 18's tables that the actions read and write,
and real PostgreSQL does the locking: a second connection plays the other Odoo
process. The addon's tests run the same actions on a real Odoo 18 database.
"""

import json
import os
import secrets

import pytest

from engine.actions import Context, get_action
from engine.actions.odoo_db import savepoint
from engine.actions.runner import execute, rollback_run
from engine.audit import AuditLog

PGHOST = os.environ.get("AUTO_HEAL_PGHOST", "").strip()
pytestmark = pytest.mark.skipif(not PGHOST, reason="no test PostgreSQL (AUTO_HEAL_PGHOST)")

SCHEMA = """
CREATE TABLE ir_module_module (
    id serial PRIMARY KEY, name varchar NOT NULL UNIQUE, state varchar, write_date timestamp);
CREATE TABLE ir_cron (
    id serial PRIMARY KEY, cron_name varchar, active boolean, failure_count integer DEFAULT 0,
    first_failure_date timestamp, ir_actions_server_id integer);
CREATE TABLE auto_heal_incident (
    id serial PRIMARY KEY, fingerprint varchar NOT NULL, name varchar, state varchar,
    pattern_type varchar, captures text);
CREATE TABLE ir_attachment (
    id serial PRIMARY KEY, name varchar, url varchar, res_model varchar, res_id integer,
    public boolean, create_uid integer, checksum varchar, store_fname varchar,
    type varchar DEFAULT 'binary');
"""
OLD = "2026-01-02 03:04:05"


def _dsn(dbname):
    return (f"host={PGHOST} port={os.environ.get('AUTO_HEAL_PGPORT', '5432')} "
            f"user={os.environ.get('AUTO_HEAL_PGUSER', 'postgres')} "
            f"password={os.environ.get('AUTO_HEAL_PGPASSWORD', '')} dbname={dbname}")


@pytest.fixture
def database():
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"auto_heal_actions_{secrets.token_hex(4)}"
    admin = psycopg2.connect(_dsn("postgres"))
    admin.autocommit = True
    with admin.cursor() as cr:
        cr.execute(f'CREATE DATABASE "{name}"')
    connections = []

    def connect():
        connection = psycopg2.connect(_dsn(name))
        connections.append(connection)
        return connection

    first = connect()
    with first.cursor() as cr:
        cr.execute(SCHEMA)
    first.commit()
    try:
        yield connect
    finally:
        for connection in connections:
            connection.close()
        with admin.cursor() as cr:
            cr.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def db(database):
    """The connection the actions use (Odoo's env.cr stands here)."""
    return database()


def make_context(db, tmp_path, **hooks):
    hooks.setdefault("registry_ready", lambda: (True, "registry loaded"))
    return Context(actor="test:odoo", audit=AuditLog(str(tmp_path / "audit.jsonl")),
                   cursor=db.cursor(), hooks=hooks)


def audit(tmp_path):
    with open(tmp_path / "audit.jsonl") as handle:
        return [json.loads(line) for line in handle]


def rows(db, query, *args):
    with db.cursor() as cr:
        cr.execute(query, args)
        return cr.fetchall()


def modules(db):
    return dict(rows(db, "SELECT name, state FROM ir_module_module"))


@pytest.fixture
def stuck(db):
    with db.cursor() as cr:
        cr.execute("INSERT INTO ir_module_module (name, state, write_date) VALUES "
                   "('sale', 'to upgrade', %s), ('stock', 'to install', %s), "
                   "('crm', 'to remove', %s), ('base', 'installed', %s), "
                   "('website', 'uninstalled', %s)", [OLD] * 5)
    db.commit()
    return db


# -- reset_stuck_module_states -------------------------------------------------------------


def test_reset_plan_apply_verify_noop_rollback(stuck, tmp_path):
    context = make_context(stuck, tmp_path)
    planned = execute("reset_stuck_module_states", context, dry_run=True)
    assert planned.state == "planned"
    assert planned.plan["steps"] == ["crm: to remove -> installed",
                                     "sale: to upgrade -> installed",
                                     "stock: to install -> uninstalled"]
    assert all(p["ok"] for p in planned.plan["preconditions"]), planned.plan["preconditions"]
    assert modules(stuck)["sale"] == "to upgrade"

    record = execute("reset_stuck_module_states", context, incident="fp-stuck")
    assert record.state == "done", record.error
    assert modules(stuck) == {"sale": "installed", "stock": "uninstalled", "crm": "installed",
                              "base": "installed", "website": "uninstalled"}
    assert "verified: no module left in a transient state" in record.output
    assert {row["name"]: row["state"] for row in record.backup["rows"]} == {
        "crm": "to remove", "sale": "to upgrade", "stock": "to install"}
    assert [(line["action"], line["result"]) for line in audit(tmp_path)][-3:] == [
        ("reset_stuck_module_states.plan", "planned"),
        ("reset_stuck_module_states.apply", "applied"),
        ("reset_stuck_module_states.verify", "ok")]

    again = execute("reset_stuck_module_states", context)
    assert again.state == "noop"

    rollback_run(record, context)
    assert record.state == "rolled_back"
    assert rows(stuck, "SELECT name, state, write_date::text FROM ir_module_module "
                       "WHERE name IN ('sale', 'stock', 'crm') ORDER BY name") == [
        ("crm", "to remove", OLD), ("sale", "to upgrade", OLD), ("stock", "to install", OLD)]


def test_reset_only_named_modules(stuck, tmp_path):
    record = execute("reset_stuck_module_states", make_context(stuck, tmp_path),
                     {"modules": ["sale"]})
    assert record.state == "done", record.error
    assert record.target.endswith(":sale")
    assert modules(stuck)["sale"] == "installed"
    assert modules(stuck)["stock"] == "to install"


def test_a_maintenance_lock_on_modules_is_no_writer(database, stuck, tmp_path):
    # what VACUUM and ANALYZE (autovacuum's too) hold; the statement does not name the
    # table, so only the lock can be seen
    other = database()
    with other.cursor() as cr:
        cr.execute("DO $$ BEGIN EXECUTE 'LOCK TABLE ir_module' || '_module "
                   "IN SHARE UPDATE EXCLUSIVE MODE'; END $$")
    record = execute("reset_stuck_module_states", make_context(stuck, tmp_path))
    other.rollback()
    assert record.state == "done", record.error
    assert modules(stuck)["sale"] == "installed"


def test_reset_blocked_while_another_session_writes_modules(database, stuck, tmp_path):
    other = database()  # another Odoo process in the middle of an upgrade
    with other.cursor() as cr:
        cr.execute("UPDATE ir_module_module SET state = 'to upgrade' WHERE name = 'base'")
    record = execute("reset_stuck_module_states", make_context(stuck, tmp_path))
    assert record.state == "blocked"
    assert "no other database session writes ir_module_module" in record.error
    assert "RowExclusiveLock" in record.error
    assert "no other transaction reads or writes ir_module_module" in record.error
    assert modules(stuck)["sale"] == "to upgrade"
    other.rollback()
    assert execute("reset_stuck_module_states", make_context(stuck, tmp_path)).state == "done"


def test_reset_blocked_for_fresh_rows_and_without_registry_hook(db, tmp_path):
    with db.cursor() as cr:
        cr.execute("INSERT INTO ir_module_module (name, state, write_date) VALUES "
                   "('sale', 'to upgrade', now() AT TIME ZONE 'UTC')")
    db.commit()
    record = execute("reset_stuck_module_states", make_context(db, tmp_path))
    assert record.state == "blocked"
    assert "the rows were last changed at least 120 s ago: sale" in record.error
    assert execute("reset_stuck_module_states", make_context(db, tmp_path),
                   {"min_age": 0}).state == "done"

    with db.cursor() as cr:
        cr.execute("UPDATE ir_module_module SET state = 'to upgrade'")
    context = make_context(db, tmp_path)
    context.hooks = {}
    record = execute("reset_stuck_module_states", context, {"min_age": 0})
    assert record.state == "blocked"
    assert "the Odoo registry is loaded (no module is loading): not measured" in record.error
    assert modules(db)["sale"] == "to upgrade"


def test_reset_verify_failure_rolls_back_exactly(stuck, tmp_path):
    # An upgrade that marks 'sale' again behind our back: the trigger keeps its state.
    with stuck.cursor() as cr:
        cr.execute("""
            CREATE FUNCTION keep_sale() RETURNS trigger AS $$
            BEGIN IF NEW.name = 'sale' THEN NEW.state := OLD.state; END IF; RETURN NEW; END
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER keep_sale BEFORE UPDATE ON ir_module_module
               FOR EACH ROW WHEN (NEW.state IN ('installed', 'uninstalled'))
               EXECUTE FUNCTION keep_sale();
        """)
    stuck.commit()
    record = execute("reset_stuck_module_states", make_context(stuck, tmp_path))
    assert record.state == "rolled_back"
    assert record.error == "verification failed: still in a transient state: sale (to upgrade)"
    assert modules(stuck) == {"sale": "to upgrade", "stock": "to install", "crm": "to remove",
                              "base": "installed", "website": "uninstalled"}
    assert audit(tmp_path)[-1]["result"] == "rolled_back"


def test_reset_blocked_by_a_row_lock_of_another_transaction(database, stuck, tmp_path):
    other = database()
    with other.cursor() as cr:  # a row lock alone: no table write lock, no module query text
        cr.execute("SELECT id FROM ir_module_module WHERE name = 'stock' FOR NO KEY UPDATE")
        cr.execute("SELECT 1")
    record = execute("reset_stuck_module_states", make_context(stuck, tmp_path))
    # A row lock is a RowShareLock on the table: measured before anything changes.
    assert record.state == "blocked"
    assert "RowShareLock" in record.error
    other.rollback()


# -- reactivate_cron -----------------------------------------------------------------------


@pytest.fixture
def cron(db):
    with db.cursor() as cr:
        cr.execute("INSERT INTO ir_cron (cron_name, active, failure_count, first_failure_date, "
                   "ir_actions_server_id) VALUES ('Mail: send queue', false, 5, %s, 42) "
                   "RETURNING id", [OLD])
        cron_id = cr.fetchone()[0]
        cr.execute("INSERT INTO auto_heal_incident (fingerprint, name, state, pattern_type, "
                   "captures) VALUES ('fp-cause', 'cron_job_failed: #42', 'new', "
                   "'cron_job_failed', %s), ('fp-other', 'cron_job_failed: #420', 'new', "
                   "'cron_job_failed', %s)",
                   [json.dumps({"action_id": "42"}), json.dumps({"action_id": "420"})])
    db.commit()
    return cron_id


def cron_row(db, cron_id):
    return rows(db, "SELECT active, failure_count, first_failure_date::text FROM ir_cron "
                    "WHERE id = %s", cron_id)[0]


def test_reactivate_waits_for_the_cause_then_runs(db, cron, tmp_path):
    context = make_context(db, tmp_path)
    record = execute("reactivate_cron", context, {"cron_id": cron}, incident="fp-deact")
    assert record.state == "blocked"
    assert record.error == ("precondition failed: the cause of the job's failures is dealt "
                            "with: not dealt with yet: cron_job_failed: #42 (new)")
    assert "read the traceback of the cause" in \
        record.plan["preconditions"][0]["remedy"]
    assert cron_row(db, cron) == (False, 5, OLD)

    with db.cursor() as cr:
        cr.execute("UPDATE auto_heal_incident SET state = 'resolved' WHERE fingerprint = "
                   "'fp-cause'")
    record = execute("reactivate_cron", context, {"cron_id": cron}, incident="fp-deact")
    assert record.state == "done", record.error
    assert cron_row(db, cron) == (True, 0, None)
    assert record.backup == {"table": "ir_cron", "id": cron, "name": "Mail: send queue",
                             "active": False, "failure_count": 5,
                             "first_failure_date": "2026-01-02T03:04:05"}
    assert execute("reactivate_cron", context, {"cron_id": cron}).state == "noop"
    rollback_run(record, context)
    assert cron_row(db, cron) == (False, 5, OLD)


def test_reactivate_takes_the_switch_off_incident_as_the_cause(db, tmp_path):
    """Odoo 18 logs "has been deactivated" after the failure; the scanner folds the failing
    record into it, so no cron_job_failed incident exists: the switch-off (log record or
    database check) is the cause, dealt with once a person acknowledged it."""
    with db.cursor() as cr:
        cr.execute("INSERT INTO ir_cron (cron_name, active, failure_count, first_failure_date, "
                   "ir_actions_server_id) VALUES ('Nightly sync', false, 0, NULL, 77) "
                   "RETURNING id")
        cron_id = cr.fetchone()[0]
        cr.execute("INSERT INTO auto_heal_incident (fingerprint, name, state, pattern_type, "
                   "captures) VALUES ('fp-log', 'deactivated', 'new', 'cron_job_deactivated', "
                   "%s), ('fp-check', 'switched off', 'new', 'cron_switched_off', %s), "
                   "('fp-else', 'another job', 'new', 'cron_switched_off', %s)",
                   [json.dumps({"cron_id": str(cron_id)}),
                    json.dumps({"check": "cron_switched_off", "cron_id": str(cron_id),
                                "subject": f"cron:{cron_id}"}),
                    json.dumps({"cron_id": str(cron_id + 1000)})])
    context = make_context(db, tmp_path)
    record = execute("reactivate_cron", context, {"cron_id": cron_id})
    assert record.state == "blocked"
    assert "not dealt with yet: deactivated (new), switched off (new)" in record.error
    assert record.plan["target_label"] == f"Scheduled action 'Nightly sync' (#{cron_id})"
    assert sorted(record.plan["details"]["cause"]) == ["fp-check", "fp-log"]

    # only the log record is named: the check's incident does not count
    with db.cursor() as cr:
        cr.execute("UPDATE auto_heal_incident SET state = 'acknowledged' "
                   "WHERE fingerprint = 'fp-log'")
    record = execute("reactivate_cron", context, {"cron_id": cron_id, "cause": ["fp-log"]})
    assert record.state == "done", record.error
    assert cron_row(db, cron_id) == (True, 0, None)


def test_reactivate_with_a_named_cause_and_unknown_cron(db, cron, tmp_path):
    context = make_context(db, tmp_path)
    record = execute("reactivate_cron", context, {"cron_id": cron, "cause": "fp-nope"})
    assert record.state == "blocked"
    assert "unknown incident(s): fp-nope" in record.error
    with db.cursor() as cr:
        cr.execute("INSERT INTO auto_heal_incident (fingerprint, name, state) "
                   "VALUES ('fp-real', 'smtp down', 'resolved')")
    record = execute("reactivate_cron", context, {"cron_id": cron, "cause": ["fp-real"]})
    assert record.state == "done", record.error
    missing = execute("reactivate_cron", context, {"cron_id": 999999})
    assert missing.state == "blocked"
    assert missing.error == ("planning failed: ActionError: no scheduled action with id 999999 "
                             f"in {rows(db, 'SELECT current_database()')[0][0]}")


def test_reactivate_locked_cron_fails_and_rolls_back(database, db, cron, tmp_path):
    with db.cursor() as cr:
        cr.execute("UPDATE auto_heal_incident SET state = 'resolved'")
    db.commit()
    other = database()  # the cron worker running this very job holds its row
    with other.cursor() as cr:
        cr.execute("SELECT id FROM ir_cron WHERE id = %s FOR NO KEY UPDATE", [cron])
    context = make_context(db, tmp_path)
    record = execute("reactivate_cron", context, {"cron_id": cron})
    assert record.state == "rolled_back"
    assert "ir_cron row(s) " in record.error and "locked by another transaction" in record.error
    other.rollback()
    assert cron_row(db, cron) == (False, 5, OLD)
    with db.cursor() as cr:  # the transaction is still usable: the savepoint took the error
        cr.execute("SELECT 1")


# -- clear_asset_bundles -------------------------------------------------------------------


@pytest.fixture
def assets(db):
    with db.cursor() as cr:
        cr.execute("""
            INSERT INTO ir_attachment (name, url, res_model, res_id, public, create_uid,
                                       checksum, store_fname) VALUES
            ('web.assets_backend.min.js', '/web/assets/abc1234/web.assets_backend.min.js',
             'ir.ui.view', 0, true, 1, 'c1', 'c1/c1aa'),
            ('web.assets_backend.min.css', '/web/assets/def5678/web.assets_backend.min.css',
             'ir.ui.view', 0, true, 1, 'c2', 'c2/c2bb'),
            ('web.assets_frontend.min.js', '/web/assets/0a1b2c3/web.assets_frontend.min.js',
             'ir.ui.view', 0, true, 1, 'c3', 'c3/c3cc'),
            ('invoice.pdf', '/web/content/7', 'account.move', 7, false, 2, 'c4', 'c4/c4dd'),
            ('my.min.js', '/web/assets/custom/my.min.js', 'ir.ui.view', 0, true, 2, 'c5',
             'c5/c5ee')
        """)
    db.commit()
    return db


def builder(db, fail=False):
    """What the addon's hook does: Odoo builds the bundle into new attachments."""
    built = []

    def regenerate(bundle):
        built.append(bundle)
        if fail:
            return False, "css error: Undefined variable $o-brand"
        with db.cursor() as cr:
            for ext in ("min.js", "min.css"):
                cr.execute("INSERT INTO ir_attachment (name, url, res_model, res_id, public, "
                           "create_uid, checksum, store_fname) VALUES (%s, %s, 'ir.ui.view', "
                           "0, true, 1, 'n', 'n/new')",
                           [f"{bundle}.{ext}", f"/web/assets/fff0000/{bundle}.{ext}"])
        return True, "2 attachments built"

    return regenerate, built


def test_clear_assets_then_the_backend_bundle_builds_again(assets, tmp_path):
    regenerate, built = builder(assets)
    forgotten = []
    context = make_context(assets, tmp_path, regenerate_assets=regenerate,
                           assets_deleted=lambda names: forgotten.extend(names) or "marked")
    record = execute("clear_asset_bundles", context, incident="fp-assets")
    assert record.state == "done", record.error
    assert record.plan["steps"][0] == (
        "delete 3 ir.attachment row(s) of every asset bundle: web.assets_backend.min.css, "
        "web.assets_backend.min.js, web.assets_frontend.min.js")
    assert [(row["name"], row["checksum"]) for row in record.backup["rows"]] == [
        ("web.assets_backend.min.js", "c1"), ("web.assets_backend.min.css", "c2"),
        ("web.assets_frontend.min.js", "c3")]
    assert forgotten == ["c1/c1aa", "c2/c2bb", "c3/c3cc"]
    assert built == ["web.assets_backend"]
    assert sorted(rows(assets, "SELECT name, url FROM ir_attachment")) == [
        ("invoice.pdf", "/web/content/7"), ("my.min.js", "/web/assets/custom/my.min.js"),
        ("web.assets_backend.min.css", "/web/assets/fff0000/web.assets_backend.min.css"),
        ("web.assets_backend.min.js", "/web/assets/fff0000/web.assets_backend.min.js")]
    assert "the deleted cache itself is not restored" in record.plan["details"]["note"]
    # A second run deletes the freshly built bundle again: clearing a cache is never a
    # no-op while a cache exists, so the budget, not idempotence, bounds it.
    assert execute("clear_asset_bundles", context, dry_run=True).plan["changes"]


def test_clear_one_bundle_only(assets, tmp_path):
    regenerate, built = builder(assets)
    context = make_context(assets, tmp_path, regenerate_assets=regenerate)
    record = execute("clear_asset_bundles", context, {"bundle": "web.assets_frontend"})
    assert record.state == "done", record.error
    assert built == ["web.assets_frontend"]
    names = sorted(name for (name,) in rows(assets, "SELECT name FROM ir_attachment"))
    assert "web.assets_backend.min.css" in names and "web.assets_frontend.min.css" in names
    assert "1 filestore file(s) were not marked" in record.output


def test_clear_assets_build_failure_escalates(assets, tmp_path):
    regenerate, built = builder(assets, fail=True)
    context = make_context(assets, tmp_path, regenerate_assets=regenerate)
    record = execute("clear_asset_bundles", context)
    assert record.state == "failed"
    assert record.escalate
    assert "web.assets_backend does not build: css error" in record.error
    assert built == ["web.assets_backend", "web.assets_backend"]  # verify, then rollback


def test_clear_assets_needs_the_build_hook(assets, tmp_path):
    record = execute("clear_asset_bundles", make_context(assets, tmp_path))
    assert record.state == "blocked"
    assert "no regenerate_assets hook" in record.error
    assert len(rows(assets, "SELECT id FROM ir_attachment")) == 5


def test_savepoint_keeps_the_transaction_usable(db):
    with db.cursor() as cr:
        with pytest.raises(Exception, match="no_such_table"):
            with savepoint(cr):
                cr.execute("SELECT * FROM no_such_table")
        cr.execute("SELECT 1")
        assert cr.fetchone() == (1,)


def test_actions_are_registered_as_odoo_actions():
    for name in ("reset_stuck_module_states", "reactivate_cron", "clear_asset_bundles"):
        action = get_action(name)
        assert action.runs_on == "odoo" and action.description
