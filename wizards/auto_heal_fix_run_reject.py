"""Reject fix runs with a reason: what the Reject button opens."""

from odoo import fields, models


class AutoHealFixRunReject(models.TransientModel):
    _name = "auto_heal.fix.run.reject"
    _description = "Auto-Heal: Reject Fix Runs"

    run_ids = fields.Many2many("auto_heal.fix.run", string="Fix Runs", required=True)
    reason = fields.Text(required=True, help="Why the fix must not run; kept on the run.")

    def action_confirm(self):
        self.ensure_one()
        self.run_ids._reject(self.reason)
        return {"type": "ir.actions.act_window_close"}
