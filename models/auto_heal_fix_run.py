"""Fix runs: one execution of a fix action for an incident.

Only the ``draft`` state exists for now; the approval and execution workflow
(pending approval, approved, running, done, failed, rolled back, rejected)
comes in a later issue.
"""

from odoo import api, fields, models


class AutoHealFixRun(models.Model):
    _name = "auto_heal.fix.run"
    _description = "Auto-Heal Fix Run"
    _order = "id desc"

    name = fields.Char(compute="_compute_name", store=True, readonly=False, precompute=True,
                       required=True)
    incident_id = fields.Many2one(
        "auto_heal.incident", string="Incident", required=True, ondelete="cascade", index=True)
    pattern_id = fields.Many2one(related="incident_id.pattern_id", store=True)
    severity = fields.Selection(related="incident_id.severity")
    action = fields.Char(
        compute="_compute_action", store=True, readonly=False, precompute=True,
        help="Name of the fix action to run; defaults to the pattern's fix action.")
    state = fields.Selection([("draft", "Draft")], required=True, default="draft", readonly=True)
    notes = fields.Text()

    @api.depends("incident_id")
    def _compute_action(self):
        for run in self:
            if not run.action:
                run.action = run.incident_id.pattern_id.fix_script or False

    @api.depends("incident_id", "action")
    def _compute_name(self):
        for run in self:
            what = run.action or self.env._("manual fix")
            run.name = f"{what}: {run.incident_id.name}" if run.incident_id.name else what
