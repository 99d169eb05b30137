"""The backend as a person drives it, in a real Chromium: Odoo's tours.

static/tests/tours/auto_heal_tours.js holds the steps; each test builds the
incidents the way production does (a database scan, a scanned log record), then
runs a tour. A JS error in the page fails the tour. Screenshots of the overview,
an incident and a fix run are taken on the way, into ``$AUTO_HEAL_SCREENSHOT_DIR``
(``make screenshots`` points it at static/description/), else ``.tmp/screenshots``.
"""

import base64
import logging
import os
import time

from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tests.common import ChromeBrowser

from ..engine.incidents import aggregate
from ..engine.scanner import Scanner

_logger = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def screenshot_dir():
    folder = os.environ.get("AUTO_HEAL_SCREENSHOT_DIR") or os.path.join(REPO, ".tmp",
                                                                        "screenshots")
    if not os.path.isabs(folder):
        folder = os.path.join(REPO, folder)
    os.makedirs(folder, exist_ok=True)
    return folder


@tagged("post_install", "-at_install", "auto_heal_tours")
class TestAdminTours(HttpCase):
    browser_size = "1440x1000"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        params = cls.env["ir.config_parameter"]
        params.set_param("auto_heal.environment", "prod")
        params.set_param("auto_heal.health_disk_warn_percent", "0")
        params.set_param("auto_heal.health_disk_crit_percent", "0")
        cls.user = new_test_user(cls.env, "ah_tour_user", password="ah_tour_user",
                                 groups="base.group_user,auto_heal.group_auto_heal_user")
        cls.Incident = cls.env["auto_heal.incident"]
        cls.Run = cls.env["auto_heal.fix.run"]

    def setUp(self):
        super().setUp()
        self.started = time.monotonic()

    def tearDown(self):
        _logger.info("auto_heal measure: %s took %.1f s", self._testMethodName,
                     time.monotonic() - self.started)
        super().tearDown()

    # -- what production does -------------------------------------------------------------

    def stuck_modules(self, *names):
        """Modules left 'to upgrade' two hours ago; the database scan makes their incidents."""
        modules = self.env["ir.module.module"].search([("name", "in", names)])
        self.assertEqual(len(modules), len(names))
        modules.write({"state": "to upgrade"})
        self.env.flush_all()  # the ORM's write_date first, then the older one
        self.env.cr.execute(
            "UPDATE ir_module_module SET write_date = (now() AT TIME ZONE 'UTC') - "
            "interval '2 hours' WHERE id = ANY(%s)", [modules.ids])
        modules.invalidate_recordset()
        self.env["auto_heal.db.scan"]._scan_database()
        incidents = self.Incident.search([("pattern_type", "=", "module_operation_stuck")])
        self.assertEqual(len(incidents), len(names), incidents.mapped("name"))
        for incident in incidents:
            self.assertEqual(incident.waiting_run_id.state, "pending", incident.name)
        return modules, incidents

    def deactivated_cron(self):
        """A job Odoo 18 switched off, and the log record saying so, scanned by the engine."""
        cron = self.env["ir.cron"].create({
            "name": "Auto-Heal tour: nightly sync", "model_id": self.env.ref(
                "base.model_res_partner").id, "state": "code", "code": "model.browse()",
            "interval_number": 1, "interval_type": "days", "active": False})
        record = (f"2026-11-29 16:15:02,544 10814 WARNING {self.env.cr.dbname} "
                  f"odoo.addons.base.models.ir_cron: Cron job 'Auto-Heal tour: nightly sync' "
                  f"({cron.id}) has been deactivated after failing 5 times. More information "
                  f"can be found in the server logs around 2026-11-29 16:15:02. \n")
        patterns = self.env["auto_heal.pattern"]._get_scan_patterns()
        findings = Scanner(patterns).scan_bytes(record.encode())
        self.Incident._record_engine_incidents(aggregate(findings), source="log")
        incident = self.Incident.search([("pattern_type", "=", "cron_job_deactivated")])
        self.assertEqual(len(incident), 1)
        return cron, incident

    # -- screenshots ------------------------------------------------------------------------

    def screenshot(self, url, ready, filename, login="admin"):
        """Open *url* in Chromium, wait for the *ready* selector, save a PNG."""
        browser = ChromeBrowser(self, headless=True)
        try:
            self.authenticate(login, login, browser=browser)
            self.cr.flush()
            self.cr.clear()
            browser.navigate_to(self.base_url() + url, wait_stop=False)
            self.assertTrue(browser._wait_ready(
                f"!!document.querySelector({ready!r}) && "
                "!document.querySelector('.o_loading_indicator, .o_blockUI')"),
                f"{url}: {ready} never showed")
            time.sleep(0.5)  # the chart's first frame
            data = browser._websocket_request("Page.captureScreenshot",
                                              params={"format": "png"}, timeout=30)["data"]
        finally:
            browser.stop()
            self._wait_remaining_requests()
        path = os.path.join(screenshot_dir(), filename)
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(data))
        _logger.info("auto_heal: screenshot %s", path)
        self.assertGreater(os.path.getsize(path), 10000)

    # -- the tours --------------------------------------------------------------------------

    def test_admin_closes_the_loop(self):
        modules, incidents = self.stuck_modules("mail")
        incident = incidents
        run = incident.waiting_run_id
        self.assertIn("mail: to upgrade -> installed", run.plan)
        self.screenshot("/odoo/auto-heal", ".o_auto_heal_attention_row", "overview.png")
        self.screenshot(f"/odoo/auto-heal-incidents/{incident.id}", ".o_auto_heal_what_to_do",
                        "incident.png")
        self.screenshot(f"/odoo/auto-heal-fix-runs/{run.id}", "div[name='plan']",
                        "fix_run.png")

        self.start_tour("/odoo/auto-heal", "auto_heal_admin_loop", login="admin")

        self.assertEqual(run.state, "done", run.error)
        self.assertEqual(run.approved_by, self.env.ref("base.user_admin"))
        self.assertEqual(modules.state, "installed")
        self.assertEqual(incident.state, "resolved")
        self.assertTrue(run.resolved_incident)

    def test_reject_with_a_reason(self):
        _modules, incidents = self.stuck_modules("mail", "web_tour")
        self.start_tour("/odoo/auto-heal", "auto_heal_reject", login="admin")
        rejected = self.Run.search([("state", "=", "rejected")])
        self.assertEqual(len(rejected), 1)
        self.assertEqual(rejected.reject_reason, "Not during the month-end close")
        self.assertEqual(rejected.rejected_by, self.env.ref("base.user_admin"))
        self.assertEqual(self.Run.search_count([("incident_id", "in", incidents.ids),
                                                ("state", "=", "pending")]), 1)

    def test_a_user_reads_but_approves_nothing(self):
        _modules, incidents = self.stuck_modules("mail")
        self.start_tour("/odoo/auto-heal", "auto_heal_user_reads_only", login="ah_tour_user")
        self.assertEqual(incidents.waiting_run_id.state, "pending")
        self.assertEqual(incidents.state, "new")

    def test_a_failed_precondition_shows_a_banner_and_no_approve(self):
        cron, incident = self.deactivated_cron()
        run = incident.waiting_run_id
        self.assertEqual(run.action, "reactivate_cron")
        self.assertTrue(run.precondition_failed, run.preconditions)
        self.start_tour("/odoo/auto-heal-fix-runs", "auto_heal_precondition_banner",
                        login="admin")
        self.assertEqual(run.state, "done", run.error)
        self.assertTrue(cron.active)
        self.assertEqual(incident.state, "resolved")
