"""The overview page: its figures on real incidents, fix runs and scans; its views load."""

import secrets
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.tests import Form, TransactionCase, new_test_user, tagged
from odoo.tools import config


@tagged("post_install", "-at_install")
class TestOverview(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Incident = cls.env["auto_heal.incident"]
        cls.Run = cls.env["auto_heal.fix.run"]
        cls.user = new_test_user(cls.env, "ah_overview_user",
                                 groups="base.group_user,auto_heal.group_auto_heal_user")
        params = cls.env["ir.config_parameter"]
        params.set_param("auto_heal.health_disk_warn_percent", "0")
        params.set_param("auto_heal.health_disk_crit_percent", "0")

    def setUp(self):
        super().setUp()
        # The test server runs with Odoo's default master password and list_db on, which
        # the scan's database_manager_exposed check rightly reports: not counted here.
        self.startPatcher(patch.dict(config.options, admin_passwd=secrets.token_urlsafe(24),
                                     list_db=False))

    def open_overview(self, user=None):
        Overview = self.env["auto_heal.overview"]
        if user:
            Overview = Overview.with_user(user)
        action = self.env.ref("auto_heal.action_auto_heal_overview").with_user(
            user or self.env.user).run()
        self.assertEqual((action["res_model"], action["view_mode"]),
                         ("auto_heal.overview", "form"))
        return Overview.browse(action["res_id"])

    def incident(self, fingerprint, severity, state="new"):
        return self.Incident.create({
            "fingerprint": fingerprint, "pattern_type": "db_deadlock", "severity": severity,
            "state": state, "message": f"test incident {fingerprint}",
        })

    def test_figures(self):
        before = self.open_overview()
        base = {name: before[name] for name in (
            "open_critical_count", "open_high_count", "open_medium_count", "open_low_count",
            "open_count", "regressed_count", "pending_approval_count")}

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

        overview = self.open_overview()
        self.assertEqual(overview.open_critical_count - base["open_critical_count"], 1)
        self.assertEqual(overview.open_high_count - base["open_high_count"], 2)
        self.assertEqual(overview.open_medium_count - base["open_medium_count"], 1)
        self.assertEqual(overview.open_low_count - base["open_low_count"], 1)
        self.assertEqual(overview.open_count - base["open_count"], 5)
        self.assertEqual(overview.regressed_count - base["regressed_count"], 1)
        self.assertEqual(overview.pending_approval_count - base["pending_approval_count"], 1)
        self.assertIn(pending, overview.pending_approval_ids)
        self.assertEqual((overview.fix_done_count, overview.fix_failed_count), (3, 2))
        self.assertAlmostEqual(overview.fix_success_rate, 60.0)
        self.assertEqual(overview.health_status, "critical", "an open critical incident")
        self.assertIn("Incidents", overview.health_html)
        self.assertIn("text-bg-danger", overview.health_html)
        self.assertEqual(overview.db_scan_ids[:1], scan)
        self.assertEqual(overview.last_db_scan_date, scan.date)
        self.assertEqual(overview.log_source_ids, self.env["auto_heal.log.source"].search([]))

        # the stat buttons open the matching lists
        critical = overview.with_context(severity="critical").action_open_incidents()
        self.assertEqual(self.Incident.search(critical["domain"]).mapped("fingerprint"),
                         ["ov-c1"])
        regressed = overview.with_context(regressed=True).action_open_incidents()
        self.assertEqual(self.Incident.search(regressed["domain"]).mapped("fingerprint"),
                         ["ov-h2"])
        ended = overview.action_open_fix_runs_ended()
        self.assertEqual(self.Run.search_count(ended["domain"]), 5)

    def test_loads_for_an_auto_heal_user(self):
        self.incident("ov-user", "high")
        overview = self.open_overview(self.user)
        self.assertGreaterEqual(overview.open_high_count, 1)
        self.assertIn(overview.health_status, ("ok", "warning", "critical"))
        self.assertEqual(overview.outbox_count, 0, "the outbox is for managers")
        # the form view renders with every field it shows
        form = Form(overview)
        self.assertEqual(form.open_high_count, overview.open_high_count)

    def test_incident_analysis_views(self):
        self.incident("ov-graph", "high")
        for view_type in ("graph", "pivot"):
            arch = self.Incident.get_view(view_type=view_type)["arch"]
            self.assertIn("first_seen" if view_type == "graph" else "last_seen", arch)
        groups = self.Incident.read_group([], ["count:sum"], ["first_seen:day", "severity"],
                                          lazy=False)
        self.assertTrue(any(group["severity"] == "high" for group in groups))
        action = self.env.ref("auto_heal.action_auto_heal_incident_analysis")
        self.assertTrue(action.view_mode.startswith("graph,pivot"))
