"""``/auto_heal/health`` over real HTTP: the token, the status codes, no session."""

import os
import secrets
from unittest.mock import patch

import odoo
from odoo.tests import HttpCase, tagged
from odoo.tools import config

URL = "/auto_heal/health"


def session_files():
    root = odoo.http.root.session_store.path
    found = set()
    for folder, _dirs, files in os.walk(root):
        found.update(os.path.join(folder, name) for name in files)
    return found


@tagged("post_install", "-at_install")
class TestHealthEndpoint(HttpCase):
    def setUp(self):
        super().setUp()
        params = self.env["ir.config_parameter"]
        self.token = params.get_param("auto_heal.health_token")
        # The disk of the machine running the tests is not what is tested here.
        params.set_param("auto_heal.health_disk_warn_percent", "0")
        params.set_param("auto_heal.health_disk_crit_percent", "0")
        # The test server runs with Odoo's default master password ('admin'), which the
        # database_manager_exposed check rightly calls critical; not what is tested here.
        self.startPatcher(patch.dict(config.options, admin_passwd=secrets.token_urlsafe(24)))
        self.sessions_before = session_files()

    def get(self, query="", headers=None):
        self.env.flush_all()
        response = self.url_open(URL + query, headers=headers)
        self.assertNotIn("Set-Cookie", response.headers, "the endpoint sets no cookie")
        self.assertEqual(response.headers.get("Cache-Control"), "no-store")
        return response

    def assert_forbidden(self, response):
        self.assertEqual(response.status_code, 403)
        self.assertEqual(response.json(), {"status": "forbidden"}, "no detail without a token")

    def tearDown(self):
        self.assertEqual(session_files() - self.sessions_before, set(),
                         "the endpoint created no session file")
        super().tearDown()

    def test_token_made_on_install(self):
        self.assertTrue(self.token)
        self.assertGreaterEqual(len(self.token), 32)

    def test_without_or_with_a_wrong_token(self):
        self.assert_forbidden(self.get())
        self.assert_forbidden(self.get("?token=wrong"))
        self.assert_forbidden(self.get(headers={"X-Auto-Heal-Token": "wrong"}))
        self.assert_forbidden(self.get("?token=" + self.token[:-1]))
        self.assert_forbidden(self.get(f"?token={self.token}&db=no_such_database"))

    def test_healthy_with_a_good_token(self):
        self.env["auto_heal.db.scan"]._scan_database()
        for response in (self.get(headers={"X-Auto-Heal-Token": self.token}),
                         self.get(f"?token={self.token}"),
                         self.get(f"?token={self.token}&db={self.env.cr.dbname}")):
            open_incidents = self.env["auto_heal.incident"].search(
                [("state", "in", ("new", "acknowledged", "regressed"))])
            self.assertEqual(response.status_code, 200, "%s\nopen incidents: %s" % (
                response.text, open_incidents.mapped(lambda i: (i.pattern_type, i.severity,
                                                                i.message))))
            report = response.json()
            self.assertIn(report["status"], ("ok", "warning"))
            self.assertEqual(report["database"], self.env.cr.dbname)
            self.assertEqual(set(report["checks"]), {
                "database", "crons", "modules", "disk", "log_scan", "db_scan", "backup",
                "incidents"})
            self.assertEqual(report["checks"]["backup"]["status"], "ok")
            self.assertIn("backups are not watched", report["checks"]["backup"]["message"])
            database = report["checks"]["database"]
            self.assertEqual(database["status"], "ok")
            self.assertGreater(database["connect_ms"] + database["query_ms"], 0)
            self.assertEqual(report["checks"]["incidents"]["open_critical"], 0)
            self.assertEqual(report["checks"]["db_scan"]["status"], "ok")
            self.assertLess(report["checks"]["db_scan"]["age_seconds"], 600)
            self.assertIn("free_percent", report["checks"]["disk"]["paths"][0])
            self.assertIn("failing", report["checks"]["crons"])

    def test_critical_incident_answers_503(self):
        incident = self.env["auto_heal.incident"].create({
            "fingerprint": "ah-health-critical", "pattern_type": "filestore_not_writable",
            "severity": "critical", "message": "the filestore cannot be written",
        })
        response = self.get(headers={"X-Auto-Heal-Token": self.token})
        self.assertEqual(response.status_code, 503, response.text)
        report = response.json()
        self.assertEqual(report["status"], "critical")
        self.assertEqual(report["checks"]["incidents"]["status"], "critical")
        self.assertEqual(report["checks"]["incidents"]["open_critical"], 1)
        # still no detail without the token
        self.assert_forbidden(self.get())
        incident.action_resolve()
        self.assertEqual(self.get(headers={"X-Auto-Heal-Token": self.token}).status_code, 200)

    def test_get_only_and_odoo_health_unchanged(self):
        self.env.flush_all()
        response = self.opener.post(self.base_url() + URL, data={"token": self.token},
                                    timeout=12)
        self.assertEqual(response.status_code, 405)
        web = self.url_open("/web/health")
        self.assertEqual((web.status_code, web.json()), (200, {"status": "pass"}))
