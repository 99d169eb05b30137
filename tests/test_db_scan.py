"""The "scan database" cron on real states of this database.

Each state is made for real: a cron row with failures, a module left in
'to upgrade', a session idle in a transaction opened from a second
PostgreSQL connection, an attachment whose file was deleted from the
filestore, a table locked by another connection. The scan runs the engine's
checks on the test cursor and the findings become incidents, like the cron.
"""

import base64
import json
import logging
import os
import secrets
from datetime import timedelta
from unittest.mock import patch

import psycopg2
from odoo import fields
from odoo.sql_db import connection_info_for
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from ..engine.checks import CHECKS

_logger = logging.getLogger(__name__)


def second_connection(dbname):
    """A psycopg2 connection of its own to this database (not Odoo's pool)."""
    _dsn, info = connection_info_for(dbname)
    info = dict(info, application_name="auto_heal-test-second")
    return psycopg2.connect(**info)


@tagged("post_install", "-at_install")
class TestDbScan(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Scan = cls.env["auto_heal.db.scan"]
        cls.Incident = cls.env["auto_heal.incident"]
        cls.params = cls.env["ir.config_parameter"]

    def set_check(self, key, value):
        self.params.set_param(f"auto_heal.dbcheck.{key}", str(value))

    def incidents(self, pattern_type):
        return self.Incident.search([("pattern_type", "=", pattern_type),
                                     ("source", "=", "database")])

    def incident_for(self, pattern_type, subject):
        found = self.incidents(pattern_type).filtered(
            lambda i: json.loads(i.captures or "{}").get("subject") == subject)
        self.assertEqual(len(found), 1, f"one {pattern_type} incident for {subject}: "
                                        f"{self.incidents(pattern_type).mapped('captures')}")
        return found

    @staticmethod
    def line(scan, check):
        return scan.check_ids.filtered(lambda line: line.check == check)

    # -- the states -----------------------------------------------------------------------

    def make_failing_cron(self):
        """A cron that failed 4 times in a row over 6 days (Odoo switches off at 5 / 7 d)."""
        return self.env["ir.cron"].create({
            "name": "auto_heal test: failing cron",
            "model_id": self.env.ref("base.model_res_partner").id,
            "state": "code",
            "code": "model.browse()",
            "interval_number": 1,
            "interval_type": "hours",
            "failure_count": 4,
            "first_failure_date": fields.Datetime.now() - timedelta(days=6),
        })

    def make_stuck_module(self, name="mail"):
        module = self.env["ir.module.module"].search([("name", "=", name)])
        self.assertEqual(module.state, "installed")
        module.write({"state": "to upgrade"})
        self.env.flush_all()
        # Left so for an hour (the check's threshold is 30 minutes unchanged).
        self.env.cr.execute(
            "UPDATE ir_module_module SET write_date = (now() AT TIME ZONE 'UTC') "
            "- interval '1 hour' WHERE id = %s", [module.id])
        module.invalidate_recordset()
        return module

    def make_idle_session(self):
        """A second connection: BEGIN; SELECT 1; then nothing (idle in transaction)."""
        connection = second_connection(self.env.cr.dbname)
        self.addCleanup(connection.close)
        self.addCleanup(connection.rollback)
        with connection.cursor() as cr:
            cr.execute("SELECT 1")  # psycopg2 opened the transaction: BEGIN
        self.assertEqual(connection.info.transaction_status,
                         psycopg2.extensions.TRANSACTION_STATUS_INTRANS)
        return connection

    def make_attachment_without_file(self):
        attachment = self.env["ir.attachment"].create({
            "name": "auto_heal-missing.bin",
            "datas": base64.b64encode(secrets.token_bytes(64)),
        })
        self.assertTrue(attachment.store_fname, "attachments go to the filestore")
        path = attachment._full_path(attachment.store_fname)
        self.assertTrue(os.path.isfile(path))
        os.unlink(path)
        return attachment

    # -- tests ----------------------------------------------------------------------------

    def test_every_check_on_real_states_becomes_incidents(self):
        cron = self.make_failing_cron()
        module = self.make_stuck_module()
        pid = self.make_idle_session().get_backend_pid()
        attachment = self.make_attachment_without_file()
        self.set_check("idle_in_transaction_warn_minutes", 0)

        queries_before = self.env.cr.sql_log_count
        scan = self.Scan._cron_scan_database()
        queries = self.env.cr.sql_log_count - queries_before
        _logger.info("auto_heal measure: database scan on the test database: checks %.3f s in "
                     "%d statements; whole scan %.3f s in %d queries (%d measured outside)",
                     scan.duration, scan.statements, scan.total_duration, scan.queries, queries)

        self.assertEqual(scan.trigger, "cron")
        self.assertEqual(scan.check_count, len(CHECKS))
        self.assertEqual(sorted(scan.check_ids.mapped("check")), sorted(CHECKS))
        self.assertFalse(scan.errors, scan.errors)
        self.assertIn(scan.state, ("warning", "critical"))
        self.assertGreater(scan.statements, len(CHECKS))
        self.assertGreaterEqual(scan.queries, scan.statements)

        # a cron with failures: failing, and about to be switched off
        failing = self.incident_for("cron_failing", f"cron:{cron.id}")
        self.assertEqual(failing.pattern_id.check, "cron_failing")
        self.assertEqual(failing.severity, "medium")
        self.assertIn("auto_heal test: failing cron", failing.message)
        self.incident_for("cron_near_deactivation", f"cron:{cron.id}")
        self.assertEqual(self.line(scan, "cron_failing").status, "warning")

        # a module left in 'to upgrade': an incident, and its fix run planned
        stuck = self.incident_for("module_operation_stuck", f"module:{module.name}")
        self.assertEqual(stuck.severity, "high")
        run = stuck.fix_run_ids
        self.assertEqual(run.action, "reset_stuck_module_states")
        self.assertEqual(json.loads(run.params), {"modules": [module.name]})
        self.assertEqual(run.state, "pending", run.plan)  # prod: high needs approval
        self.assertIn(module.name, run.plan)

        # the idle session of the second connection
        idle = self.incident_for("pg_idle_in_transaction", f"pid:{pid}")
        self.assertIn(str(pid), idle.message)

        # the attachment whose file was deleted
        filestore = self.env["ir.attachment"]._filestore()
        missing = self.incident_for("filestore_files_missing", f"filestore:{filestore}")
        self.assertIn(attachment.store_fname, missing.sample)
        self.assertIn(self.line(scan, "filestore_files_missing").status,
                      ("warning", "critical"))

        # five made here (the test database may have more problems of its own)
        self.assertGreaterEqual(scan.incident_created_count, 5)
        self.assertEqual(self.Incident.search_count([("source", "=", "database")]),
                         scan.incident_created_count)
        self.assertEqual(self.line(scan, "pg_deadlocks_growing").status, "ok")

        # a second scan: the same incidents count once more, from the kept counters
        again = self.Scan._scan_database()
        self.assertEqual(again.incident_created_count, 0)
        self.assertEqual(again.incident_updated_count, scan.incident_created_count)
        self.assertEqual(failing.count, 2)
        self.assertEqual(len(run | stuck.fix_run_ids), 1, "no second open fix run")
        self.assertIn("first measure", self.line(scan, "pg_deadlocks_growing").message)
        self.assertNotIn("first measure", self.line(again, "pg_deadlocks_growing").message)
        self.assertEqual(json.loads(again.counters)["deadlocks"]["count"],
                         json.loads(scan.counters)["deadlocks"]["count"])

    def test_bad_setting_stops_only_its_checks(self):
        cron = self.make_failing_cron()
        self.set_check("idle_in_transaction_warn_minutes", "soon")
        self.set_check("statement_timeout_ms", "fast")
        scan = self.Scan._cron_scan_database()
        idle = self.line(scan, "pg_idle_in_transaction")
        self.assertEqual(idle.status, "error")
        self.assertIn("'soon' is not a float", idle.error)
        self.assertIn("(settings): setting statement_timeout_ms: 'fast' is not a int; the "
                      "default 5000 is used", scan.errors)
        self.assertIn("pg_idle_in_transaction: setting idle_in_transaction_warn_minutes",
                      scan.errors)
        self.assertEqual(scan.error_count, 2)
        # the others ran
        ran = scan.check_ids.filtered(lambda line: line.status != "error")
        self.assertEqual(len(ran), len(CHECKS) - 1)
        self.incident_for("cron_failing", f"cron:{cron.id}")

    def test_check_blocked_by_a_lock_records_its_error_and_the_others_run(self):
        """Another connection holds a table (a migration, say): its checks give up."""
        self.set_check("lock_timeout_ms", 200)
        cron = self.make_failing_cron()
        holder = second_connection(self.env.cr.dbname)
        self.addCleanup(holder.close)
        self.addCleanup(holder.rollback)
        with holder.cursor() as cr:
            cr.execute("SET lock_timeout = '5s'")
            cr.execute("LOCK TABLE ir_cron_progress IN ACCESS EXCLUSIVE MODE")
        scan = self.Scan._cron_scan_database()
        errors = scan.check_ids.filtered(lambda line: line.status == "error")
        self.assertTrue(errors)
        self.assertEqual(set(errors.mapped("check")) - {"cron_stuck", "cron_switched_off",
                                                        "workers_sizing"},
                         set(), errors.mapped("check"))
        for line in errors:
            self.assertIn("LockNotAvailable", line.error)
        self.assertEqual(len(scan.check_ids) - len(errors), len(CHECKS) - len(errors))
        self.assertEqual(self.line(scan, "cron_failing").status, "warning")
        self.incident_for("cron_failing", f"cron:{cron.id}")
        # the test's own transaction is intact
        self.assertTrue(cron.exists())

    def test_switched_off_check_pattern_is_not_run(self):
        pattern = self.env["auto_heal.pattern"].search([("type", "=", "cron_failing")])
        pattern.active = False
        self.make_failing_cron()
        scan = self.Scan._scan_database(trigger="manual")
        self.assertEqual(scan.check_count, len(CHECKS) - 1)
        self.assertFalse(self.line(scan, "cron_failing"))
        self.assertFalse(self.incidents("cron_failing"))

    def test_old_scans_are_pruned(self):
        old = self.Scan.create({"date": fields.Datetime.now() - timedelta(days=40)})
        kept = self.Scan.create({"date": fields.Datetime.now() - timedelta(days=5)})
        scan = self.Scan._scan_database()
        self.assertFalse(old.exists())
        self.assertTrue(kept.exists() and scan.exists())

    def test_recovered_subject_is_resolved_and_regresses_when_back(self):
        cron = self.make_failing_cron()
        session = self.make_idle_session()
        pid = session.get_backend_pid()
        self.set_check("idle_in_transaction_warn_minutes", 0)
        self.Scan._scan_database()
        failing = self.incident_for("cron_failing", f"cron:{cron.id}")
        idle = self.incident_for("pg_idle_in_transaction", f"pid:{pid}")
        self.assertEqual((failing.state, idle.state), ("new", "new"))

        # the cron ran fine and the session ended its transaction
        cron.write({"failure_count": 0, "first_failure_date": False})
        session.rollback()
        scan = self.Scan._scan_database()
        self.assertEqual((failing.state, idle.state), ("resolved", "resolved"))
        self.assertGreaterEqual(scan.incident_resolved_count, 2)
        self.assertIn("no longer reports cron:%d" % cron.id,
                      str(failing.message_ids[:1].body))

        # a check that could not run resolves nothing; failing again is a regression
        cron.write({"failure_count": 1, "first_failure_date": fields.Datetime.now()})
        self.Scan._scan_database()
        self.assertEqual((failing.state, failing.regression_count), ("regressed", 1))
        cron.write({"failure_count": 0, "first_failure_date": False})
        self.set_check("cron_failing_min_failures", "one")
        self.Scan._scan_database()
        self.assertEqual(failing.state, "regressed", "a blocked check resolves nothing")

        self.params.set_param("auto_heal.dbcheck.cron_failing_min_failures", "1")
        self.params.set_param("auto_heal.dbcheck_auto_resolve", "0")
        self.Scan._scan_database()
        self.assertEqual(failing.state, "regressed", "auto-resolve switched off")

    def test_cron_never_raises(self):
        """A bug anywhere in the scan is recorded as a failed scan; the cron goes on."""
        cron = self.make_failing_cron()
        with patch.object(type(self.Scan), "_check_lines", side_effect=RuntimeError("boom")), \
                mute_logger("odoo.addons.auto_heal.models.auto_heal_db_scan"):
            scan = self.Scan._cron_scan_database()
        self.assertEqual((scan.state, scan.errors), ("error", "(scan): RuntimeError: boom"))
        # what the failed scan did was rolled back with its savepoint, the rest is intact
        self.assertFalse(self.incidents("cron_failing"))
        self.assertTrue(cron.exists())
        self.assertIn(self.Scan._cron_scan_database().state, ("warning", "critical"))
        self.incident_for("cron_failing", f"cron:{cron.id}")
