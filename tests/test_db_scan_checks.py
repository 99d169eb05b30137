"""The checks of engine/checks/ through the "scan database" cron, on real states.

- mails Odoo itself marks failed: a mail server on a closed port, and
  ``mail.mail.send`` run the way the mail queue runs it (Odoo's test mode,
  which never connects, is lifted for that call only); a mail left outgoing;
- an id sequence of a real Odoo table moved near its end with ``setval``;
- this server's own options: workers = 2 without gevent (not installed in this
  Odoo's Python), memory and time limits, the master password;
- real HTTP requests with X-Forwarded-* headers while proxy_mode is off, and
  a report URL that does not answer;
- the watchdog's backup report (the engine's own results, handed over as the
  watchdog hands them) in the health report, and a dumps folder Odoo reads itself.
"""

import importlib.util
import json
import secrets
import shutil
import socket
import tempfile
import uuid
from datetime import timedelta
from unittest.mock import patch

import odoo
from odoo import fields
from odoo.tests import HttpCase, TransactionCase, new_test_user, tagged
from odoo.tools import config


def closed_port():
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScanMixin:
    def scan(self):
        scan = self.env["auto_heal.db.scan"]._scan_database()
        self.assertFalse(scan.errors, scan.errors)
        return scan

    @staticmethod
    def line(scan, check):
        return scan.check_ids.filtered(lambda line: line.check == check)

    def incident(self, check, subject):
        found = self.env["auto_heal.incident"].search(
            [("pattern_type", "=", check), ("source", "=", "database")]).filtered(
            lambda i: json.loads(i.captures or "{}").get("subject") == subject)
        self.assertEqual(len(found), 1, "one %s incident for %s" % (check, subject))
        return found

    def subjects(self, check):
        return {json.loads(i.captures or "{}").get("subject"): i
                for i in self.env["auto_heal.incident"].search(
                    [("pattern_type", "=", check), ("source", "=", "database"),
                     ("state", "not in", ("resolved", "ignored"))])}


@tagged("post_install", "-at_install")
class TestScanNewChecks(ScanMixin, TransactionCase):
    def test_mails_failed_by_their_server_and_mails_waiting(self):
        server = self.env["ir.mail_server"].create({
            "name": "auto_heal test: SMTP down", "smtp_host": "127.0.0.1",
            "smtp_port": closed_port(), "smtp_encryption": "none",
        })
        mails = self.env["mail.mail"].create([{
            "subject": "Invoice %d" % n, "body_html": "<p>Hello</p>",
            "email_from": "odoo@example.com", "email_to": "customer%d@example.com" % n,
            "mail_server_id": server.id} for n in range(3)])
        # the mail queue's own call; Odoo's test mode would skip the connection
        with patch.object(odoo.modules.module, "current_test", False):
            mails.send(raise_exception=False)
        # what Odoo 18 does when the server refuses the connection: no failure type on
        # the mail (only on its notifications), the error as failure_reason, no log line
        self.assertEqual(set(mails.mapped("state")), {"exception"})
        self.assertIn("Connection refused", mails[0].failure_reason)
        # a recipient's own problem is not the server's
        bad_address = self.env["mail.mail"].create({
            "subject": "x", "body_html": "<p>x</p>", "email_to": "not an address",
            "mail_server_id": server.id})
        bad_address.write({"state": "exception", "failure_type": "mail_email_invalid"})
        # a mail nobody sent for two hours (no server set: the default one)
        waiting = self.env["mail.mail"].create({
            "subject": "Waiting", "body_html": "<p>x</p>", "email_to": "a@example.com"})
        self.env.flush_all()
        self.env.cr.execute("UPDATE mail_mail SET create_date = (now() AT TIME ZONE 'UTC') "
                            "- interval '2 hours' WHERE id = %s", [waiting.id])

        scan = self.scan()
        self.assertIn(self.line(scan, "mail_queue_stuck").status, ("warning", "critical"))
        failed = self.incident("mail_queue_stuck", "mail_server:%d" % server.id)
        self.assertEqual(failed.severity, "high")
        self.assertIn("3 mail(s) failed in the last 24.0 h", failed.message)
        self.assertIn("Connection refused", failed.message)
        self.assertIn("Test Connection", failed.sample)
        self.assertIn("auto_heal test: SMTP down", failed.message)
        default = self.incident("mail_queue_stuck", "mail_server:default")
        self.assertIn("1 mail(s) waiting to be sent, the oldest for 2.0 h", default.message)

        # 10 failures: critical
        more = self.env["mail.mail"].create([{
            "subject": "More %d" % n, "body_html": "<p>x</p>", "email_to": "c@example.com",
            "mail_server_id": server.id} for n in range(7)])
        with patch.object(odoo.modules.module, "current_test", False):
            more.send(raise_exception=False)
        self.scan()
        self.assertEqual(failed.severity, "critical")
        # retried and sent: the scan resolves it
        (mails | more).write({"state": "sent", "failure_type": False})
        waiting.write({"state": "sent"})
        self.scan()
        self.assertEqual(failed.state, "resolved")
        self.assertEqual(default.state, "resolved")

    def test_sequence_of_a_real_table_near_its_end(self):
        self.env.cr.execute("SELECT pg_get_serial_sequence('res_partner_category', 'id')")
        [sequence] = self.env.cr.fetchone()
        self.env.cr.execute("SELECT last_value, is_called FROM %s" % sequence)
        # setval is not transactional: the test's rollback would not undo it
        self.addCleanup(self.env.cr.execute, "SELECT setval(%s, %s, %s)",
                        [sequence, *self.env.cr.fetchone()])
        self.env.cr.execute("SELECT setval(%s, %s)", [sequence, int(2147483647 * 0.92)])
        scan = self.scan()
        self.assertEqual(self.line(scan, "id_sequence_exhaustion").status, "critical")
        incident = self.incident("id_sequence_exhaustion", "sequence:%s" % sequence)
        self.assertEqual(incident.severity, "critical")
        self.assertIn("public.res_partner_category.id (integer", incident.message)
        self.assertIn("92.0%", incident.message)
        self.assertIn("ALTER TABLE public.res_partner_category ALTER COLUMN id TYPE bigint",
                      incident.sample)
        counters = json.loads(scan.counters)
        self.assertIn(sequence, counters["sequences"])

    def test_workers_without_gevent(self):
        if importlib.util.find_spec("gevent") is not None:
            self.skipTest("gevent is installed in this Odoo's Python")
        with patch.dict(config.options, workers=2):
            scan = self.scan()
        line = self.line(scan, "realtime_unavailable")
        self.assertEqual(line.status, "critical")
        incident = self.incident("realtime_unavailable", "config:workers")
        self.assertIn("workers = 2 but the real-time channel does not work", incident.message)
        self.assertIn("gevent is not installed in Odoo's Python", incident.message)
        self.assertIn("Realtime connection lost", incident.sample)
        # the threaded server (workers = 0) serves /websocket itself
        self.scan()
        self.assertEqual(incident.state, "resolved")

    def test_memory_and_time_limits_against_the_host(self):
        from ..engine.checks.deployment_facts import host_resources

        _cpus, memory = host_resources()
        cron = self.env["ir.cron"].create({
            "name": "auto_heal test: long cron", "model_id": self.env.ref(
                "base.model_res_partner").id, "state": "code", "code": "model.browse()",
            "interval_number": 1, "interval_type": "days"})
        self.env["ir.cron.progress"].create({"cron_id": cron.id})
        self.env.flush_all()
        # its last run started 100 s before it ended (lastcall)
        self.env.cr.execute(
            "UPDATE ir_cron_progress SET create_date = (now() AT TIME ZONE 'UTC') "
            "- interval '100 seconds' WHERE cron_id = %s", [cron.id])
        self.env.cr.execute("UPDATE ir_cron SET lastcall = (now() AT TIME ZONE 'UTC') "
                            "WHERE id = %s", [cron.id])
        with patch.dict(config.options, workers=2, max_cron_threads=1,
                        limit_memory_hard=memory, limit_time_real=60,
                        limit_time_real_cron=-1):
            self.scan()
        found = self.subjects("workers_sizing")
        memory_incident = found["config:limit_memory_hard"]
        self.assertEqual(memory_incident.severity, "high")  # 300 % of RAM: critical
        self.assertIn("2 worker(s) + 1 cron thread(s)", memory_incident.message)
        timing = found["config:limit_time_real"]
        self.assertIn("auto_heal test: long cron", timing.message)
        self.assertIn("the cron time limit is 60 s (limit_time_real)", timing.message)

    def test_master_password_weak_never_shown(self):
        from odoo.tools.config import crypt_context

        guessable = crypt_context.hash("changeme")  # as Odoo stores it: pbkdf2-sha512
        with patch.dict(config.options, admin_passwd=guessable, list_db=True):
            self.scan()
        incident = self.incident("database_manager_exposed", "config:admin_passwd")
        self.assertEqual(incident.severity, "critical")
        self.assertIn("trivially guessable", incident.message)
        for text in (incident.message, incident.sample, incident.signature,
                     incident.captures):
            self.assertNotIn("changeme", text)
            self.assertNotIn(guessable[20:40], text)
        self.assertIn("config:list_db", self.subjects("database_manager_exposed"))
        # the default: Odoo's 'admin' when odoo.conf sets nothing
        with patch.dict(config.options, admin_passwd="admin", list_db=False):
            scan = self.scan()
        line = self.line(scan, "database_manager_exposed")
        self.assertEqual(line.status, "warning", "list_db off blocks the manager")
        self.assertIn("still Odoo's default, 'admin'", line.message)
        # a long random one, list_db off: nothing to report
        with patch.dict(config.options, admin_passwd=crypt_context.hash(
                secrets.token_urlsafe(24)), list_db=False):
            scan = self.scan()
        self.assertEqual(self.line(scan, "database_manager_exposed").status, "ok")
        self.assertEqual(incident.state, "resolved")


@tagged("post_install", "-at_install")
class TestRequestOrigins(ScanMixin, HttpCase):
    def test_forwarded_headers_while_proxy_mode_is_off(self):
        self.assertFalse(config["proxy_mode"], "the test server runs without proxy_mode")
        host = "erp-%s.example.com" % secrets.token_hex(3)
        headers = {"X-Forwarded-Host": host, "X-Forwarded-Proto": "https",
                   "X-Forwarded-For": "203.0.113.7"}
        response = self.url_open("/web/login", headers=headers)
        self.assertEqual(response.status_code, 200)
        origin = self.env["auto_heal.http.origin"].search([("forwarded_host", "=", host)])
        self.assertEqual((origin.scheme, origin.forwarded_proto, origin.forwarded_for,
                          origin.proxy_mode, origin.hits), ("http", "https", True, False, 1))
        self.assertTrue(origin.host.startswith("127.0.0.1:"))

        self.scan()
        proxy = self.incident("base_url_mismatch", "config:proxy_mode")
        self.assertIn("proxy_mode is off but", proxy.message)
        self.assertIn("X-Forwarded-Host %s" % host, proxy.message)
        base = self.incident("base_url_mismatch", "config:web.base.url")
        self.assertIn("requests arrive as https://%s" % host, base.message)
        self.assertIn("web.base.url.freeze", base.sample)

        # with proxy_mode on, Odoo applies the headers: the request is seen as https://host
        with patch.dict(config.options, proxy_mode=True):
            self.url_open("/web/login", headers=headers)
        applied = self.env["auto_heal.http.origin"].search([("proxy_mode", "=", True),
                                                            ("forwarded_host", "=", host)])
        self.assertEqual((applied.host, applied.scheme), (host, "https"))

    def test_report_url_that_does_not_answer(self):
        params = self.env["ir.config_parameter"]
        params.set_param("report.url", "http://127.0.0.1:%d" % closed_port())
        self.scan()
        report = self.incident("base_url_mismatch", "config:report.url")
        self.assertIn("does not answer from the Odoo server", report.message)
        self.assertIn("PDFs come out without their header", report.message)
        params.set_param("report.url", self.base_url())  # this very server: it answers
        self.scan()
        self.assertEqual(report.state, "resolved")


@tagged("post_install", "-at_install")
class TestBackupHealth(ScanMixin, TransactionCase):
    """The backup age in the health report: from the watchdog's hand-over, or the scan."""

    def folder(self):
        path = tempfile.mkdtemp(prefix="auto_heal-test-dumps-")
        self.addCleanup(shutil.rmtree, path, True)
        return path

    def test_the_watchdog_report_reaches_the_health_report(self):
        from ..engine.hostchecks import alert_plan, run_host_checks
        from ..engine.patterns import load_patterns
        from ..engine.scanner import DEFAULT_PATTERNS

        manager = new_test_user(self.env, "ah_backup_wd", groups="base.group_user,"
                                "auto_heal.group_auto_heal_manager")
        # what the watchdog's [backup] check finds in an empty dumps folder
        run = run_host_checks(["backup_stale"], {"backup_dumps_dir": self.folder(),
                                                 "backup_database": "prod"})
        [result] = run.results
        [alert] = alert_plan(run.results, load_patterns(DEFAULT_PATTERNS))
        now = fields.Datetime.now().isoformat() + "+00:00"
        entries = [
            {"id": uuid.uuid4().hex, "kind": "health", "host": "erp1", "time": now,
             "family": "backup", "checks": [result.to_dict()], "errors": []},
            {"id": uuid.uuid4().hex, "kind": "alert", "host": "erp1", "time": now,
             "key": alert.key, "incident": {
                 "pattern": alert.check, "severity": alert.severity, "count": 1,
                 "fingerprint": "wd-backup-prod", "signature": "backup_stale | -",
                 "message": alert.message, "sample": alert.sample,
                 "first_seen": now[:19], "last_seen": now[:19],
                 "source": {"path": alert.subject, "line": 0},
                 "captures": {"host": "erp1", "subject": alert.subject}}},
        ]
        stored = self.env["auto_heal.handover"].with_user(manager).watchdog_handover(entries)
        self.assertEqual(len(stored["stored"]), 2)
        backup = self.env["auto_heal.health"]._report()["checks"]["backup"]
        self.assertEqual(backup["status"], "critical")
        self.assertIn("no dump of prod in", backup["message"])
        self.assertEqual(backup["sources"][0]["host"], "erp1")
        incident = self.env["auto_heal.incident"].search([("fingerprint", "=", "wd-backup-prod")])
        self.assertEqual((incident.pattern_id.check, incident.source, incident.severity),
                         ("backup_stale", "watchdog", "critical"))
        self.assertIn("bin/auto-heal backup --db prod", incident.sample)
        # an ok report that is 7 hours old: the watchdog stopped reporting
        old = dict(entries[0], id=uuid.uuid4().hex, checks=[dict(
            result.to_dict(), status="ok", value=3600, message="the newest verified dump "
            "of prod is 1.0 h old")])
        self.env["auto_heal.handover"].with_user(manager).watchdog_handover([old])
        self.env["auto_heal.handover"].search([("entry_id", "=", old["id"])]).entry_date = \
            fields.Datetime.now() - timedelta(hours=7) + timedelta(seconds=1)
        self.env["auto_heal.handover"].search([("entry_id", "=", entries[0]["id"])]).unlink()
        backup = self.env["auto_heal.health"]._report()["checks"]["backup"]
        self.assertEqual(backup["status"], "warning")
        self.assertIn("the watchdog's last backup report is", backup["message"])

    def test_a_folder_odoo_reads_itself(self):
        folder = self.folder()
        self.env["ir.config_parameter"].set_param("auto_heal.dbcheck.backup_dumps_dir", folder)
        scan = self.scan()
        self.assertEqual(self.line(scan, "backup_stale").status, "critical")
        self.incident("backup_stale", "backup:%s" % folder)
        backup = self.env["auto_heal.health"]._report()["checks"]["backup"]
        self.assertEqual((backup["status"], backup["sources"][0]["source"]),
                         ("critical", "database scan"))
