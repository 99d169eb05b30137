"""The overview dashboard: its figures on real incidents, fix runs and scans; its action."""

import secrets
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import config


@tagged("post_install", "-at_install")
class TestOverview(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Incident = cls.env["auto_heal.incident"]
        cls.Run = cls.env["auto_heal.fix.run"]
        cls.Overview = cls.env["auto_heal.overview"]
        cls.user = new_test_user(cls.env, "ah_overview_user",
                                 groups="base.group_user,auto_heal.group_auto_heal_user")
        cls.outsider = new_test_user(cls.env, "ah_overview_outsider", groups="base.group_user")
        params = cls.env["ir.config_parameter"]
        params.set_param("auto_heal.health_disk_warn_percent", "0")
        params.set_param("auto_heal.health_disk_crit_percent", "0")

    def setUp(self):
        super().setUp()
        # The test server runs with Odoo's default master password and list_db on, which
        # the scan's database_manager_exposed check rightly reports: not counted here.
        self.startPatcher(patch.dict(config.options, admin_passwd=secrets.token_urlsafe(24),
                                     list_db=False))

    def incident(self, fingerprint, severity, state="new", **values):
        return self.Incident.create(dict({
            "fingerprint": fingerprint, "pattern_type": "db_deadlock", "severity": severity,
            "state": state, "message": f"test incident {fingerprint}",
        }, **values))

    def test_the_overview_is_a_client_action_with_a_stable_url(self):
        action = self.env.ref("auto_heal.action_auto_heal_dashboard")
        self.assertEqual((action.type, action.tag, action.path),
                         ("ir.actions.client", "auto_heal_dashboard", "auto-heal"))
        menu = self.env.ref("auto_heal.menu_auto_heal_overview")
        self.assertEqual(menu.action, action)

    def test_figures_each_once(self):
        before = self.Overview.get_dashboard_data()["kpis"]
        self.incident("ov-c1", "critical")
        self.incident("ov-h1", "high")
        self.incident("ov-h2", "high", state="regressed")
        self.incident("ov-m1", "medium", state="acknowledged")
        self.incident("ov-l1", "low")
        self.incident("ov-c-resolved", "critical", state="resolved")
        self.incident("ov-c-ignored", "critical", state="ignored")
        target = self.incident("ov-runs", "medium", state="resolved")
        now = fields.Datetime.now()
        for index, state in enumerate(("done", "done", "done", "failed", "rolled_back")):
            self.Run.create({"incident_id": target.id, "action": f"test_action_{index}",
                             "state": state, "ended_date": now - timedelta(hours=index)})
        self.Run.create({"incident_id": target.id, "action": "test_old", "state": "failed",
                         "ended_date": now - timedelta(days=45)})  # outside the 30 days
        pending = self.Run.create({"incident_id": target.id, "action": "test_pending",
                                   "state": "pending"})
        scan = self.env["auto_heal.db.scan"]._scan_database()

        data = self.Overview.get_dashboard_data()
        kpis, opened = data["kpis"], data["kpis"]["open"]
        for severity, added in (("critical", 1), ("high", 2), ("medium", 1), ("low", 1)):
            self.assertEqual(opened[severity] - before["open"][severity], added, severity)
        self.assertEqual(opened["total"] - before["open"]["total"], 5)
        self.assertEqual(opened["regressed"] - before["open"]["regressed"], 1)
        self.assertEqual(kpis["waiting_approval"] - before["waiting_approval"], 1)
        self.assertEqual((kpis["fixes_done"], kpis["fixes_failed"], kpis["fix_rate"]),
                         (3, 2, 60))
        self.assertEqual(kpis["fix_rate_text"], "60 %")
        self.assertEqual(data["health"]["status"], "critical", "an open critical incident")
        labels = {row["name"]: row for row in data["health"]["rows"]}
        self.assertEqual(labels["incidents"]["status"], "critical")
        self.assertEqual(data["scans"]["db_scan"]["id"], scan.id)

        # Needs attention: the open critical and high incidents, and the waiting run
        attention = {(row["kind"], row["name"]) for row in data["attention"]}
        names = {self.Incident.search([("fingerprint", "=", fp)]).name
                 for fp in ("ov-c1", "ov-h1", "ov-h2")}
        self.assertLessEqual({("incident", name) for name in names}, attention)
        self.assertIn(("run", pending.name), attention)
        self.assertFalse({("incident", self.Incident.search([("fingerprint", "=", fp)]).name)
                          for fp in ("ov-m1", "ov-l1", "ov-c-resolved")} & attention)
        review = self.Overview.action_open_review("run", pending.id)
        self.assertEqual((review["res_model"], review["res_id"]), ("auto_heal.fix.run",
                                                                   pending.id))

        # each figure opens the list behind it
        critical = self.Overview.action_open_incidents(severity="critical")
        self.assertEqual(self.Incident.search(critical["domain"]).mapped("fingerprint"),
                         ["ov-c1"])
        regressed = self.Overview.action_open_incidents(regressed=True)
        self.assertEqual(self.Incident.search(regressed["domain"]).mapped("fingerprint"),
                         ["ov-h2"])
        ended = self.Overview.action_open_fix_runs_ended()
        self.assertEqual(self.Run.search_count(ended["domain"]), 5)

    def test_a_fix_rate_without_fixes_is_a_dash(self):
        self.Run.search([]).unlink()
        kpis = self.Overview.get_dashboard_data()["kpis"]
        self.assertIsNone(kpis["fix_rate"])
        self.assertEqual(kpis["fix_rate_text"], "\u2014")

    def test_incidents_per_day_by_severity(self):
        now = fields.Datetime.now()
        self.incident("ov-day-1", "critical", first_seen=now)
        self.incident("ov-day-2", "critical", first_seen=now)
        self.incident("ov-day-3", "low", first_seen=now - timedelta(days=1))
        chart = self.Overview.get_dashboard_data()["chart"]
        self.assertEqual(len(chart["labels"]), 14)
        self.assertEqual(chart["labels"][-1], fields.Date.to_string(fields.Date.today()))
        self.assertGreaterEqual(chart["series"]["critical"][-1], 2)
        self.assertGreaterEqual(chart["series"]["low"][-2], 1)

    def test_no_log_source_is_a_warning(self):
        self.env["auto_heal.log.source"].search([]).write({"active": False})
        row = {row["name"]: row for row in self.Overview.get_dashboard_data()["health"]["rows"]}
        self.assertEqual(row["log_scan"]["status"], "warning")
        self.assertIn("no active log source", row["log_scan"]["detail"])

    def test_users_read_it_and_others_do_not(self):
        self.incident("ov-user", "high")
        data = self.Overview.with_user(self.user).get_dashboard_data()
        self.assertFalse(data["is_manager"])
        self.assertGreaterEqual(data["kpis"]["open"]["high"], 1)
        self.assertEqual(data["scans"]["outbox"], 0, "the outbox is for managers")
        with self.assertRaises(AccessError):
            self.Overview.with_user(self.outsider).get_dashboard_data()
        with self.assertRaises(AccessError):
            self.Overview.with_user(self.user).action_scan_logs()

    def test_incident_analysis_views(self):
        self.incident("ov-graph", "high")
        graph = self.Incident.get_view(view_type="graph")["arch"]
        self.assertIn('js_class="auto_heal_incident_graph"', graph)
        self.assertIn("first_seen", graph)
        self.assertIn("last_seen", self.Incident.get_view(view_type="pivot")["arch"])
        groups = self.Incident.read_group([], ["count:sum"], ["first_seen:day", "severity"],
                                          lazy=False)
        self.assertTrue(any(group["severity"] == "high" for group in groups))
        action = self.env.ref("auto_heal.action_auto_heal_incident_analysis")
        self.assertTrue(action.view_mode.startswith("graph,pivot"))
