"""The approval views in a real browser (Chromium): a stale run's form shows the warning,
both plans side by side and the buttons to approve the new plan or re-plan; the
waiting list shows the time left and the approvals still needed."""

import json
from datetime import timedelta

from odoo import fields
from odoo.tests import HttpCase, tagged

#: Runs in the page: waits for what the test expects, then says "test successful";
#: anything missing is a console error (the test fails with its text).
CHECK = """
(async () => {
    const until = async (selector, text) => {
        for (let i = 0; i < 200; i++) {
            const found = [...document.querySelectorAll(selector)].filter(
                (el) => !text || el.textContent.includes(text));
            if (found.length) { return found[0]; }
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
        throw new Error(`nothing like ${selector} ${text || ""} on the page`);
    };
    try {
        %s
        console.log("test successful");
    } catch (error) {
        console.error(String(error));
    }
})();
"""

FORM = """
        await until(".o_form_view .alert-warning", "The plan changed since it was approved");
        await until(".o_form_view .alert-warning", "the plan changed since it was approved (x)");
        await until('button[name="action_approve"]', "Approve the New Plan");
        await until('button[name="action_replan"]', "Re-plan");
        await until(".o_form_view .alert-secondary", "approval(s) still needed");
        (await until(".o_notebook .nav-link", "Plan Changes")).click();
        await until(".o_notebook .tab-pane h5", "Before");
        await until(".o_field_widget[name=previous_plan]", "the approved plan text");
        await until(".o_field_widget[name=plan]", "the new plan text");
        await until(".o_field_widget[name=plan_change]", "+the new plan text");
        (await until(".o_notebook .nav-link", "Approvals")).click();
        await until(".o_field_widget[name=approval_ids] td", "sha256:old");
"""

LIST = """
        await until(".o_list_view th", "Time Left");
        await until(".o_list_view th", "Approvals Needed");
        await until(".o_list_view td[name=expires_in]", " h ");
"""


@tagged("post_install", "-at_install")
class TestApprovalViews(HttpCase):
    def test_a_stale_run_and_the_waiting_list_in_the_browser(self):
        self.env["ir.config_parameter"].set_param("auto_heal.environment", "prod")
        pattern = self.env["auto_heal.pattern"].create({
            "type": "ah_ui_stale", "name": "ui", "regex": r"ah_ui_stale \d+",
            "severity": "high", "auto_fix": True, "fix_script": "ah_test_host_fix"})
        incident = self.env["auto_heal.incident"].create({
            "fingerprint": "ah-ui-stale", "pattern_id": pattern.id,
            "pattern_type": pattern.type, "severity": "high", "host": "web-ui",
            "message": "ah_ui_stale 1"})
        now = fields.Datetime.now()
        run = self.env["auto_heal.fix.run"].create({
            "incident_id": incident.id, "action": "ah_test_host_fix",
            "params": json.dumps({}), "state": "stale", "plan": "the new plan text",
            "previous_plan": "the approved plan text\n",
            "plan_change": "--- plan before\n+++ plan now\n-the approved plan text\n"
                           "+the new plan text\n",
            "plan_change_reason": "the plan changed since it was approved (x)",
            "plan_hash": "sha256:new", "waiting_since": now,
            "expires_at": now + timedelta(hours=5, minutes=3), "approvals_required": 1})
        self.env["auto_heal.fix.run.approval"].create({
            "run_id": run.id, "user_id": self.env.ref("base.user_admin").id, "date": now,
            "plan_hash": "sha256:old", "superseded": True,
            "superseded_reason": "the plan changed"})
        self.assertEqual(run.approvals_needed, 1)
        self.browser_js(f"/odoo/action-auto_heal.action_auto_heal_fix_run/{run.id}",
                        CHECK % FORM, login="admin", timeout=120)
        self.browser_js("/odoo/action-auto_heal.action_auto_heal_fix_run_pending",
                        CHECK % LIST, login="admin", timeout=120)
